"""Draw a recipe's training batches in worker processes, so a GPU is not left waiting on the CPU.

A recipe's ``batch(rng)`` crops, resizes and generates synthetic videos on the CPU: about 2 s
for 16 FRTM clips at 432x240 on one core, while the GPU step takes a fraction of that. With
``workers > 0`` the loop takes batches from a ``torch.utils.data.DataLoader`` whose workers each
call ``recipe.batch`` with their own generator, seeded by (run seed, start step, worker id), so a
resumed run draws fresh batches rather than repeating the ones it already trained on. The
recipe's real videos are loaded once in the parent before the workers start: forked workers (Linux
up to Python 3.13) share those pages; ``spawn`` and ``forkserver`` workers (macOS, Windows; Linux from
Python 3.14, whose default is forkserver) get the recipe pickled without its videos
(`clips.VideoMix.__getstate__`) and load their own, so there each worker holds a copy. ``workers=0``
keeps the loop's single-process path.
"""
from __future__ import annotations

from typing import Any, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info


class RecipeBatches(IterableDataset):
    """An endless stream of ``recipe.batch(rng)``, one generator per worker."""

    def __init__(self, recipe: Any, seed: int, start_step: int) -> None:
        super().__init__()
        self.recipe = recipe
        self.seed = seed
        self.start_step = start_step

    def __iter__(self) -> Iterator[Any]:
        info = get_worker_info()
        worker = info.id if info is not None else 0
        if hasattr(self.recipe, "follow_steps"):  # the loader takes its workers' batches in turn
            self.recipe.follow_steps(self.start_step + worker, info.num_workers if info is not None else 1)
        rng = np.random.default_rng([self.seed, self.start_step, worker])
        while True:
            yield self.recipe.batch(rng)


def warm_up(recipe: Any, seed: int) -> None:
    """Draw (and drop) one batch in this process, so lazily loaded videos are in memory before forking."""
    recipe.batch(np.random.default_rng([seed, 2**31 - 1]))


def batch_stream(recipe: Any, workers: int, seed: int, start_step: int, pin_memory: bool = False) -> Iterator[Any]:
    """Batches from ``workers`` processes (``workers >= 1``), prefetched 4 per worker."""
    if workers < 1:
        raise ValueError(f"batch_stream needs at least one worker, got {workers}")
    warm_up(recipe, seed)
    loader = DataLoader(RecipeBatches(recipe, seed, start_step), batch_size=None, num_workers=workers,
                        prefetch_factor=4, pin_memory=pin_memory, persistent_workers=False,
                        worker_init_fn=_one_thread)
    return iter(loader)


def _one_thread(_: int) -> None:
    """Each worker draws on one core: many workers with many threads each would only contend."""
    torch.set_num_threads(1)


def stop_workers(stream: Iterator[Any]) -> None:
    """End a `batch_stream`'s worker processes now, not whenever the iterator happens to be collected
    (under ``spawn`` a late end leaves the interpreter warning of leaked semaphores at exit)."""
    shutdown = getattr(stream, "_shutdown_workers", None)  # torch's DataLoader iterator; a plain one has none
    if shutdown is None:
        return
    try:
        shutdown()
    except RuntimeError as err:
        # torch's SIGCHLD check reports a worker that died while being stopped: a spawned worker's interpreter
        # can abort at exit ("terminate called without an active exception") while its queue thread still
        # sends a prefetched batch. It was being ended anyway; torch has terminated the others, wait for them.
        if "DataLoader worker" not in str(err):
            raise
        for worker in getattr(stream, "_workers", ()):
            worker.join(timeout=5)
