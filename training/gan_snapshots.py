"""GAN snapshots and the choice among them: ``musika train preset`` keeps its GAN every ``every`` steps and plays
the snapshot that follows its condition best.

Why: a GAN this small does not settle. On an hour of real recordings (the singularity package, docs/BENCHMARKS.md)
the share of clips within ±2 % of the requested tempo went 14 % at 6,000 steps, 94 % at 9,000, 89 % at 12,000,
78 % at 18,000 and 47 % at 36,000: no fixed step count fits every folder.

How: :func:`train_with_snapshots` trains to each snapshot step in turn (resuming the one run) and copies its
checkpoint to ``RUN/gan/snapshots/step_N.pt``. :func:`choose_snapshot` exports each snapshot beside the run (its
generator only, on the shared autoencoder), asks it for the condition's values at ``SELECT_SEEDS`` (not the seeds
the closing eval reports on) and measures the clips as ``musika eval`` does: a tempo preset by the share within
±2 % of the request (ties: the smaller median error, then the later step), a density preset by the rank
correlation of onset rate with the request. The scores are kept in ``RUN/select/scores.json`` with each snapshot
file's size and time, so running the command again measures nothing twice, and a GAN trained again into the same
run is measured again. A preset without a condition plays the last snapshot.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from generator.atomic import replacing, write_json

logger = logging.getLogger(__name__)

SELECT_SEEDS = (100, 101)  # the closing eval reports on seeds 0-5
SELECT_SECONDS = 12.0


def snapshot_steps(total: int, every: int) -> list[int]:
    """The steps at which the GAN is kept: every `every` steps and the last (only the last when `every` is 0)."""
    if total < 1:
        raise ValueError(f"total steps must be at least 1, got {total}")
    return [total] if every <= 0 else sorted({*range(every, total, every), total})


def _step(path: Path) -> int:
    from training.checkpoint import load_checkpoint

    return int(load_checkpoint(path)["step"]) if path.is_file() else 0


def train_with_snapshots(cfg: Any, steps: Sequence[int]) -> dict[int, Path]:
    """Train `cfg`'s GAN (a GanTrainConfig) up to each of `steps` in turn, resuming its one checkpoint, and keep a
    copy at each -> {step: snapshot checkpoint} for the steps it has (one trained past before snapshots were asked
    for has none). With one step the run's own checkpoint is the snapshot."""
    from training.loop_gan import run_gan

    ckpt = cfg.stage_dir / "checkpoint.pt"
    if len(steps) == 1:
        if _step(ckpt) < steps[0]:
            run_gan(dataclasses.replace(cfg, steps=steps[0]), resume=ckpt.exists())
        return {steps[0]: ckpt}
    folder = cfg.stage_dir / "snapshots"
    folder.mkdir(parents=True, exist_ok=True)
    kept = {}
    for step in steps:
        snap = folder / f"step_{step}.pt"
        if not snap.is_file():
            if _step(ckpt) < step:  # the bar and its ETA count to the last snapshot
                run_gan(dataclasses.replace(cfg, steps=step, progress_total=max(steps)), resume=ckpt.exists())
            if _step(ckpt) != step:
                continue
            with replacing(snap) as tmp:
                shutil.copyfile(ckpt, tmp)
        kept[step] = snap
    return kept


