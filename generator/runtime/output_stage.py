"""The output stage every rendered block passes through: loudness matching, the user's gain, a true-peak ceiling.

Pure numpy. Audio is float32 (channels, samples) at 44.1 kHz. A preset records the integrated loudness of its
default output (``audio.loudness_lufs``, measured by :func:`generator.runtime.loudness.measure_preset_loudness`); the
stage adds the gain that brings it to the target (-18 LUFS by default), then the user's gain, then holds every
sample and every inter-sample peak (4x oversampled) under the ceiling (-1 dBTP by default) with a look-ahead
limiter. A block is limited on its own, looking ahead to its end, so it adds no latency and the live path,
which renders the same pieces as the offline replay, stays equal to it sample for sample.

The limiter works on blocks of ``BLOCK`` samples: each block needs the gain that brings its true peak under the
ceiling; the gain at each block edge is the lowest of those needs, each relaxed linearly with distance (reached
``ATTACK_S`` before the peak, released over ``RELEASE_S`` after it), and the gain between two edges is their linear
interpolation. Both edges of a block are at or under its need, so no sample in it is left above the ceiling, and
the gain never jumps. Music under the ceiling passes untouched (gain exactly 1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from generator.errors import MusikaError
from generator.runtime.model_config import SAMPLE_RATE

TARGET_LUFS = -18.0  # integrated loudness every preset plays at with gain 0 dB (headroom for mixing in a DAW)
CEILING_DBTP = -1.0  # no sample and no inter-sample peak above this by default
TARGET_RANGE = (-36.0, -9.0)
CEILING_RANGE = (-12.0, 0.0)
GAIN_RANGE = (-60.0, 24.0)

BLOCK = 32  # samples per limiter block
ATTACK_S = 0.0015  # the gain reaches a peak's need this long before it
RELEASE_S = 0.06  # and recovers linearly over this long after it
MARGIN_DB = 0.2  # the limiter aims this far under the ceiling (the 4x estimate of the true peak is not exact)
OVERSAMPLE = 4
_TAPS = 8  # input samples on each side of an interpolated point (music: within 0.12 dB of a 4x resample_poly)
_CANDIDATE_DB = 4.0  # blocks whose sample peak is this far under the ceiling are not checked between samples


class OutputStageError(MusikaError, ValueError):
    """An output setting is out of its range."""


def _check(name: str, value: float, lo: float, hi: float, unit: str) -> float:
    v = float(value)
    if not (math.isfinite(v) and lo <= v <= hi):
        raise OutputStageError(f"{name} must be between {lo:g} and {hi:g} {unit}, got {value!r}")
    return v


@dataclass(frozen=True)
class OutputSettings:
    """How loud the output plays and where its peaks stop.

    target_lufs: the integrated loudness a calibrated preset plays at with gain 0; ceiling_dbtp: the true-peak
    ceiling; gain_db: the user's gain on top of the loudness match (the limiter still holds the ceiling)."""

    target_lufs: float = TARGET_LUFS
    ceiling_dbtp: float = CEILING_DBTP
    gain_db: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "target_lufs", _check("output target_lufs", self.target_lufs, *TARGET_RANGE, "LUFS"))
        object.__setattr__(self, "ceiling_dbtp", _check("output ceiling_dbtp", self.ceiling_dbtp, *CEILING_RANGE,
                                                        "dBTP"))
        object.__setattr__(self, "gain_db", _check("output gain_db", self.gain_db, *GAIN_RANGE, "dB"))

    def preset_gain_db(self, loudness_lufs: float | None) -> float:
        """Gain (dB) that brings a preset measured at `loudness_lufs` to the target, plus the user's gain; a
        preset without a measurement gets the user's gain only."""
        match = 0.0 if loudness_lufs is None or not math.isfinite(loudness_lufs) else self.target_lufs - loudness_lufs
        return match + self.gain_db


def _interpolator() -> np.ndarray:
    """(OVERSAMPLE - 1, 2 * _TAPS) Kaiser-windowed sinc taps: row p - 1 gives the value p / OVERSAMPLE of the way
    from input sample _TAPS - 1 to _TAPS of a window."""
    t = np.arange(2 * _TAPS) - (_TAPS - 1)
    rows = []
    for p in range(1, OVERSAMPLE):
        x = t - p / OVERSAMPLE
        h = np.sinc(x) * np.kaiser(2 * _TAPS, 6.0)
        rows.append(h / h.sum())
    return np.asarray(rows, dtype=np.float64)


