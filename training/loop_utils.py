"""Plumbing shared by the training loops: signal-driven stop, finite checks, logging (tqdm, TensorBoard,
metrics.jsonl), seeding and config serialisation. No model code here.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import random
import signal
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from training.errors import NonFiniteLossError

logger = logging.getLogger(__name__)


class StopRequest:
    """Context manager: SIGINT/SIGTERM set :attr:`requested` instead of killing the process, so the loop can
    write a checkpoint and stop cleanly. A second signal raises KeyboardInterrupt at once. The previous
    handlers are restored on exit. Outside the main thread it does nothing."""

    def __init__(self) -> None:
        self.requested: str | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, _frame: Any) -> None:
        if self.requested is not None:
            raise KeyboardInterrupt
        self.requested = signal.Signals(signum).name
        logger.warning("%s received: finishing this step and writing a checkpoint", self.requested)

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()


def check_finite(
    terms: Mapping[str, torch.Tensor | float], step: int, checkpoint: Path, saved_step: int | None
) -> None:
    """Raise NonFiniteLossError naming every NaN/inf term, the step, and the intact checkpoint."""
    plain = {k: float(v.detach()) if isinstance(v, torch.Tensor) else float(v) for k, v in terms.items()}
    bad = {k: v for k, v in plain.items() if not math.isfinite(v)}
    if not bad:
        return
    where = (f"the last good checkpoint {checkpoint} (step {saved_step}) is intact"
             if saved_step is not None else "no checkpoint was written yet")
    names = ", ".join(f"{k}={v}" for k, v in bad.items())
    raise NonFiniteLossError(
        f"non-finite loss at step {step}: {names}; training stopped and {where}. Resume with --resume and a "
        "lower --lr (e.g. half), and check the data for silent/NaN chunks."
    )


def seed_everything(seed: int) -> np.random.Generator:
    """Seed torch and python `random`; returns the numpy Generator the loop samples data from."""
    torch.manual_seed(seed)
    random.seed(seed)
    return np.random.default_rng(seed)


def set_threads(threads: int | None) -> None:
    if threads:
        torch.set_num_threads(int(threads))


def to_plain(obj: Any) -> Any:
    """Dataclasses/tuples/paths -> dicts, lists and builtins (for checkpoints and JSON)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return {str(k): to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_plain(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


def resolve_resume(cfg: Any, stored: Any, allowed: tuple[str, ...]) -> Any:
    """The stored config with `cfg`'s run_dir and those `allowed` fields that `cfg` sets to a non-default value
    (a flag left at its default does not undo what the run was started with, e.g. its step counts); warns
    about other fields that differ."""
    ignored = [f.name for f in dataclasses.fields(stored) if f.name not in allowed and f.name != "run_dir"
               and to_plain(getattr(cfg, f.name)) != to_plain(getattr(stored, f.name))]
    if ignored:
        logger.warning("--resume keeps the run's stored %s (only %s may change)", ", ".join(ignored),
                       ", ".join(allowed))
    defaults = {f.name: f.default for f in dataclasses.fields(cfg) if f.default is not dataclasses.MISSING}
    changed = {k: getattr(cfg, k) for k in allowed
               if k not in defaults or to_plain(getattr(cfg, k)) != to_plain(defaults[k])}
    return dataclasses.replace(stored, run_dir=cfg.run_dir, **changed)


class RunLog:
    """Progress bar, TensorBoard scalars and metrics.jsonl for one training stage (rank 0 only).

    metrics.jsonl holds one JSON object per logged step ({"step": n, name: value, ...}); on resume, lines
    after the resumed step (work lost with the kill) are dropped so the file matches the run.
    """

    def __init__(self, directory: Path, stage: str, total: int, start: int, enabled: bool = True,
                 tensorboard: bool = True, progress: bool | None = None):
        self.enabled = enabled
        self.metrics_path = directory / "metrics.jsonl"
        self.writer = None
        self.bar = None
        if not enabled:
            return
        directory.mkdir(parents=True, exist_ok=True)
        self._truncate(start)
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(directory.parent / "tensorboard" / stage), purge_step=start + 1)
        from tqdm import tqdm

        self.bar = tqdm(total=total, initial=start, desc=stage, unit="step", dynamic_ncols=True,
                        disable=None if progress is None else not progress)

    def _truncate(self, start: int) -> None:
        if not self.metrics_path.exists():
            return
        keep = [ln for ln in self.metrics_path.read_text().splitlines() if ln.strip()
                and json.loads(ln).get("step", 0) <= start]
        self.metrics_path.write_text("".join(ln + "\n" for ln in keep))

    def log(self, step: int, values: Mapping[str, float]) -> None:
        if not self.enabled:
            return
        with open(self.metrics_path, "a") as fh:
            fh.write(json.dumps({"step": step, **{k: float(v) for k, v in values.items()}}) + "\n")
        if self.writer is not None:
            for k, v in values.items():
                self.writer.add_scalar(k, float(v), step)
        if self.bar is not None:
            self.bar.set_postfix({k.split("/", 1)[-1]: f"{float(v):.3g}" for k, v in values.items()
                                  if "grad_norm" not in k}, refresh=False)

    def advance(self, n: int = 1) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.writer is not None:
            self.writer.close()


def read_metrics(path: str | Path) -> list[dict[str, float]]:
    """The rows of a metrics.jsonl file."""
    p = Path(path)
    if not p.exists():
        return []
    return [json.loads(ln) for ln in p.read_text().splitlines() if ln.strip()]
