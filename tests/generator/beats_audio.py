"""Synthetic techno-like test audio with known beat times (kick on every beat, noisy hat off-beat)."""

from __future__ import annotations

import numpy as np

SR = 44100


def kick_track(
    beat_times_s: np.ndarray, seconds: float, seed: int = 0, noise: float = 0.01, hat: float = 0.15
) -> np.ndarray:
    """Stereo float32 (2, samples): a pitch-swept sine kick at each time, a noise hat half-way between."""
    n = int(seconds * SR)
    rng = np.random.default_rng(seed)
    y = rng.normal(0.0, noise, n).astype(np.float32)
    t = np.arange(int(0.15 * SR)) / SR
    kick = (np.sin(2 * np.pi * (50 + 120 * np.exp(-t * 30)) * t) * np.exp(-t * 18) * 0.8).astype(np.float32)
    hat_len = 2000
    hat_env = np.exp(-np.arange(hat_len) / 300.0).astype(np.float32)
    bt = np.asarray(beat_times_s, dtype=float)
    for i, b in enumerate(bt):
        s = int(round(b * SR))
        if 0 <= s < n:
            e = min(n, s + kick.size)
            y[s:e] += kick[: e - s]
        if i + 1 < bt.size:
            h = int(round(0.5 * (b + bt[i + 1]) * SR))
            if 0 <= h < n:
                e = min(n, h + hat_len)
                y[h:e] += rng.normal(0.0, hat, e - h).astype(np.float32) * hat_env[: e - h]
    return np.stack([y, y])


def steady_beats(bpm: float, phase_s: float, seconds: float) -> np.ndarray:
    return np.arange(phase_s, seconds, 60.0 / bpm)


def ramp_beats(bpm0: float, bpm1: float, phase_s: float, seconds: float) -> np.ndarray:
    """Beat times of a tempo that moves linearly (per beat) from bpm0 to bpm1 over `seconds`."""
    out, t = [], phase_s
    while t < seconds:
        out.append(t)
        t += 60.0 / (bpm0 + (bpm1 - bpm0) * t / seconds)
    return np.asarray(out)
