"""Synthetic videos with exact masks: the public entry points and a DAVIS-layout set writer.

- `natural_video` (synthetic_natural.py): textured objects moving over a textured or real
  background, with occlusions, distractors, camera and lighting changes.
- `cell_video` (synthetic_cells.py): phase-contrast or fluorescence cells that move, touch,
  divide, enter and leave, with lineage.
- `lazy_video`: the same scenes rendered frame by frame on access (constant memory), for
  `bench` and long-stack tests.
- `write_synthetic_set`: N generated sequences on disk in DAVIS layout, so `napari-vos eval`
  can run on "a generated synthetic set" exactly as on a real dataset.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from napari_vos.data.synthetic_cells import cell_scene, cell_video
from napari_vos.data.synthetic_natural import natural_scene, natural_video
from napari_vos.data.synthetic_types import RenderedFrames, SyntheticVideo

__all__ = [
    "SyntheticVideo",
    "RenderedFrames",
    "natural_video",
    "cell_video",
    "lazy_video",
    "write_synthetic_set",
    "KINDS",
]

KINDS = ("natural", "cells", "fluorescence")


def lazy_video(kind: str = "natural", n_frames: int = 40, size: tuple[int, int] = (240, 320),
               n_objects: int = 1, seed: int = 0, **options: Any) -> RenderedFrames:
    """A (T, H, W[, 3]) array-like whose frames are rendered on access; `.labels` gives the GT.

    kind: "natural" (n_objects targets), "cells" (phase contrast, n_objects cells) or
    "fluorescence" (n_objects cells).
    """
    if kind == "natural":
        scene: Any = natural_scene(n_frames, size, n_objects, seed, **options)
    elif kind in ("cells", "phase", "fluorescence"):
        modality = "fluorescence" if kind == "fluorescence" else "phase"
        scene = cell_scene(n_frames, size, n_objects, seed, modality=modality, **options)
    else:
        raise ValueError(f"unknown synthetic kind {kind!r}; choose from {KINDS}")
    return RenderedFrames(scene)


def _generate(kind: str, seed: int, n_frames: int, size: tuple[int, int], n_objects: int | None,
              **options: Any) -> SyntheticVideo:
    if kind == "natural":
        rng = np.random.default_rng((seed, 1))
        k = n_objects if n_objects is not None else int(rng.integers(1, 4))
        return natural_video(n_frames, size, k, seed, **options)
    if kind in ("cells", "phase", "fluorescence"):
        modality = "fluorescence" if kind == "fluorescence" else "phase"
        k = n_objects if n_objects is not None else 30
        return cell_video(n_frames, size, k, seed, modality=modality, bit_depth=8, **options)
    raise ValueError(f"unknown synthetic kind {kind!r}; choose from {KINDS}")


def write_synthetic_set(
    directory: str | Path,
    n: int,
    kind: str = "natural",
    seed: int = 0,
    n_frames: int = 40,
    size: tuple[int, int] = (240, 320),
    n_objects: int | None = None,
    **options: Any,
) -> list[str]:
    """Write `n` generated sequences to `directory` in DAVIS layout; return their names.

    `JPEGImages/<name>/00000.png` (lossless PNG frames, 8-bit) and `Annotations/<name>/00000.png`
    (DAVIS palette, ids 1..K). Sequence i uses seed `seed + i`, so sets are reproducible.
    A sequence with ids above 255 (the palette's limit; cells that divide get new ids) is a
    ValueError raised before any of its files is written.
    """
    from PIL import Image

    from napari_vos.data.writers import write_png_labels

    root = Path(directory)
    names = []
    for i in range(n):
        video = _generate(kind, seed + i, n_frames, size, n_objects, **options)
        name = f"{kind}-{seed + i:04d}"
        top = int(np.max(video.labels))
        if top > 255:
            raise ValueError(f"{name} has object ids up to {top} (cells that divide get new ids), but the DAVIS "
                             f"layout's palette PNGs hold ids up to 255: ask for fewer objects"
                             + (f" ({len(names)} sequence(s) before it were written)" if names else ""))
        img_dir = root / "JPEGImages" / name
        img_dir.mkdir(parents=True, exist_ok=True)
        for t, frame in enumerate(video.frames):
            Image.fromarray(np.asarray(frame)).save(img_dir / f"{t:05d}.png")
        write_png_labels(root / "Annotations" / name, video.labels)
        names.append(name)
    return names
