"""HDR video frames (PQ or HLG transfer, BT.2020 colours) made standard-range sRGB, as a player shows them.

A phone's HDR movie stores its picture with the PQ (SMPTE ST 2084) or HLG (ARIB STD-B67) transfer
and BT.2020 primaries. Read as plain 8-bit RGB those codes look flat and dim (the reference white
sits at about 58 % of the PQ range), unlike the sRGB frames the networks were trained on. Here
the codes become display light (ITU-R BT.2100's PQ EOTF, or HLG's inverse OETF and its OOTF for
a 1000-nit display), BT.2020 becomes BT.709 (linear-light matrix, out-of-gamut values clipped),
light up to 3/4 of the HDR reference white (203 nits, ITU-R BT.2408) is kept as sRGB light, and
brighter light up to 1000 nits is rolled off towards sRGB white on each pixel's largest component,
so hues stay. FFmpeg's zscale and tonemap filters do the like with another curve, but PyAV's FFmpeg
has no zscale (nor any filter for the PQ or HLG transfer), so the maths is written out here.
"""
from __future__ import annotations

import numpy as np

__all__ = ["HDR_TRANSFERS", "REFERENCE_WHITE_NITS", "ToneMapper"]

#: FFmpeg's transfer characteristics of HDR video: SMPTE ST 2084 (PQ, HDR10, Dolby Vision) and ARIB STD-B67 (HLG)
HDR_TRANSFERS = {16: "PQ (HDR10)", 18: "HLG"}

#: ITU-R BT.2408's HDR reference white (diffuse white, a grey card's 100 %): relative light 1, sRGB white
#: before the roll-off (which shows it at 240 of 255)
REFERENCE_WHITE_NITS = 203.0

#: the display HLG is shown on here (BT.2100's nominal peak), whose OOTF gamma is 1.2
_HLG_PEAK_NITS = 1000.0
_HLG_GAMMA = 1.2

#: BT.2020 to BT.709 primaries in linear light (ITU-R BT.2087), and BT.2020's luminance weights
_BT2020_TO_BT709 = np.array([[1.6605, -0.5876, -0.0728],
                             [-0.1246, 1.1329, -0.0083],
                             [-0.0182, -0.1006, 1.1187]], dtype=np.float32)
_BT2020_LUMA = np.array([0.2627, 0.6780, 0.0593], dtype=np.float32)

#: where the highlight roll-off starts, as a fraction of the reference white: below it light is kept as it is
_KNEE = 0.75

#: the brightest highlight kept apart (sRGB white), in nits: HDR10 masters' usual peak, and HLG's on its
#: nominal display; brighter light is clipped to white
_HIGHLIGHT_PEAK_NITS = 1000.0

#: steps of the table from linear light to 8-bit sRGB (fine enough that the darkest steps are under one code)
_SRGB_STEPS = 16384

#: pixels converted at a time, so a 4K frame's float copies stay small (a few MB each)
_BAND_PIXELS = 1 << 18


def _pq_nits(code: np.ndarray) -> np.ndarray:
    """SMPTE ST 2084's EOTF: PQ codes in [0, 1] to display light in nits (cd/m², up to 10000)."""
    m1, m2 = 2610 / 16384, 2523 / 4096 * 128
    c1, c2, c3 = 3424 / 4096, 2413 / 4096 * 32, 2392 / 4096 * 32
    p = np.power(np.clip(code, 0.0, 1.0), 1.0 / m2)
    return 10000.0 * np.power(np.maximum(p - c1, 0.0) / (c2 - c3 * p), 1.0 / m1)


def _hlg_scene_light(code: np.ndarray) -> np.ndarray:
    """ARIB STD-B67's inverse OETF: HLG codes in [0, 1] to relative scene light in [0, 1]."""
    a, b, c = 0.17883277, 0.28466892, 0.55991073
    code = np.clip(code, 0.0, 1.0)
    return np.where(code <= 0.5, code * code / 3.0, (np.exp((code - c) / a) + b) / 12.0)


def _srgb_codes(steps: int) -> np.ndarray:
    """8-bit sRGB codes of ``steps`` evenly spaced linear-light values from 0 to 1 (IEC 61966-2-1)."""
    x = np.linspace(0.0, 1.0, steps)
    encoded = np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1 / 2.4) - 0.055)
    return np.round(encoded * 255.0).astype(np.uint8)


class ToneMapper:
    """Turns (..., Y, X, 3) uint16 RGB frames of one HDR transfer (FFmpeg's number: 16 PQ, 18 HLG)
    into uint8 sRGB frames. Built once per movie: the per-code tables are computed here."""

    def __init__(self, transfer: int) -> None:
        if transfer not in HDR_TRANSFERS:
            raise ValueError(f"transfer {transfer} is not an HDR transfer (PQ is 16, HLG 18)")
        self.transfer = transfer
        codes = np.arange(65536, dtype=np.float64) / 65535.0
        # PQ: each code's display light; HLG: its scene light (the OOTF needs the pixel's luminance)
        light = _pq_nits(codes) / REFERENCE_WHITE_NITS if transfer == 16 else _hlg_scene_light(codes)
        self._light = light.astype(np.float32)
        self._srgb = _srgb_codes(_SRGB_STEPS)

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        """The sRGB uint8 frame of a uint16 RGB ``frame`` (any leading shape, channels last)."""
        if frame.dtype != np.uint16 or frame.shape[-1] != 3:
            raise ValueError(f"an HDR frame to tone-map is uint16 RGB (..., 3), not {frame.dtype} {frame.shape}")
        pixels = frame.reshape(-1, 3)
        out = np.empty(pixels.shape, dtype=np.uint8)
        for start in range(0, len(pixels), _BAND_PIXELS):
            out[start:start + _BAND_PIXELS] = self._band(pixels[start:start + _BAND_PIXELS])
        return out.reshape(frame.shape)

    def _band(self, codes: np.ndarray) -> np.ndarray:
        """A band of (N, 3) pixels: codes to relative light (1 = reference white), BT.709, roll-off, sRGB."""
        light = self._light[codes]
        if self.transfer == 18:  # HLG's OOTF: display light = peak * scene luminance^(gamma - 1) * scene light
            luminance = light @ _BT2020_LUMA
            gain = (_HLG_PEAK_NITS / REFERENCE_WHITE_NITS) * np.power(np.maximum(luminance, 1e-12), _HLG_GAMMA - 1)
            light *= gain[..., None]
        light = np.maximum(light @ _BT2020_TO_BT709.T, 0.0)
        peak = np.maximum(np.maximum(light[:, 0], light[:, 1]), light[:, 2])  # ~10x faster than max(axis=-1)
        light *= (_rolled_off(peak) / np.maximum(peak, 1e-12))[:, None]
        index = np.rint(np.minimum(light, 1.0) * (_SRGB_STEPS - 1)).astype(np.intp)
        return self._srgb[index]


def _rolled_off(value: np.ndarray) -> np.ndarray:
    """Light up to the knee kept as it is; above it, Reinhard's extended curve from the knee, with the
    same slope there (no visible band where the curve turns), reaching sRGB white at the highlight
    peak (1000 nits) and clipped beyond it."""
    span = 1.0 - _KNEE
    t = np.maximum(value - _KNEE, 0.0) / span
    top = (_HIGHLIGHT_PEAK_NITS / REFERENCE_WHITE_NITS - _KNEE) / span
    eased = _KNEE + span * np.minimum(t * (1.0 + t / top**2) / (1.0 + t), 1.0)
    return np.where(value <= _KNEE, value, eased).astype(np.float32)
