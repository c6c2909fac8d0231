"""Beat calibration of a phase-conditioned preset: where its heard beats fall against the conditioned beat.

A preset conditioned on the host's beat phase places its kicks near the conditioned beats, not exactly on them:
its decoders smear a kick's attack ahead of it, so the heard onset peaks a few ms early (the techno preset: 6.5 ms,
measured 2026-12-05). This module measures that offset as an outside beat tracker hears it
(:func:`generator.timeline.beat_grid.heard_offsets`) over tempi across the preset's range and a few seeds, and
records it in the phase condition's ``offset_ms``; every player (``generate``, ``serve``, ``render``) then
conditions that much later (:func:`generator.runtime.conditioning.played_positions`). It measures with the
recorded offset in force and adds what is left, so calibrating again refines rather than doubles it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from generator.errors import PresetError
from generator.runtime.engine import Engine
from generator.runtime.preset import write_preset_json
from generator.timeline.beat_grid import heard_grid_offsets

SEEDS = (0, 1, 2, 3)
SECONDS = 24.0
TEMPI = 5  # tempi evenly inside the tempo condition's range


def measure_beat_offset(engine: Engine, seeds: tuple[int, ...] = SEEDS, seconds: float = SECONDS,
                        tempi: int = TEMPI) -> dict[str, Any]:
    """Heard beats of the preset's default output against its conditioned grid (beat k at k * 60 / bpm s):
    {"residual_ms": median over all beats (positive: late), "offset_ms": the recorded offset plus that,
    "p95_abs_ms", "per_clip_ms": each clip's median, "beats"}."""
    preset = engine.preset
    if not preset.phases:
        raise PresetError(f"preset {preset.name!r} is not conditioned on the beat phase; it has no beat offset")
    sr = engine.config.audio.sample_rate
    bpms = ([120.0] if not preset.has_condition("tempo") else
            np.linspace(preset.condition("tempo").min, preset.condition("tempo").max, tempi + 2)[1:-1].tolist())
    per_clip, pooled = [], []
    for bpm in bpms:
        for seed in seeds:
            tempo = {"tempo": bpm} if preset.has_condition("tempo") else None
            audio = engine.generate(seconds, seed=seed, conditioning=tempo)
            found = heard_grid_offsets(audio, sr, bpm)
            found = found[np.isfinite(found)]
            if found.size:
                per_clip.append(float(np.median(found)))
                pooled.append(found)
    if not pooled:
        raise PresetError(f"preset {preset.name!r}: no heard beats in {len(bpms) * len(seeds)} clips; its output "
                          "has no pulse to calibrate")
    beats = np.concatenate(pooled)
    residual = float(np.median(beats))
    return {"residual_ms": round(residual, 2), "offset_ms": round(preset.phases[0].offset_ms + residual, 2),
            "p95_abs_ms": round(float(np.percentile(np.abs(beats - residual), 95)), 2),
            "per_clip_ms": [round(v, 2) for v in per_clip], "beats": int(beats.size)}


def calibrate_beat_offset(path: str | Path, threads: int | None = 1) -> dict[str, Any] | None:
    """Measure a phase-conditioned preset's beat offset and record it in its preset.json (every phase
    condition's ``offset_ms``; model hashes untouched). None for a preset without a beat phase."""
    engine = Engine.load(path, threads=threads)
    preset = engine.preset
    if not preset.phases:
        return None
    report = measure_beat_offset(engine)
    conds = tuple(dataclasses.replace(c, offset_ms=report["offset_ms"]) if c.kind == "phase" else c
                  for c in preset.conditioning)
    write_preset_json(dataclasses.replace(preset, conditioning=conds), preset.path)
    return report
