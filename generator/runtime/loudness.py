"""Loudness calibration of a preset: how loud its default output is before the output stage.

The output stage (generator.runtime.output_stage) plays every preset at one target loudness by adding the gain
``target - audio.loudness_lufs``. This module measures that figure: the median integrated loudness (ITU-R
BS.1770, generator.runtime.mastering) of the preset's default output at the decoders' own level over a few seeds, and
writes it into preset.json (model hashes untouched).
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np

from generator.errors import PresetError
from generator.runtime.engine import Engine
from generator.runtime.mastering import loudness_lufs
from generator.runtime.preset import write_preset_json

CALIBRATION_SEEDS = (0, 1, 2, 3, 4, 5)
CALIBRATION_SECONDS = 20.0


def measure_preset_loudness(engine: Engine, seeds: tuple[int, ...] = CALIBRATION_SEEDS,
                            seconds: float = CALIBRATION_SECONDS) -> dict[str, float | list[float]]:
    """Integrated loudness of the preset's default output (default conditioning, decoders' level) per seed:
    {"loudness_lufs": median, "per_seed": [...], "seconds": s}."""
    sr = engine.config.audio.sample_rate
    values = [loudness_lufs(engine.generate(seconds, seed=s, finish=False), sr) for s in seeds]
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        raise PresetError(f"preset {engine.preset.name!r} plays silence at its defaults; it cannot be calibrated")
    return {"loudness_lufs": round(float(np.median(finite)), 2), "per_seed": [round(v, 2) for v in values],
            "seconds": seconds}


def calibrate_preset(path: str | Path, threads: int | None = 1, seeds: tuple[int, ...] = CALIBRATION_SEEDS,
                     seconds: float = CALIBRATION_SECONDS) -> dict[str, float | list[float]]:
    """Measure a preset's loudness and record it in its preset.json (``audio.loudness_lufs``)."""
    engine = Engine.load(path, threads=threads)
    report = measure_preset_loudness(engine, seeds, seconds)
    preset = engine.preset
    cfg = preset.config
    cfg = dataclasses.replace(cfg, audio=dataclasses.replace(cfg.audio, loudness_lufs=report["loudness_lufs"]))
    write_preset_json(dataclasses.replace(preset, config=cfg), preset.path)
    return report
