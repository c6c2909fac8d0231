"""The output stage: every preset at one loudness, the user's gain on top, nothing above the true-peak ceiling,
and music under the ceiling untouched."""

from __future__ import annotations

import numpy as np
import pytest

from generator.runtime import output_stage
from generator.runtime.mastering import loudness_lufs, true_peak_db
from generator.runtime.output_stage import OutputSettings, OutputStageError, limit

SR = 44100


def kicks(seconds: float = 4.0, level: float = 2.5, seed: int = 0) -> np.ndarray:
    """Four-on-the-floor sine-sweep kicks over hiss, peaking `level` (linear, > 1: as loud decoders give)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    t = np.arange(n) / SR
    x = 0.02 * rng.standard_normal(n)
    for start in np.arange(0, seconds, 0.5):
        k = t[(t >= start) & (t < start + 0.25)] - start
        x[(t >= start) & (t < start + 0.25)] += np.sin(2 * np.pi * (50 * k + 60 * (1 - np.exp(-k * 30)))) * np.exp(
            -k * 12)
    x = x / np.abs(x).max() * level
    return np.stack([x, 0.9 * x]).astype(np.float32)


def test_loud_audio_is_held_under_the_true_peak_ceiling_without_clipping():
    x = kicks(level=2.5)
    for ceiling in (-1.0, -3.0):
        y = limit(x, ceiling, SR)
        assert true_peak_db(y) <= ceiling + 1e-3
        # no hard clipping: the output follows the input's shape, scaled by a smooth gain
        gain = y[0] / np.where(np.abs(x[0]) > 1e-3, x[0], np.nan)
        ok = np.isfinite(gain)
        assert np.nanmin(gain) > 0.2 and np.nanmax(gain) <= 1.0 + 1e-6
        assert np.nanmax(np.abs(np.diff(gain[ok]))) < 0.05
        # the samples that would have been clipped keep their place in the waveform (the kick's peaks stay peaks)
        assert np.count_nonzero(np.abs(y) >= 10 ** (ceiling / 20) - 1e-4) == 0


def test_music_under_the_ceiling_passes_unchanged():
    x = kicks(level=0.5)
    np.testing.assert_array_equal(limit(x, -1.0, SR), x)


def test_a_near_nyquist_tone_is_held_between_samples_too():
    """A full-scale 11 kHz tone whose samples sit at 0.7 of its peak: the inter-sample peak counts."""
    t = np.arange(SR) / SR
    x = np.stack([np.sin(2 * np.pi * 11025 * t + np.pi / 4)] * 2).astype(np.float32)
    assert np.abs(x).max() < 0.75 and true_peak_db(x) > -0.5
    assert true_peak_db(limit(x, -1.0, SR)) <= -1.0


def test_gain_reduction_starts_before_the_peak_and_releases_after_it():
    x = np.full((2, 16384), 0.1, np.float32)
    x[:, 4000] = 2.0  # one spike
    y = limit(x, -1.0, SR)
    g = y[0] / x[0]
    before = round(output_stage.ATTACK_S * SR)
    assert g[4000] * 2.0 <= 10 ** (-1 / 20)
    assert g[4000 - before - output_stage.BLOCK * 2] == pytest.approx(1.0)  # untouched well before the attack
    assert 0.55 < g[4000 + int(0.03 * SR)] < 1.0  # half-way through the release
    assert g[4000 + int(0.1 * SR)] == pytest.approx(1.0)


def test_settings_out_of_range_are_refused_with_the_range():
    with pytest.raises(OutputStageError, match=r"ceiling_dbtp must be between -12 and 0 dBTP, got 3"):
        OutputSettings(ceiling_dbtp=3.0)
    with pytest.raises(OutputStageError, match=r"target_lufs must be between -36 and -9 LUFS"):
        OutputSettings(target_lufs=-3.0)
    with pytest.raises(OutputStageError, match=r"gain_db must be between -60 and 24 dB, got nan"):
        OutputSettings(gain_db=float("nan"))


def test_a_calibrated_preset_is_matched_to_the_target_and_the_users_gain_adds_on_top():
    s = OutputSettings(target_lufs=-18.0, gain_db=-3.0)
    assert s.preset_gain_db(-27.5) == pytest.approx(6.5)
    assert s.preset_gain_db(None) == pytest.approx(-3.0)  # an uncalibrated preset: the user's gain only
    x = kicks(level=0.05)
    y = output_stage.apply(x, OutputSettings().preset_gain_db(loudness_lufs(x, SR)), -1.0, SR)
    assert loudness_lufs(y, SR) == pytest.approx(-18.0, abs=0.5)
