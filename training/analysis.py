"""Pure audio measurements shared by data preparation, evaluation and tests.

Audio arrives as float arrays, either ``(samples,)`` or ``(channels, samples)``, with its sample rate in Hz.
Nothing here reads files or clocks.

- :func:`measure_tempo`: librosa ``beat_track(hop_length=64)`` plus a least-squares line through the beat times
  (librosa's own tempo estimate is off by 2-3 %; the line fit reads 128.000 on a 128 BPM pattern).
- :func:`onset_times` / :func:`onset_rate`: onset detection (librosa spectral flux, peak picking).
- :func:`density_curve_from_onsets`: onsets per second, smoothed, sampled at the latent rate (44100/4096 Hz).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

LATENT_RATE_HZ = 44100 / 4096
ONSET_HOP = 256  # samples; 5.8 ms at 44.1 kHz
ONSET_DELTA = 0.7  # dB of mean spectral flux above the local mean (tuned on rendered piano; see onset_times)


@dataclass(frozen=True)
class TempoEstimate:
    """Result of :func:`measure_tempo`.

    bpm: tempo in beats per minute after halving/doubling into the requested range (NaN when fewer than four
    beats were found). confidence: 0..1 from the line-fit residual (1 = beats on a perfect grid).
    beat_times: detected beat times in seconds, shape (beats,), at the metrical level the tracker chose.
    ibi_cv: coefficient of variation of the inter-beat intervals (0 = perfectly steady; NaN with < 3 beats).
    first_beat_s: phase of the fitted beat grid, in [0, 60/bpm) seconds (NaN when bpm is NaN).
    """

    bpm: float
    confidence: float
    beat_times: np.ndarray = field(repr=False)
    ibi_cv: float
    first_beat_s: float = math.nan


def to_mono(audio: np.ndarray) -> np.ndarray:
    """(samples,) or (channels, samples) -> float32 (samples,) by averaging channels."""
    a = np.asarray(audio, dtype=np.float32)
    if a.ndim == 1:
        return a
    if a.ndim == 2:
        return a.mean(axis=0)
    raise ValueError(f"audio must have shape (samples,) or (channels, samples), got {a.shape}")


def fold_bpm(bpm: float, bpm_range: tuple[float, float]) -> float:
    """Halve or double ``bpm`` until it lies in ``bpm_range`` (as far as octave steps allow)."""
    lo, hi = bpm_range
    if not (0 < lo < hi):
        raise ValueError(f"bpm_range must be (low, high) with 0 < low < high, got {bpm_range}")
    if not math.isfinite(bpm) or bpm <= 0:
        return math.nan
    while bpm > hi and bpm / 2 >= lo:
        bpm /= 2
    while bpm < lo and bpm * 2 <= hi:
        bpm *= 2
    return bpm


def fit_beat_grid(beat_times: np.ndarray) -> tuple[float, float, float]:
    """Least-squares line ``t = t0 + k * period`` through beat times.

    Beat indices k come from rounding the distance to the first beat in median inter-beat intervals, so a
    missed beat does not bend the line. Returns (period_s, t0_s, rms_residual_s); NaNs with < 4 beats.
    """
    t = np.asarray(beat_times, dtype=np.float64)
    if t.size < 4:
        return math.nan, math.nan, math.nan
    med = float(np.median(np.diff(t)))
    if med <= 0:
        return math.nan, math.nan, math.nan
    k = np.round((t - t[0]) / med)
    design = np.stack([k, np.ones_like(k)], axis=1)
    (period, t0), *_ = np.linalg.lstsq(design, t, rcond=None)
    resid = t - (t0 + period * k)
    return float(period), float(t0), float(np.sqrt(np.mean(resid**2)))


def measure_tempo(audio: np.ndarray, sr: int, bpm_range: tuple[float, float] = (60.0, 200.0)) -> TempoEstimate:
    """Tempo of ``audio`` (samples,) or (channels, samples) at ``sr`` Hz.

    Confidence is ``1 - rms_residual / (0.1 * period)`` clipped to 0..1, scaled down when fewer than 8 beats
    were found: 0 means the beats do not sit on a steady grid (rubato, no pulse, or too short).
    """
    import librosa  # heavy import, deferred

    y = to_mono(audio)
    if y.size < 2 * 64:
        return TempoEstimate(math.nan, 0.0, np.zeros(0), math.nan)
    # The tempo prior comes from a coarse envelope (hop 512): librosa's tempogram at hop 64 costs ~30 s per
    # 30 s of audio. The beats themselves are tracked on the fine envelope and the line fit sets the tempo.
    coarse = librosa.onset.onset_strength(y=y, sr=sr, hop_length=512)
    prior = float(np.atleast_1d(librosa.feature.tempo(onset_envelope=coarse, sr=sr, hop_length=512))[0])
    fine = librosa.onset.onset_strength(y=y, sr=sr, hop_length=64)
    _, beats = librosa.beat.beat_track(onset_envelope=fine, sr=sr, hop_length=64, bpm=prior, units="time")
    beats = np.asarray(beats, dtype=np.float64)
    if beats.size >= 8:
        # librosa's tracker often places a spurious beat at either edge of the clip; it bends the line fit
        beats = beats[1:-1]
    ibi = np.diff(beats)
    ibi_cv = float(np.std(ibi) / np.mean(ibi)) if ibi.size >= 2 and np.mean(ibi) > 0 else math.nan
    period, t0, rms = fit_beat_grid(beats)
    if not math.isfinite(period) or period <= 0:
        return TempoEstimate(math.nan, 0.0, beats, ibi_cv)
    confidence = float(np.clip(1.0 - rms / (0.1 * period), 0.0, 1.0)) * min(1.0, beats.size / 8)
    bpm = fold_bpm(60.0 / period, bpm_range)
    first_beat = float(t0 % (60.0 / bpm)) if math.isfinite(bpm) else math.nan
    return TempoEstimate(float(bpm), confidence, beats, ibi_cv, first_beat)


def onset_times(audio: np.ndarray, sr: int, delta: float = ONSET_DELTA) -> np.ndarray:
    """Onset times in seconds, shape (onsets,), float64, from librosa's spectral-flux onset detector.

    The flux is in dB (so independent of level) and not normalised per file: a peak counts when it exceeds
    the local mean by ``delta`` dB. Normalising would turn the tiny ripples of a steady tone into onsets.
    """
    import librosa

    y = to_mono(audio)
    if y.size < 2 * ONSET_HOP or not np.any(y):
        return np.zeros(0)
    env = librosa.onset.onset_strength(y=y, sr=sr, hop_length=ONSET_HOP)
    frames = librosa.onset.onset_detect(onset_envelope=env, sr=sr, hop_length=ONSET_HOP, normalize=False, delta=delta)
    return np.asarray(librosa.frames_to_time(frames, sr=sr, hop_length=ONSET_HOP), dtype=float)


def onset_rate(audio: np.ndarray, sr: int) -> float:
    """Detected onsets per second over the whole of ``audio`` (0.0 for empty audio)."""
    seconds = to_mono(audio).size / sr
    return float(onset_times(audio, sr).size / seconds) if seconds > 0 else 0.0


def density_curve_from_onsets(
    onset_times: np.ndarray,
    seconds: float,
    rate_hz: float = LATENT_RATE_HZ,
    smooth_s: float = 1.0,
) -> np.ndarray:
    """Note density (onsets per second) per step, shape (round(seconds * rate_hz),) float32.

    Step i covers [i, i+1) / rate_hz seconds. Onsets are counted per step and smoothed with a Gaussian of
    standard deviation ``smooth_s`` seconds; the kernel is renormalised at the edges, so a steady onset rate
    reads the same at the ends as in the middle. Onsets outside [0, seconds) are ignored.
    """
    if seconds <= 0 or rate_hz <= 0:
        raise ValueError(f"seconds and rate_hz must be positive, got seconds={seconds}, rate_hz={rate_hz}")
    n = max(1, int(round(seconds * rate_hz)))
    t = np.asarray(onset_times, dtype=np.float64)
    idx = np.floor(t[(t >= 0) & (t < n / rate_hz)] * rate_hz).astype(np.int64)
    counts = np.bincount(idx, minlength=n)[:n].astype(np.float64)
    if smooth_s <= 0:
        return (counts * rate_hz).astype(np.float32)
    sigma = smooth_s * rate_hz
    half = int(math.ceil(4 * sigma))
    x = np.arange(-half, half + 1)
    kernel = np.exp(-0.5 * (x / sigma) ** 2)
    num = _conv_same(counts, kernel)
    den = _conv_same(np.ones(n), kernel)
    return (num / den * rate_hz).astype(np.float32)


def _conv_same(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """'same'-size convolution (len(x) out) for an odd kernel, also when the kernel is longer than x."""
    full = np.convolve(x, kernel, mode="full")
    start = (kernel.size - 1) // 2
    return full[start : start + x.size]
