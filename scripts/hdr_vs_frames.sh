#!/usr/bin/env bash
# FRTM on HDR movies (PQ and HLG, scripts/hdr_movie.py) of DAVIS sequences, their frames read tone-mapped
# (read_video_file's default) and as stored (tone_map=False), each scored against the sequences' truth.
# Usage: scripts/hdr_vs_frames.sh DAVIS_DIR OUT_DIR [SEQ,SEQ...]
set -euo pipefail
V=$(realpath "$1"); OUT=$2; SEQS=${3:-bear,car-turn,hike}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=$ROOT/.venv/bin/python; NV=$ROOT/.venv/bin/napari-vos
for transfer in pq hlg; do
  mkdir -p "$OUT/$transfer"
  for s in ${SEQS//,/ }; do "$PY" "$ROOT/scripts/hdr_movie.py" "$V/JPEGImages/$s" "$OUT/$transfer/$s.mp4" $transfer; done
  for mode in as_stored tonemapped; do
    mkdir -p "$OUT/$transfer/$mode"
    "$PY" -W ignore - "$V" "$OUT/$transfer" "$mode" "$SEQS" <<'PY'
import sys
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image

import napari_vos
from napari_vos.data.video_files import read_video_file

davis, movies, mode, seqs = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], sys.argv[4].split(",")
for seq in seqs:
    frames = read_video_file(movies / f"{seq}.mp4", tone_map=mode == "tonemapped")
    first = sorted((davis / "Annotations" / seq).glob("*.png"))[0]
    labels = (np.asarray(Image.open(first)) > 0).astype(np.uint8)
    result = napari_vos.propagate(frames, labels, method="frtm", device="cpu", max_side=480, precision="fp32")
    tifffile.imwrite(movies / mode / f"{seq}.tif", np.asarray(result.labels))
PY
    "$NV" score --pred "$OUT/$transfer/$mode" --gt "$V" --sequences "$SEQS" --json "$OUT/$transfer/$mode.json" -q
  done
done
