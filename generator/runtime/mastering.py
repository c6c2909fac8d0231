"""Mix-bus tools for offline rendering (pure numpy/scipy): resampling, loudness, true peak and a peak ceiling.

Audio is float32 (channels, samples). Loudness is integrated LUFS per ITU-R BS.1770-4 (pyloudnorm). True peak is
the largest absolute value of the signal 4x oversampled (polyphase FIR), in dBTP, as BS.1770-4 Annex 2 suggests.
"""

from __future__ import annotations

import logging
import math

import numpy as np
from scipy.ndimage import minimum_filter1d, uniform_filter1d

from generator.errors import MusikaError

logger = logging.getLogger(__name__)

OVERSAMPLE = 4
LIMITER_WINDOW_S = 0.005  # look-ahead/attack of the ceiling gain curve (it is symmetric: offline)


class MasteringError(MusikaError, ValueError):
    """A loudness target cannot be reached (silent mix) or a resampling ratio is unsupported."""


def resample(audio: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """(channels, n) at sr_in -> (channels, round(n * sr_out / sr_in)) at sr_out; soxr (VHQ) when installed,
    else scipy's polyphase FIR. Deterministic either way."""
    if sr_in == sr_out:
        return np.asarray(audio, dtype=np.float32)
    n_out = int(round(audio.shape[-1] * sr_out / sr_in))
    try:
        import soxr

        out = soxr.resample(np.ascontiguousarray(audio.T, dtype=np.float32), sr_in, sr_out, quality="VHQ").T
    except ImportError:
        g = math.gcd(sr_in, sr_out)
        from scipy.signal import resample_poly  # imported here: scipy.signal costs ~1 s of CLI start-up

        out = resample_poly(audio, sr_out // g, sr_in // g, axis=-1)
    if out.shape[-1] < n_out:
        out = np.pad(out, ((0, 0), (0, n_out - out.shape[-1])))
    return np.ascontiguousarray(out[:, :n_out], dtype=np.float32)


def oversampled(audio: np.ndarray, factor: int = OVERSAMPLE) -> np.ndarray:
    """(channels, n) -> (channels, n * factor) band-limited interpolation (scipy resample_poly)."""
    from scipy.signal import resample_poly

    return resample_poly(np.asarray(audio, dtype=np.float64), factor, 1, axis=-1)


def true_peak_db(audio: np.ndarray) -> float:
    """True peak in dBTP (4x oversampled); -inf for silence."""
    peak = float(np.max(np.abs(oversampled(audio)))) if audio.size else 0.0
    return 20.0 * math.log10(peak) if peak > 0 else -math.inf


def loudness_lufs(audio: np.ndarray, sample_rate: int) -> float:
    """Integrated loudness (LUFS) of (channels, n) audio; -inf when the signal is silent or shorter than 0.4 s."""
    import pyloudnorm

    if audio.shape[-1] < int(0.4 * sample_rate) or not np.any(audio):
        return -math.inf
    return float(pyloudnorm.Meter(sample_rate).integrated_loudness(np.asarray(audio, np.float64).T))


def ceiling_gain(audio: np.ndarray, ceiling_db: float, sample_rate: int) -> np.ndarray:
    """Smooth per-sample gain (n,) <= 1 that keeps the oversampled peak of `audio` under `ceiling_db`.

    The required gain per output sample (the minimum over its oversampled neighbourhood and channels) is
    min-filtered over 2W+1 samples, then averaged over W+1: every averaged value is <= the requirement at its
    centre, so no sample is left above the ceiling (before the final check), and the gain moves smoothly."""
    ceiling = 10.0 ** (ceiling_db / 20.0)
    n = audio.shape[-1]
    peak = np.abs(oversampled(audio)).max(axis=0)[: n * OVERSAMPLE].reshape(n, OVERSAMPLE).max(axis=1)
    need = np.minimum(1.0, ceiling / np.maximum(peak, 1e-12))
    w = max(1, int(LIMITER_WINDOW_S * sample_rate))
    return uniform_filter1d(minimum_filter1d(need, 2 * w + 1, mode="nearest"), w + 1, mode="nearest")


def master(audio: np.ndarray, sample_rate: int, lufs: float | None, ceiling_db: float | None) -> tuple[
        np.ndarray, dict[str, float]]:
    """Normalise (channels, n) to `lufs` (when given), then hold the true peak under `ceiling_db` (when given).

    Returns (audio float32, report) where report has lufs_in, gain_db, lufs_out, true_peak_in, true_peak_out."""
    x = np.asarray(audio, dtype=np.float64)
    report = {"lufs_in": loudness_lufs(x, sample_rate), "true_peak_in": true_peak_db(x), "gain_db": 0.0}
    if lufs is not None:
        if not math.isfinite(report["lufs_in"]):
            raise MasteringError(f"the mix is silent (or shorter than 0.4 s), so it cannot be normalised to "
                                 f"{lufs} LUFS; remove [mix] lufs or check the stems' gain")
        report["gain_db"] = lufs - report["lufs_in"]
        x = x * 10.0 ** (report["gain_db"] / 20.0)
    if ceiling_db is not None:
        for _ in range(3):  # interpolated peaks of a gain-modulated signal can exceed by a hair: re-check
            if true_peak_db(x) <= ceiling_db:
                break
            x = x * ceiling_gain(x, ceiling_db - 0.05, sample_rate)[None, :]
        over = true_peak_db(x) - ceiling_db
        if over > 0:
            x = x * 10.0 ** (-(over + 0.01) / 20.0)
    out = x.astype(np.float32)
    report["lufs_out"] = loudness_lufs(out, sample_rate)
    report["true_peak_out"] = true_peak_db(out)
    return out, report
