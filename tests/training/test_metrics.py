"""Metric functions on synthetic audio and numbers where the right answer is known."""

from __future__ import annotations

import math

import numpy as np
import pytest

from training import metrics as M
from training.analysis import measure_tempo, onset_times

SR = 44100


def click_track(bpm: float, seconds: float, phase_s: float = 0.1) -> np.ndarray:
    """Stereo (2, samples): a 5 ms decaying 2 kHz blip on every beat over faint noise."""
    n = int(seconds * SR)
    y = np.random.default_rng(0).normal(0.0, 0.002, n)
    t = np.arange(int(0.005 * SR)) / SR
    blip = np.sin(2 * np.pi * 2000 * t) * np.exp(-t * 600) * 0.8
    for b in np.arange(phase_s, seconds, 60.0 / bpm):
        s = int(round(b * SR))
        e = min(n, s + blip.size)
        y[s:e] += blip[: e - s]
    return np.stack([y, y]).astype(np.float32)


def test_click_track_at_128_bpm_reads_128_within_half_a_percent():
    est = measure_tempo(click_track(128.0, 12.0), SR, bpm_range=(128 / math.sqrt(2), 128 * math.sqrt(2)))
    assert est.bpm == pytest.approx(128.0, rel=0.005)
    summary = M.tempo_summary([128.0], [est.bpm], [est.ibi_cv])
    assert summary["within_tolerance"] == 1.0
    assert summary["median_ibi_cv"] < 0.02


def test_tempo_summary_counts_misses_and_unfound_clips():
    s = M.tempo_summary([120, 128, 140, 150], [121.0, 128 * 1.03, math.nan, 150.0], [0.01, 0.02, math.nan, 0.03])
    assert s["within_tolerance"] == pytest.approx(0.5)  # 120->121 (0.83 %) and 150 hit; 3 % and NaN miss
    assert s["found_fraction"] == pytest.approx(0.75)
    assert s["median_ibi_cv"] == pytest.approx(0.02)
    assert s["median_abs_error_pct"] == pytest.approx(100 / 120)
    with pytest.raises(ValueError, match="same shape"):
        M.tempo_errors([120, 128], [120])


def test_spearman_on_monotonic_reversed_and_degenerate_data():
    x = [0.5, 1, 2, 4, 8]
    assert M.spearman(x, [1, 2, 30, 31, 100]) == pytest.approx(1.0)
    assert M.spearman(x, [5, 4, 3, 2, 1]) == pytest.approx(-1.0)
    assert math.isnan(M.spearman(x, [3, 3, 3, 3, 3]))
    assert math.isnan(M.spearman([1, 2], [1, 2]))


def test_onset_f_measure_windows_and_matching():
    ref = np.array([0.5, 1.0, 1.5, 2.0])
    assert M.onset_f_measure(ref, ref) == (1.0, 1.0, 1.0)
    assert M.onset_f_measure(ref, ref + 0.04)[0] == 1.0
    assert M.onset_f_measure(ref, ref + 0.06)[0] == 0.0
    f, p, r = M.onset_f_measure(ref, np.append(ref, 3.0))
    assert (p, r) == (0.8, 1.0) and f == pytest.approx(2 * 0.8 / 1.8)
    # one-to-one: two estimates near one reference count once
    assert M.match_onsets([1.0], [0.98, 1.02]) == 1
    # the greedy pass finds the maximum matching where "nearest first" would lose one
    assert M.match_onsets([0.0, 0.06], [0.04, 0.10]) == 2
    assert M.onset_f_measure([], []) == (1.0, 1.0, 1.0)
    assert M.onset_f_measure(ref, []) == (0.0, 0.0, 0.0)


def test_identical_signals_give_f_measure_one_and_zero_spectral_distance():
    audio = click_track(128.0, 4.0)
    onsets = onset_times(audio, SR)
    assert onsets.size > 4
    assert M.onset_f_measure(onsets, onset_times(audio.copy(), SR))[0] == 1.0
    assert M.mr_log_spectral_distance(audio, audio.copy(), SR) == 0.0


def test_spectral_distance_of_a_gain_change_is_the_gain_in_db():
    y = np.random.default_rng(1).normal(0, 0.1, SR).astype(np.float32)
    assert M.mr_log_spectral_distance(y, 0.5 * y, SR) == pytest.approx(20 * math.log10(2), abs=0.01)
    stereo = np.stack([y, y])
    longer = np.concatenate([y, y])
    assert M.mr_log_spectral_distance(stereo, longer, SR) == pytest.approx(0.0, abs=1e-9)  # mono mix, trimmed
    with pytest.raises(ValueError, match="channels, samples"):
        M.mr_log_spectral_distance(np.zeros((1, 2, 3)), y, SR)


def test_frechet_distance_of_shifted_gaussians_is_the_squared_shift():
    a = np.random.default_rng(2).normal(size=(400, 3))
    assert M.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-4)
    assert M.frechet_distance(a, a + np.array([2.0, 0.0, 0.0])) == pytest.approx(4.0, abs=1e-3)
    with pytest.raises(ValueError, match="n>=2"):
        M.frechet_distance(a[:1], a)


def test_realism_ratio_near_one_for_same_distribution_and_large_for_another():
    rng = np.random.default_rng(3)
    heldout = [rng.normal(size=(50, 4)) for _ in range(4)]
    same = [rng.normal(size=(50, 4)) for _ in range(2)]
    other = [rng.normal(3.0, 1.0, size=(50, 4)) for _ in range(2)]
    near = M.realism_ratio(same, heldout)["ratio"]
    far = M.realism_ratio(other, heldout)["ratio"]
    assert 0.2 < near < 5.0
    assert far > 20 * near
    with pytest.raises(ValueError, match="2 held-out"):
        M.realism_ratio(same, heldout[:1])


def test_clip_features_are_finite_per_segment():
    audio = click_track(128.0, 6.5)
    feats = M.segment_features(audio, SR)
    assert feats.shape == (2, 2 * M.N_MELS + 2 * M.N_MFCC + 12 + 3)
    assert np.all(np.isfinite(feats))
    assert np.all(np.isfinite(M.clip_features(np.zeros(100), SR)))


def test_seam_ratio_is_high_with_a_click_at_each_join_and_about_one_without():
    rng = np.random.default_rng(4)
    smooth = rng.normal(0, 0.1, 4 * SR)
    joins = list(range(16384, smooth.size, 16384))
    assert 0.85 < M.seam_flux_ratio(smooth, joins) < 1.15
    tone = 0.3 * np.sin(2 * np.pi * 440 * np.arange(4 * SR) / SR)
    assert 0.85 < M.seam_flux_ratio(tone, joins) < 1.15
    clicked = tone.copy()
    clicked[joins] += 0.5
    assert M.seam_flux_ratio(clicked, joins) > 10
    # a click away from the joins raises the baseline unless that position is excluded
    other = tone.copy()
    other[3 * SR + 5000] += 0.5
    assert M.seam_flux_ratio(other, joins) < M.seam_flux_ratio(other, joins, exclude=[3 * SR + 5000])
    assert math.isnan(M.seam_flux_ratio(tone, [10 * SR]))  # no join inside the audio
