"""Conditioning values -> the generator's inputs: one definition for inference, previews, export and evaluation.

User-facing values are in the condition's unit (BPM, notes/s); a "phase" condition (see
:class:`generator.runtime.preset.Condition`) is a per-latent-step position in quarter-note beats from a bar line, which
callers derive from the tempo and the bar grid they play to (:func:`beat_positions`). The generator takes
``cond_scalar`` (halves, S) and ``cond_curve`` (halves, half_len, K), K counting every curve and phase channel in
the preset's order. NaN means "unconditioned" (the models were trained with condition dropout).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from generator.errors import ConditioningError
from generator.runtime.model_config import ModelConfig
from generator.runtime.preset import Condition

Values = Mapping[str, float | np.ndarray]
TEMPO = "tempo"
DEFAULT_BPM = 120.0


def beat_positions(cfg: ModelConfig, first_step: int, steps: int, bpm: float, downbeat_s: float = 0.0) -> np.ndarray:
    """Beat positions (steps,) float64 of latent steps first_step .. first_step + steps - 1 of a stream played at
    `bpm`: quarter-note beats from a bar line at `downbeat_s` seconds (stream time), taken at each step's first
    sample (latent k starts at sample k * samples_per_latent; training labels use the same convention)."""
    t = (first_step + np.arange(steps, dtype=np.float64)) * cfg.samples_per_latent / cfg.audio.sample_rate
    return (t - downbeat_s) * (float(bpm) / 60.0)


def played_positions(c: Condition, cfg: ModelConfig, first_step: int, steps: int, bpm: float,
                     downbeat_s: float = 0.0) -> np.ndarray:
    """Phase condition `c`'s values for a stream with a bar line at `downbeat_s`: :func:`beat_positions`
    conditioned ``c.offset_ms`` later, so the preset's beats (which fall that far from the conditioned position)
    are heard on the grid."""
    return beat_positions(cfg, first_step, steps, bpm, downbeat_s - c.offset_ms / 1000.0)


def stream_values(conds: Sequence[Condition], values: Values | None, cfg: ModelConfig, first_step: int,
                  steps: int) -> dict[str, float | np.ndarray]:
    """`values` with every missing phase condition filled in for a stream that starts on a bar line at step 0
    and plays at the tempo condition's value (or its default; 120 BPM without a tempo condition)."""
    out = dict(values or {})
    tempo = next((c for c in conds if c.name == TEMPO), None)
    bpm = float(out.get(TEMPO, tempo.default if tempo is not None else DEFAULT_BPM))
    for c in conds:
        if c.kind == "phase" and c.name not in out:
            out[c.name] = played_positions(c, cfg, first_step, steps, bpm)
    return out


def model_inputs(
    conds: Sequence[Condition], values: Values | None, halves: int, half_len: int
) -> dict[str, np.ndarray]:
    """User values -> {"cond_scalar": (halves, S), "cond_curve": (halves, half_len, K)} float32 (keys only for
    what the preset declares).

    Scalars take a float (all halves) or (halves,); curves and phases a float, (halves * half_len,) or
    (halves, half_len). Missing scalars and curves take the default, a missing phase is NaN (unconditioned); NaN
    passes through as "unconditioned". Unknown names and out-of-range values are errors that say so."""
    values = dict(values or {})
    unknown = sorted(set(values) - {c.name for c in conds})
    if unknown:
        known = ", ".join(c.name for c in conds) or "none"
        raise ConditioningError(f"no conditioning named {unknown} (the model has: {known})")

    def one(c: Condition, shape: tuple[int, ...]) -> np.ndarray:
        arr = np.asarray(values.get(c.name, np.nan if c.kind == "phase" else c.default), dtype=np.float64)
        if not np.all(np.isnan(arr)):
            c.check(arr[~np.isnan(arr)])
        try:
            arr = arr.reshape(shape if arr.size > 1 else ())
        except ValueError as exc:
            raise ConditioningError(f"{c.name}: expected {shape} values, got shape {arr.shape}") from exc
        model = c.to_model(arr)
        return np.broadcast_to(model, shape + model.shape[arr.ndim :])

    feeds: dict[str, np.ndarray] = {}
    scalars = [c for c in conds if c.kind == "scalar"]
    curves = [c for c in conds if c.kind != "scalar"]
    if scalars:
        feeds["cond_scalar"] = np.stack([one(c, (halves,)) for c in scalars], axis=-1)
    if curves:
        parts = [one(c, (halves, half_len)).reshape(halves, half_len, c.channels) for c in curves]
        feeds["cond_curve"] = np.concatenate(parts, axis=-1)
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in feeds.items()}