_INTERP = _interpolator()


def block_true_peaks(audio: np.ndarray, block: int = BLOCK, floor: float = 0.0) -> np.ndarray:
    """Per block of `block` samples: the largest absolute sample or 4x-interpolated inter-sample value (the gaps
    into, inside and out of the block) over all channels, (ceil(n / block),) float64. Inter-sample values are
    only computed for blocks whose sample peak is at least `floor` (the others keep their sample peak)."""
    x = np.asarray(audio, dtype=np.float32)
    ch, n = x.shape
    nb = -(-n // block)
    pad = np.zeros((ch, nb * block), np.float32)
    pad[:, :n] = x
    peaks = np.abs(pad).reshape(ch, nb, block).max(axis=(0, 2)).astype(np.float64)
    cand = np.flatnonzero(peaks >= floor) if floor > 0 else np.arange(nb)
    if cand.size:
        ext = np.zeros((ch, nb * block + 2 * _TAPS), np.float32)
        ext[:, _TAPS : _TAPS + n] = x
        # per candidate block the input around the gaps after samples m = start - 1 ... end - 1: the window of
        # gap m starts at ext index m + 1 (input sample m - _TAPS + 1)
        gaps = block + 1
        idx = cand[:, None] * block + np.arange(gaps + 2 * _TAPS - 1)[None, :]
        seg = ext[:, idx]  # (ch, k, gaps + 2 * _TAPS - 1)
        inter = np.zeros(cand.size, np.float32)
        for row in _INTERP:
            acc = np.zeros((ch, cand.size, gaps), np.float32)
            for j, h in enumerate(row):
                acc += np.float32(h) * seg[:, :, j : j + gaps]
            inter = np.maximum(inter, np.abs(acc).max(axis=(0, 2)))
        peaks[cand] = np.maximum(peaks[cand], inter)
    return peaks


def limiter_gain(needs: np.ndarray, block: int = BLOCK, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Per-block needs (gain <= 1 that brings each block under the ceiling) -> the per-sample gain curve
    (len(needs) * block,) float32: at or under every block's need inside it, linear between block edges."""
    nb = needs.size
    attack = max(1, int(round(ATTACK_S * sample_rate / block)))
    release = max(1, int(round(RELEASE_S * sample_rate / block)))
    edges = np.ones(nb + 1)
    edges[:-1] = np.minimum(edges[:-1], needs)  # edge i opens block i
    edges[1:] = np.minimum(edges[1:], needs)  # edge i + 1 closes it
    deficit = 1.0 - needs
    for d in range(1, attack + 1):  # edge i ahead of block i + d - 1 ... reaches the need by edge i + d
        ramp = needs[d:] + deficit[d:] * (d / (attack + 1))
        edges[: nb - d] = np.minimum(edges[: nb - d], ramp)
    for d in range(1, release + 1):  # edge i + 1 + d after block i
        ramp = needs[: nb - d] + deficit[: nb - d] * (d / (release + 1))
        edges[1 + d :] = np.minimum(edges[1 + d :], ramp)
    frac = (np.arange(block) + 0.5) / block
    curve = edges[:-1, None] + (edges[1:] - edges[:-1])[:, None] * frac[None, :]
    return curve.ravel().astype(np.float32)


def limit(audio: np.ndarray, ceiling_dbtp: float = CEILING_DBTP, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """(channels, n) float32 -> the same held under `ceiling_dbtp` (sample and 4x inter-sample peaks); blocks
    already under it are returned unchanged (a copy)."""
    x = np.array(audio, dtype=np.float32, copy=True)
    if x.shape[-1] == 0:
        return x
    c = 10.0 ** ((ceiling_dbtp - MARGIN_DB) / 20.0)
    peaks = block_true_peaks(x, floor=c * 10.0 ** (-_CANDIDATE_DB / 20.0))
    needs = np.minimum(1.0, c / np.maximum(peaks, 1e-12))
    if needs.min() >= 1.0:
        return x
    x *= limiter_gain(needs, sample_rate=sample_rate)[None, : x.shape[-1]]
    return x


def apply(audio: np.ndarray, gain_db: float, ceiling_dbtp: float = CEILING_DBTP,
          sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """The whole stage on one block: (channels, n) float32 times the gain, then limited under the ceiling."""
    x = np.asarray(audio, dtype=np.float32)
    if gain_db:
        x = x * np.float32(10.0 ** (gain_db / 20.0))
    return limit(x, ceiling_dbtp, sample_rate)
