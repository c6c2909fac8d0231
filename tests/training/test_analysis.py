"""training.analysis: tempo by beat tracking + line fit, onsets, density curves (synthetic signals)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from training.analysis import (
    LATENT_RATE_HZ,
    density_curve_from_onsets,
    fit_beat_grid,
    fold_bpm,
    measure_tempo,
    onset_rate,
    onset_times,
    to_mono,
)

SR = 44100


def clicks(times: np.ndarray, seconds: float, sr: int = SR) -> np.ndarray:
    """Decaying noise bursts (5 ms) at ``times``: (samples,) float32."""
    y = np.zeros(int(seconds * sr), np.float32)
    burst = np.random.default_rng(0).standard_normal(2000) * np.exp(-np.arange(2000) / 220)
    for t in times:
        i = int(round(t * sr))
        y[i : i + 2000] += burst[: len(y[i : i + 2000])].astype(np.float32)
    return 0.5 * y


def beat_times(bpm: float, seconds: float, start: float = 0.1) -> np.ndarray:
    return np.arange(start, seconds - 0.1, 60.0 / bpm)


def test_tempo_of_a_steady_pulse_is_exact_and_confident() -> None:
    y = clicks(beat_times(128.0, 10.0), 10.0)
    est = measure_tempo(np.stack([y, y]), SR)  # stereo input
    assert est.bpm == pytest.approx(128.0, abs=0.05)
    assert est.confidence > 0.9
    assert est.ibi_cv < 0.01
    assert 0.0 <= est.first_beat_s < 60.0 / est.bpm
    assert est.beat_times.size >= 15
    mono = measure_tempo(y, SR)
    assert mono.bpm == pytest.approx(est.bpm)


def test_tempo_is_folded_into_the_requested_range() -> None:
    y = clicks(beat_times(128.0, 10.0), 10.0)
    est = measure_tempo(y, SR, bpm_range=(40.0, 100.0))
    assert est.bpm == pytest.approx(64.0, abs=0.05)
    assert fold_bpm(256.0, (60.0, 200.0)) == 128.0
    assert fold_bpm(50.0, (60.0, 200.0)) == 100.0
    assert fold_bpm(150.0, (60.0, 200.0)) == 150.0
    assert math.isnan(fold_bpm(0.0, (60.0, 200.0)))
    with pytest.raises(ValueError, match="bpm_range"):
        fold_bpm(120.0, (200.0, 60.0))


def test_jittered_beats_lower_the_confidence() -> None:
    times = beat_times(120.0, 10.0) + np.random.default_rng(1).uniform(-0.04, 0.04, beat_times(120.0, 10.0).size)
    steady = measure_tempo(clicks(beat_times(120.0, 10.0), 10.0), SR)
    shaky = measure_tempo(clicks(times, 10.0), SR)
    assert shaky.confidence < steady.confidence - 0.2


def test_silence_has_no_tempo() -> None:
    est = measure_tempo(np.zeros(SR * 3, np.float32), SR)
    assert math.isnan(est.bpm) and est.confidence == 0.0


def test_line_fit_ignores_a_missed_beat() -> None:
    t = 0.25 + 0.5 * np.array([0, 1, 2, 4, 5, 6, 7], dtype=float)  # beat 3 missing
    period, t0, rms = fit_beat_grid(t)
    assert period == pytest.approx(0.5) and t0 == pytest.approx(0.25) and rms == pytest.approx(0.0, abs=1e-12)
    assert all(math.isnan(v) for v in fit_beat_grid(t[:3]))


def test_onsets_found_where_the_clicks_are_and_not_in_a_steady_tone() -> None:
    times = np.array([0.3, 0.8, 1.1, 1.9, 2.5])
    found = onset_times(clicks(times, 3.0), SR)
    assert found.size == times.size
    assert np.max(np.abs(found - times)) < 0.02
    tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(SR * 3) / SR)).astype(np.float32)
    assert onset_times(tone[SR // 10 :], SR).size <= 1  # at most the start of the tone
    assert onset_rate(clicks(np.arange(0.1, 4.9, 0.25), 5.0), SR) == pytest.approx(4.0, abs=0.25)
    assert onset_rate(np.zeros(100, np.float32), SR) == 0.0


def test_density_curve_reads_the_onset_rate_per_latent_step() -> None:
    steady = density_curve_from_onsets(np.arange(0.0, 30.0, 0.25), 30.0)
    assert steady.shape == (round(30.0 * LATENT_RATE_HZ),) and steady.dtype == np.float32
    mid = steady[50:-50]
    assert np.allclose(mid, 4.0, rtol=0.03)
    ramp = density_curve_from_onsets(np.concatenate([np.arange(0, 10, 0.5), np.arange(10, 20, 0.125)]), 20.0)
    third = ramp.size // 3
    assert ramp[-third:].mean() > 3 * ramp[:third].mean()
    raw = density_curve_from_onsets(np.array([0.5, 0.5, 1.0, 99.0, -1.0]), 2.0, smooth_s=0.0)
    assert raw.sum() / LATENT_RATE_HZ == pytest.approx(3.0)  # onsets outside [0, seconds) ignored
    assert not density_curve_from_onsets(np.zeros(0), 5.0).any()
    short = density_curve_from_onsets(np.array([0.1]), 0.2, smooth_s=1.0)  # kernel longer than the curve
    assert short.shape == (2,) and np.all(np.isfinite(short))
    with pytest.raises(ValueError):
        density_curve_from_onsets(np.zeros(0), 0.0)


def test_to_mono_accepts_only_1d_or_2d() -> None:
    assert to_mono(np.ones((2, 10))).shape == (10,)
    with pytest.raises(ValueError, match="channels, samples"):
        to_mono(np.ones((1, 2, 3)))


def test_onset_rate_holds_under_level_loud_mastering_and_reverb() -> None:
    """The density label counts the same notes whether the recording is quiet, limited +20 dB or reverberant."""
    from pedalboard import Gain, Limiter, Pedalboard, Reverb

    times = np.arange(0.1, 9.8, 0.25) + np.random.default_rng(2).uniform(-0.03, 0.03, 39)
    y = clicks(times, 10.0)
    assert onset_rate(y, SR) == pytest.approx(3.9, abs=0.15)
    loud = Pedalboard([Gain(20.0), Limiter(threshold_db=-0.5)])(y[None], SR)
    wet = Pedalboard([Reverb(room_size=0.8, wet_level=0.35, dry_level=0.8)])(y[None], SR)
    for variant in (0.03 * y, loud, wet):
        assert onset_rate(variant, SR) == pytest.approx(onset_rate(y, SR), rel=0.1)
