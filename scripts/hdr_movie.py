"""Encode a folder of sRGB JPEG frames as a 10-bit HEVC HDR movie, PQ or HLG with BT.2020 colours, as a
phone's HDR recording of the same scene would roughly hold it: the frames' white at ITU-R BT.2408's
HDR reference white (203 nits; for HLG through BT.2100's inverse OOTF on a 1000-nit display, a 75 %
signal). Usage: python scripts/hdr_movie.py FRAMES_DIR OUT.mp4 pq|hlg
"""
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

#: BT.709 to BT.2020 primaries in linear light (ITU-R BT.2087)
TO_BT2020 = np.array([[0.6274, 0.3293, 0.0433], [0.0691, 0.9195, 0.0114], [0.0164, 0.0880, 0.8956]])


def srgb_to_linear(v: np.ndarray) -> np.ndarray:
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def pq_code(nits: np.ndarray) -> np.ndarray:
    """SMPTE ST 2084's inverse EOTF."""
    m1, m2, c1, c2, c3 = 2610 / 16384, 2523 / 4096 * 128, 3424 / 4096, 2413 / 4096 * 32, 2392 / 4096 * 32
    y = np.clip(nits / 10000.0, 0, 1) ** m1
    return ((c1 + c2 * y) / (1 + c3 * y)) ** m2


def hlg_code(display_nits: np.ndarray) -> np.ndarray:
    """BT.2100's inverse OOTF for a 1000-nit display (gamma 1.2), then ARIB STD-B67's OETF."""
    display = display_nits / 1000.0
    luma = np.maximum(display @ np.array([0.2627, 0.6780, 0.0593]), 1e-12)
    scene = np.clip(display / luma[..., None] ** (0.2 / 1.2), 0, 1)
    a, b, c = 0.17883277, 0.28466892, 0.55991073
    return np.where(scene <= 1 / 12, np.sqrt(3 * scene), a * np.log(np.maximum(12 * scene - b, 1e-12)) + c)


def main(frames_dir: str, out: str, transfer: str) -> None:
    files = sorted(Path(frames_dir).glob("*.jpg"))
    with av.open(out, "w") as movie:
        stream = movie.add_stream("libx265", rate=Fraction(24), options={"x265-params": "log-level=error"})
        stream.width, stream.height = Image.open(files[0]).size
        stream.pix_fmt = "yuv420p10le"
        context = stream.codec_context  # BT.2020 primaries and matrix, limited range, the transfer
        context.color_primaries, context.colorspace, context.color_range = 9, 9, 1
        context.color_trc = {"pq": 16, "hlg": 18}[transfer]
        for f in files:
            nits = 203.0 * (srgb_to_linear(np.asarray(Image.open(f).convert("RGB"), dtype=np.float64) / 255.0)
                            @ TO_BT2020.T)
            code = pq_code(nits) if transfer == "pq" else hlg_code(nits)
            rgb = np.round(np.clip(code, 0, 1) * 65535).astype("<u2")
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb48le")
            for packet in stream.encode(frame.reformat(format="yuv420p10le", dst_colorspace="BT2020")):
                movie.mux(packet)
        for packet in stream.encode():
            movie.mux(packet)


if __name__ == "__main__":
    main(*sys.argv[1:4])
