"""A tiny synthetic dataset (clicks and sines with tempo and density labels) and toy model widths for the
training tests. Everything is written under the caller's tmp_path."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from generator.runtime.model_config import LATENT_RATE_HZ, SAMPLE_RATE, ModelConfig
from training.data.dataset import DatasetWriter

TEMPOS = (120.0, 128.0, 136.0)


def tiny_model() -> ModelConfig:
    return ModelConfig().scaled(ae=0.125, gan=0.125, half_len=16)


def clicks_and_sine(tempo: float, seconds: float, freq: float, seed: int) -> np.ndarray:
    """(2, samples): decaying clicks on every beat plus a quiet sine; right channel slightly different."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    audio = 0.2 * np.sin(2 * np.pi * freq * t)
    period = int(round(60.0 / tempo * SAMPLE_RATE))
    decay = np.exp(-np.arange(2000) / 300.0) * rng.standard_normal(2000) * 0.6
    for start in range(0, n - 2000, period):
        audio[start : start + 2000] += decay
    right = 0.8 * audio + 0.1 * np.sin(2 * np.pi * freq * 1.5 * t)
    return np.stack([audio, right]).astype(np.float32)


def make_tiny_dataset(root: Path, seconds: float = 4.0, chunks: int = 3) -> Path:
    """Write `chunks` training chunks plus one held-out chunk; labels: tempo (scalar), density (curve)."""
    writer = DatasetWriter(root, kind="tiny", seed=0)
    for i in range(chunks + 1):
        tempo = TEMPOS[i % len(TEMPOS)]
        audio = clicks_and_sine(tempo, seconds, 220.0 * (1 + i), seed=i)
        steps = int(seconds * LATENT_RATE_HZ) + 1
        density = np.linspace(tempo / 60.0, tempo / 30.0, steps).astype(np.float32)
        writer.add(f"c{i:02d}", audio, source=f"track{i}", labels={"tempo": tempo, "first_beat_s": 0.0,
                                                                  "first_downbeat_s": 0.0, "beats_per_bar": 4.0},
                   curves={"density": density}, split="heldout" if i == chunks else "train")
    writer.finish()
    return root
