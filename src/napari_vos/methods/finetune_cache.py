"""The last finished online fine-tuning's weights, kept so that a run's second pass reuses them.

The engine builds a fresh method for the forward and for the backward pass of a "both" run; a
method that fine-tunes on the annotated frame (OSVOS-AT always, RGMP with ``online_finetune``)
would otherwise fine-tune twice on the same frame with the same seed and get the same weights.
One entry for the whole process (one network's worth of memory), keyed by everything the tuned
weights depend on; a cancelled fine-tuning, or a network built without a checkpoint (no sha256
to key it by), is never kept.
"""
from __future__ import annotations

import hashlib
import threading
from typing import Any, Callable

import torch

_lock = threading.Lock()
_entry: dict[str, Any] = {}  # {"key": str, "state": {name: tensor on the CPU}}


def finetune_key(method: str, checkpoint_sha256: str | None, settings: str,
                 tensors: tuple[torch.Tensor, ...]) -> str | None:
    """A key for one fine-tuning: the method, its checkpoint's sha256, its settings (a string that
    holds every value the tuning depends on) and the annotated frame's pixels and masks; None
    where the checkpoint is unnamed."""
    if checkpoint_sha256 is None:
        return None
    h = hashlib.sha256()
    for text in (method, checkpoint_sha256, settings):
        h.update(text.encode())
        h.update(b"\0")
    for t in tensors:
        h.update(str(tuple(t.shape)).encode())
        h.update(t.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _cached_state(key: str | None) -> dict[str, torch.Tensor] | None:
    """The tuned state kept under ``key``, or None."""
    if key is None:
        return None
    with _lock:
        return _entry["state"] if _entry.get("key") == key else None


def _keep_state(key: str | None, network: torch.nn.Module) -> None:
    """Keep ``network``'s state (copied to the CPU) under ``key``, replacing what was kept."""
    if key is None:
        return
    state = {k: v.detach().cpu().clone() for k, v in network.state_dict().items()}
    with _lock:
        _entry.clear()
        _entry.update(key=key, state=state)


def tune_once(key: str | None, network: torch.nn.Module, tune: Callable[[], bool],
              run_memo: dict[Any, Any] | None = None) -> None:
    """Load the state kept under ``key`` into ``network``, or run ``tune()`` (True when it finished:
    not cancelled) and keep what it made; a ``key`` of None tunes without keeping.

    ``run_memo`` (the propagation's `VideoFrames.memo`): a tuning stopped early by its cancel event
    ("propagate with what it has") is kept there for the run's other pass, which would otherwise
    start a tuning the still-set event stops at once, and never in the process-wide entry.
    """
    memo_key = ("finetune", key)
    kept = run_memo.get(memo_key) if run_memo is not None and key is not None else None
    cached = kept if kept is not None else _cached_state(key)
    if cached is not None:
        with torch.inference_mode(False), torch.no_grad():
            network.load_state_dict(cached)
    elif tune():
        _keep_state(key, network)
    elif run_memo is not None and key is not None:
        run_memo[memo_key] = {k: v.detach().cpu().clone() for k, v in network.state_dict().items()}


def clear_finetune_cache() -> None:
    """Free the kept fine-tuned weights (OSVOS-AT light: about 45 MB; RGMP light: about 63 MB)."""
    with _lock:
        _entry.clear()


def cache_size() -> int:
    """How many fine-tunings are kept (0 or 1)."""
    with _lock:
        return int(bool(_entry))
