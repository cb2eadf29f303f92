"""The method protocol every segmentation method implements, and the per-frame Step result.

The engine (session.py) owns frame reading, normalisation, resizing, object bookkeeping and
the soft aggregation of objects; a method only holds its paper: how to start from an annotated
frame, how to segment the next frame, and how to learn from the aggregated result.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, runtime_checkable

import torch


@dataclass
class Step:
    """One frame's output: per-object foreground probabilities and optional intermediate maps.

    probs: (K, H, W) at the working resolution, before aggregation.
    maps: name -> (K, h, w) tensor (e.g. FRTM's coarse target scores), any resolution.
    """

    probs: torch.Tensor
    maps: dict[str, torch.Tensor] = field(default_factory=dict)


@runtime_checkable
class Method(Protocol):
    """What the engine calls. Images are (3, H, W) float in [0, 1]; objects (K, H, W) in {0, 1}."""

    name: ClassVar[str]
    needs_checkpoint: ClassVar[bool]

    def start(self, image: torch.Tensor, objects: torch.Tensor) -> None: ...

    def step(self, image: torch.Tensor) -> Step: ...

    def update(self, probs: torch.Tensor) -> None:
        """Receive the aggregated per-object probabilities (K, H, W) of the last stepped frame."""

    def remember(self, image: torch.Tensor, objects: torch.Tensor) -> None:
        """Add a (corrected) annotated frame as a new reference."""


class MethodBase:
    """Convenience base: stores options and device; ``update``/``remember`` default to no-ops."""

    name: ClassVar[str] = "base"
    needs_checkpoint: ClassVar[bool] = True
    map_names: ClassVar[tuple[str, ...]] = ()

    def __init__(self, device: torch.device | str = "cpu", **options: Any) -> None:
        self.device = torch.device(device)
        self.options = options

    def update(self, probs: torch.Tensor) -> None:  # noqa: D401 - protocol default
        return None

    def remember(self, image: torch.Tensor, objects: torch.Tensor) -> None:
        self.start(image, objects)
