"""A tiny zero-shot method for the engine's no-annotation path: foreground = well above the video's mean grey level.

Registered in tests by monkeypatching ``registry.METHODS``; it sees the whole video through
``set_video`` (as COSNet does for its reference frames) and records what the engine gave it.
"""
from __future__ import annotations

from typing import ClassVar

import torch

from napari_vos.methods.base import MethodBase, Step, VideoFrames

NAME = "_brighter"
TARGET = "_zero_shot_method:BrighterThanMean"


class BrighterThanMean(MethodBase):
    """One output channel: sigmoid(20 * (grey - mean grey of all frames - margin))."""

    name: ClassVar[str] = NAME
    needs_checkpoint: ClassVar[bool] = False
    needs_annotation: ClassVar[bool] = False
    accepts_annotation: ClassVar[bool] = False
    map_names: ClassVar[tuple[str, ...]] = ("excess",)
    videos_seen: ClassVar[list[tuple[int, tuple[int, ...]]]] = []
    stepped: ClassVar[list[int]] = []

    def __init__(self, device: torch.device | str = "cpu", margin: float = 0.25, seed: int = 0) -> None:
        super().__init__(device, margin=margin)
        self.margin = margin
        self.mean: torch.Tensor | None = None

    def set_video(self, video: VideoFrames) -> None:
        self.mean = torch.stack([video[t].mean() for t in range(len(video))]).mean()
        type(self).videos_seen.append((len(video), tuple(video[0].shape)))

    def start(self, image: torch.Tensor, objects: torch.Tensor) -> None:
        raise AssertionError("a zero-shot run must not call start()")

    def step(self, image: torch.Tensor) -> Step:
        assert self.mean is not None, "set_video was not called before step"
        excess = image.mean(0) - self.mean - self.margin
        type(self).stepped.append(len(type(self).stepped))
        return Step(torch.sigmoid(20 * excess)[None], {"excess": excess[None, ::4, ::4]})


class BrighterAcceptingLabels(BrighterThanMean):
    """Zero-shot, but annotations are taken (as RVOS will): start() then only records them."""

    accepts_annotation: ClassVar[bool] = True
    started: ClassVar[list[int]] = []

    def start(self, image: torch.Tensor, objects: torch.Tensor) -> None:
        type(self).started.append(int(objects.shape[0]))
