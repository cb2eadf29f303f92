#!/usr/bin/env bash
# FRTM through H.264 movies against the same DAVIS sequences' JPEG frames: what the movie path
# (encode, decode once, propagate) costs in J&F. Usage: scripts/movie_vs_frames.sh DAVIS_DIR OUT_DIR [SEQ,SEQ...]
# CODEC and PIX_FMT pick the encoding (default libx264, yuv420p); e.g. CODEC=libx265
# PIX_FMT=yuv420p10le makes 10-bit HEVC, as phones record; CODEC=gif an animated GIF (Pillow, 256
# colours a frame, read by napari-vos without PyAV).
set -euo pipefail
V=$(realpath "$1"); OUT=$2; SEQS=${3:-bear,car-turn,hike}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=$ROOT/.venv/bin/python; NV=$ROOT/.venv/bin/napari-vos
mkdir -p "$OUT"/movies "$OUT"/pred_movie "$OUT"/pred_frames
EXT=$([ "${CODEC:-libx264}" = gif ] && echo gif || echo mp4)
for s in ${SEQS//,/ }; do
  # by default libx264 at its default quality (crf 23), yuv420p, 24 frames/s: what a camera or a
  # screen recorder writes
  "$PY" - "$V/JPEGImages/$s" "$OUT/movies/$s.$EXT" "${CODEC:-libx264}" "${PIX_FMT:-yuv420p}" <<'PY'
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

files = sorted(Path(sys.argv[1]).glob("*.jpg"))
if sys.argv[3] == "gif":  # Pillow's adaptive 256-colour palette per frame, 24 frames/s (GIF: 40 ms)
    pictures = [Image.open(f).convert("RGB") for f in files]
    pictures[0].save(sys.argv[2], save_all=True, append_images=pictures[1:], duration=40, loop=0)
    sys.exit(0)
with av.open(sys.argv[2], "w") as movie:
    stream = movie.add_stream(sys.argv[3], rate=Fraction(24))
    stream.width, stream.height = Image.open(files[0]).size
    stream.pix_fmt = sys.argv[4]
    for f in files:
        frame = av.VideoFrame.from_ndarray(np.asarray(Image.open(f).convert("RGB")), format="rgb24")
        for packet in stream.encode(frame):
            movie.mux(packet)
    for packet in stream.encode():
        movie.mux(packet)
PY
  first=$(ls "$V/Annotations/$s" | head -1)
  "$NV" propagate "$OUT/movies/$s.$EXT" "$V/Annotations/$s/$first" -o "$OUT/pred_movie/$s.tif" --device cpu --max-side 480 --precision fp32
  "$NV" propagate "$V/JPEGImages/$s" "$V/Annotations/$s/$first" -o "$OUT/pred_frames/$s.tif" --device cpu --max-side 480 --precision fp32
done
"$NV" score --pred "$OUT/pred_movie" --gt "$V" --sequences "$SEQS" --json "$OUT/movie.json" -q
"$NV" score --pred "$OUT/pred_frames" --gt "$V" --sequences "$SEQS" --json "$OUT/frames.json" -q
