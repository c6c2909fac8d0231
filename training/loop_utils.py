"""Plumbing shared by the training loops: the run loop itself (:class:`StageRun`: resume, random state,
checkpoints, logging, previews, stop), signal-driven stop, finite checks, logging (tqdm, TensorBoard,
metrics.jsonl), seeding and config serialisation. No model code here.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import random
import signal
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from training.checkpoint import (
    CHECKPOINT_NAME,
    GOOD_CHECKPOINT_NAME,
    load_checkpoint,
    params_finite,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from training.distributed import DistInfo, any_flag, barrier, spread
from training.divergence import Divergence, DivergenceGuard
from training.errors import NonFiniteLossError, TrainingDiverged, TrainingError, TrainingInterrupted

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


@dataclass(frozen=True)
class Schedule:
    """How long a stage runs and how often it logs, checkpoints and previews (0: never preview)."""

    total: int
    checkpoint_every: int
    preview_every: int
    log_every: int
    tensorboard: bool = True
    progress: bool | None = None
    bar_total: int = 0  # the progress bar's total when it is not `total` (a run trained in stretches)


class StageRun:
    """The run loop of one training stage, shared by the autoencoder and the GAN.

    It owns the numpy Generator the stage samples from (seeded alike on every rank), the step counter and the
    checkpoint RUN/<stage>/checkpoint.pt, which only rank 0 writes: the stage's state plus the random state
    and the wall time. A stop request (SIGINT/SIGTERM on any rank) writes a checkpoint and raises
    TrainingInterrupted; a resumed run continues with the checkpoint's step, metrics and random state.
    """

    def __init__(self, stage: str, stage_dir: Path, info: DistInfo, device: torch.device, seed: int,
                 guard: DivergenceGuard | None = None):
        self.stage, self.stage_dir, self.info, self.device = stage, stage_dir, info, device
        self.seed = seed
        self.np_rng = seed_everything(seed)
        self.ckpt_path = stage_dir / CHECKPOINT_NAME
        self.good_path = stage_dir / GOOD_CHECKPOINT_NAME
        self.guard = guard
        self.good_step: int | None = None
        self.step = 0
        self.saved_step: int | None = None
        self.metrics: dict[str, float] = {}
        self._wall0, self._t0 = 0.0, time.monotonic()

    def resume(self, stored: Mapping[str, Any]) -> None:
        """Continue from a checkpoint's step, metrics and random state (the caller loads the networks)."""
        set_rng_state(stored["rng"][0], self.np_rng)
        self.step = self.saved_step = int(stored["step"])
        if stored.get("reseed"):  # put back after a divergence: the same batches would set it off again
            self.np_rng = np.random.default_rng([self.seed, self.step, int(stored["reseed"])])
            logger.info("the run diverged here before: its batches are drawn afresh (draw %d)", stored["reseed"])
        self.metrics = dict(stored.get("metrics", {}))
        self._wall0 = float(stored.get("wall_seconds", 0.0))
        was = int(stored.get("world_size", self.info.world_size))
        if was != self.info.world_size:
            logger.warning("resuming with %d processes; the run had %d, so the batch per step changes",
                           self.info.world_size, was)
        logger.info("resuming the %s at step %d", self.stage, self.step)

    def check_finite(self, terms: Mapping[str, torch.Tensor | float]) -> None:
        """NonFiniteLossError for a NaN/inf term of the step now running (see :func:`check_finite`)."""
        check_finite(terms, self.step + 1, self.ckpt_path, self.saved_step)

    def save(self, nets: Mapping[str, torch.nn.Module], state: Mapping[str, Any]) -> None:
        """Rank 0 writes `state` (plus random state and wall time) unless a network holds NaN/inf."""
        if self.info.is_main:
            bad = params_finite(nets)
            if bad:
                raise TrainingError(f"{bad} has non-finite weights at step {self.step}; checkpoint not written")
            if self.guard is not None and self.ckpt_path.exists() and self.saved_step != self.step:
                # a whole interval went by without a divergence: the checkpoint before it is a good one. Linked,
                # not moved: a kill before the new checkpoint is in place must still find the latest one
                link = self.good_path.with_name(self.good_path.name + ".link")
                link.unlink(missing_ok=True)
                os.link(self.ckpt_path, link)
                os.replace(link, self.good_path)
                self.good_step = self.saved_step
            save_checkpoint(self.ckpt_path, {**state, "rng": [rng_state(self.np_rng)],
                                             "world_size": self.info.world_size,
                                             "wall_seconds": self._wall0 + time.monotonic() - self._t0})
        barrier(self.info)  # no rank goes on (and perhaps reads it) before the checkpoint is in place
        self.saved_step = self.step

    def run(self, plan: Schedule, step: Callable[[int], Mapping[str, torch.Tensor]],
            nets: Mapping[str, torch.nn.Module], state: Callable[[int, Mapping[str, float]], dict[str, Any]],
            preview: Callable[[int], None] | None = None,
            on_step: Callable[[int, Mapping[str, float]], None] | None = None) -> tuple[int, dict[str, float]]:
        """Run `step(n)` (n counts from 0) until `plan.total`; returns the final step and the last logged
        metrics. Every rank calls it; the collectives inside keep them in step."""
        info = self.info
        first, last = spread(info, self.step, self.device)
        if first != last:
            raise TrainingError(
                f"the processes start the {self.stage} at different steps ({first} to {last}; this one at "
                f"{self.step}): each reads {self.ckpt_path} itself, so every machine must see the same run folder "
                "(shared storage), or none may have a checkpoint there")
        log = RunLog(self.stage_dir, self.stage, plan.bar_total or plan.total, self.step, info.is_main,
                     plan.tensorboard, plan.progress)
        try:
            with StopRequest() as stop:
                while self.step < plan.total:
                    terms = step(self.step)
                    self.step += 1
                    at = self.step
                    values = {k: float(v.detach()) if isinstance(v, torch.Tensor) else float(v)
                              for k, v in terms.items()}
                    if at % plan.log_every == 0 or at == plan.total:
                        self.metrics = {**self.metrics, **values}
                        log.log(at, values)
                    log.advance()
                    div = self.guard.update(at, values) if self.guard is not None else None
                    if any_flag(info, div is not None, self.device):
                        self._diverged(div)
                    stopping = any_flag(info, stop.requested is not None, self.device)
                    if at % plan.checkpoint_every == 0 or at == plan.total or stopping:
                        self.save(nets, state(at, self.metrics))
                    if (info.is_main and preview is not None and plan.preview_every
                            and (at % plan.preview_every == 0 or at == plan.total)):
                        preview(at)
                    if on_step is not None:
                        on_step(at, values)
                    if stopping:
                        raise TrainingInterrupted(f"stopped by {stop.requested or 'another rank'} at step {at}; "
                                                  f"checkpoint {self.ckpt_path} written; continue with --resume")
        finally:
            log.close()
        return self.step, self.metrics

    def _diverged(self, div: Divergence | None) -> None:
        """Put the checkpoint back to the last good one (rank 0) and stop with what happened and what to do."""
        what = str(div) if div is not None else f"a loss blew up on another process at step {self.step}"
        back = "no earlier checkpoint was kept, so it holds the last one written"
        if self.info.is_main and self.good_path.exists():
            state = load_checkpoint(self.good_path)
            state["reseed"] = int(state.get("reseed", 0)) + 1  # a resume draws other batches
            save_checkpoint(self.ckpt_path, state)
            self.good_path.unlink()
            back = (f"it is back at step {self.good_step}, the last checkpoint before the blow-up (a resume draws "
                    "other batches from there)")
        elif self.saved_step is None:
            back = "none was written yet"
        barrier(self.info)
        raise TrainingDiverged(
            f"the {self.stage} diverged: {what}. Training stopped; {self.ckpt_path}: {back}. Continue with "
            "--resume and a lower --lr (e.g. half); an adversarial autoencoder that keeps collapsing also helps "
            "with a later --adversarial-from.")
