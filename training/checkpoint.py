"""Atomic checkpoints that load with ``torch.load(weights_only=True)``.

A checkpoint is one file holding plain data only: module and optimizer state dicts (tensors), the random
number generator states (torch, numpy Generator, python ``random``), the step and the resolved training
config as plain dicts. :func:`save_checkpoint` writes a temporary file in the same directory, fsyncs it
and ``os.replace``-s it over the old one, so a kill at any moment leaves either the old or the new file,
never a half-written one.
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from generator.atomic import replacing
from training.errors import CheckpointError

logger = logging.getLogger(__name__)

CHECKPOINT_NAME = "checkpoint.pt"
GOOD_CHECKPOINT_NAME = "checkpoint-good.pt"  # the one before the latest, kept while a divergence guard watches


def save_checkpoint(path: str | Path, state: Mapping[str, Any]) -> Path:
    """Write `state` atomically to `path` (temp file + fsync + os.replace + directory fsync). A temp file a killed
    run left beside it (another process's) is removed: one process writes a run's checkpoints."""
    path = Path(path)
    for stale in path.parent.glob(f".{path.stem}.tmp-*{path.suffix}"):
        if stale.name != f".{path.stem}.tmp-{os.getpid()}{path.suffix}":
            stale.unlink(missing_ok=True)
    with replacing(path, durable=True) as tmp:
        torch.save(dict(state), tmp)
    logger.debug("checkpoint written: %s", path)
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint with weights_only=True; a missing or unreadable file raises CheckpointError."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}; train first (musika train ...) or check the run folder")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises pickle/runtime errors of several kinds
        raise CheckpointError(f"{path} is not a readable Musika checkpoint ({exc}); delete it and retrain") from exc
    if not isinstance(state, dict) or "step" not in state:
        raise CheckpointError(f"{path} is not a Musika training checkpoint (no 'step' entry)")
    return state


def rng_state(np_rng: np.random.Generator) -> dict[str, Any]:
    """The states of torch (CPU and CUDA), the numpy Generator and python `random`, as plain data."""
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": _plain(np_rng.bit_generator.state),
        "python": _plain(random.getstate()),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any], np_rng: np.random.Generator) -> None:
    """Restore what :func:`rng_state` saved (in place for `np_rng`)."""
    torch.set_rng_state(state["torch"].cpu())
    np_rng.bit_generator.state = state["numpy"]
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(list(state["cuda"]))


def _plain(x: Any) -> Any:
    """Tuples/lists/dicts of builtins only (weights_only allows them)."""
    if isinstance(x, Mapping):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, np.integer):
        return int(x)
    return x


def params_finite(modules: Mapping[str, torch.nn.Module]) -> str | None:
    """Name of the first module whose parameters hold a NaN/inf, or None when all are finite."""
    for name, module in modules.items():
        for p in module.parameters():
            if not torch.isfinite(p).all():
                return name
    return None
