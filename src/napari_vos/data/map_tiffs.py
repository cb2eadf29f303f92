"""A run's intermediate maps written into TIFF files frame by frame as they finish (the CLI's --maps).

A map stack is (T, K, h, w) float32: 70 cells at a 1024-pixel working size make RGMP's
object-probability map 18 MB a frame, so a few hundred frames do not fit in a laptop's memory.
`MapTiffs` is a Session's ``maps_out``: each map becomes ``folder/<map>.tif`` as soon as its first
frame is ready (`writers.open_tiff_map`, memory-mapped), with its own pixel size and placement over
the image, so a run holds no map stack, and one that dies (even killed outright) leaves the frames
it finished on disk. `close` puts the run's final record into every file.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from napari_vos.data.calibration import Calibration
from napari_vos.data.map_geometry import GUESS, map_placement
from napari_vos.data.writers import open_tiff_map, rewrite_tiff_provenance

__all__ = ["MapTiffs", "UNCLOSED"]

#: what a map file's record says about its frames until the run that writes it closes it
UNCLOSED = "unknown: the run writing this file did not close it"


class MapTiffs:
    """``maps_out`` for a Session: one memory-mapped TIFF per map in ``folder``.

    session: the Session the maps come from; its working size places each map over the image and
    its result's provenance is the record the files carry.
    """

    def __init__(self, folder: str | Path, calibration: Calibration, session: Any) -> None:
        self.folder = Path(folder)
        self.calibration = calibration
        self.session = session
        self._files: dict[str, tuple[Path, dict[str, Any], np.ndarray]] = {}

    @property
    def paths(self) -> list[Path]:
        """The map files made so far, in the order their maps first came."""
        return [path for path, _, _ in self._files.values()]

    def __call__(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        frame_shape = tuple(self.session.source.frame_shape)
        grid = self.session.map_grids.get(name, GUESS)  # the built method's declared grid
        scale, translate = map_placement(tuple(shape[-2:]), tuple(self.session.work_size), frame_shape,
                                         (1, 1, 1), (0, 0, 0), grid)
        pixel = self.calibration.pixel_size or (1.0, 1.0)
        map_cal = replace(self.calibration, pixel_size=(pixel[0] * scale[1], pixel[1] * scale[2]),
                          unit=self.calibration.unit if self.calibration.pixel_size else None)
        placement = {"map": name, "scale_in_image_pixels": scale[1:], "translate_in_image_pixels": translate[1:]}
        record = {**self.session.result().provenance(), **placement, "complete": False, "frames_segmented": UNCLOSED}
        path = self.folder / f"{name}.tif"
        stack = open_tiff_map(path, shape, map_cal, record)
        self._files[name] = (path, placement, stack)
        return stack

    def close(self, provenance: dict[str, Any]) -> list[Path]:
        """Flush every file and give it ``provenance`` (the run's final record) beside its placement."""
        for path, placement, stack in self._files.values():
            stack.flush()
            rewrite_tiff_provenance(path, {**provenance, **placement})
        return self.paths