def score_clips(engine: Any, condition: str, values: Sequence[float] = (), seeds: Sequence[int] = SELECT_SEEDS,
                seconds: float = SELECT_SECONDS) -> dict[str, float]:
    """How well `engine`'s preset follows `condition` ("tempo" or "density") at `values` (density: by default the
    levels musika eval asks for), measured as musika eval measures it: {"score", and the figures behind it}.
    Higher scores are better."""
    from training import metrics as M
    from training.analysis import onset_times
    from training.eval import density_levels, requested_tempo

    sr = engine.config.audio.sample_rate
    if condition == "density" and not values:
        values = density_levels(engine.preset.condition("density"))
    req, got, cv = [], [], []
    for value in values:
        for seed in seeds:
            audio = engine.generate(seconds, {condition: float(value)}, seed=seed)
            if condition == "tempo":
                est = requested_tempo(audio, sr, value)
                got.append(est.bpm)
                cv.append(est.ibi_cv)
            else:
                got.append(onset_times(audio, sr).size / (audio.shape[1] / sr))
            req.append(float(value))
    if condition == "tempo":
        summary = M.tempo_summary(req, got, cv)
        err = summary["median_abs_error_pct"]
        return {"score": summary["within_tolerance"] - 1e-6 * min(err if math.isfinite(err) else 1e3, 1e3),
                "within_tolerance": summary["within_tolerance"], "median_abs_error_pct": err}
    rho = M.spearman(np.array(req), np.array(got))
    return {"score": rho if math.isfinite(rho) else -1.0, "spearman": rho}


def choose_snapshot(snapshots: dict[int, Path], condition: str, values: Sequence[float], work: Path,
                    export: Callable[[Path, Path, str], Path], threads: int | None = 1) -> tuple[int, dict]:
    """The step of the snapshot to play and every snapshot's scores ({step: figures}). `export(checkpoint, out_dir,
    name)` makes a playable preset of one snapshot. Scores already in ``work/scores.json`` are reused while their
    snapshot file is the one they were measured on (its size and modification time)."""
    import json

    from generator.runtime.engine import Engine

    last = max(snapshots)
    if condition == "none" or len(snapshots) == 1:
        return last, {}
    store = work / "scores.json"
    kept = json.loads(store.read_text()) if store.is_file() else {}
    scores = {int(k): v for k, v in kept.get("scores", {}).items()}
    measured = {int(k): v for k, v in kept.get("snapshots", {}).items()}  # each score's snapshot file, as it was
    for step, ckpt in sorted(snapshots.items()):
        if step in scores and measured.get(step) == _fingerprint(ckpt):
            continue
        preset = export(ckpt, work, f"step_{step}")
        scores[step] = score_clips(Engine.load(preset, threads=threads), condition, values)
        measured[step] = _fingerprint(ckpt)
        write_json(store, {"scores": {str(k): v for k, v in sorted(scores.items())},
                           "snapshots": {str(k): v for k, v in sorted(measured.items())}})
        logger.info("GAN snapshot at step %d: %s", step, _describe(scores[step]))
    best = max((s for s in snapshots if s in scores), key=lambda s: (scores[s]["score"], s))
    return best, {s: scores[s] for s in sorted(snapshots) if s in scores}


def _fingerprint(checkpoint: Path) -> str:
    """Size and modification time of a snapshot file: a GAN trained again into the same run writes new ones, whose
    kept scores then no longer count."""
    st = checkpoint.stat()
    return f"{st.st_size}:{st.st_mtime_ns}"


def _describe(figures: dict[str, float]) -> str:
    if "within_tolerance" in figures:
        return f"{figures['within_tolerance']:.0%} within ±2 % of the requested tempo"
    return f"density Spearman {figures['spearman']:.2f}"


def choice_note(chosen: int, scores: dict[int, dict]) -> str:
    """One line for the preset's training record: which snapshot plays and how each scored."""
    if not scores:
        return f"step {chosen:,} (the last)"
    tempo = "within_tolerance" in next(iter(scores.values()))
    what = "clips within ±2 % of the requested tempo" if tempo else "density Spearman"
    each = ", ".join(f"{s:,}: " + (f"{f['within_tolerance']:.0%}" if tempo else f"{f['spearman']:.2f}")
                     for s, f in scores.items())
    seeds = f"{SELECT_SEEDS[0]}-{SELECT_SEEDS[-1]}"
    return f"step {chosen:,} of {len(scores)} snapshots, chosen on seeds {seeds} by {what}: {each}"
