"""The listening figures on signals whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from training.listening import classifier_auc, frame_comb_ratio, output_levels

pytest.importorskip("sklearn")
SR = 44100


def _clips(rng, n, shift):
    return [rng.normal(shift, 1.0, (6, 12)) for _ in range(n)]


def test_the_classifier_cannot_tell_one_distribution_from_itself_but_tells_two_apart():
    rng = np.random.default_rng(0)
    same = classifier_auc(_clips(rng, 12, 0.0), _clips(rng, 12, 0.0))
    apart = classifier_auc(_clips(rng, 12, 1.5), _clips(rng, 12, 0.0))
    assert 0.3 < same < 0.7
    assert apart > 0.95
    assert np.isnan(classifier_auc(_clips(rng, 1, 0.0), _clips(rng, 5, 0.0)))  # too few clips to cross-validate


def test_a_clip_of_one_source_is_never_on_both_sides_of_a_fold():
    """Segments of one clip share its character: split by segment, the classifier would learn the clips."""
    rng = np.random.default_rng(1)
    offsets = rng.normal(0, 3.0, 24)  # each clip its own strong offset, same distribution on both sides
    clips = [rng.normal(o, 0.1, (8, 4)) for o in offsets]
    assert classifier_auc(clips[:12], clips[12:]) < 0.8


def test_frame_comb_ratio_finds_lines_at_multiples_of_the_frame_bin_spacing():
    rng = np.random.default_rng(2)
    noise = rng.standard_normal(2**18) * 0.1
    t = np.arange(noise.size) / SR
    lines = noise + sum(0.05 * np.sin(2 * np.pi * k * SR / 1024 * t) for k in range(1, 160))
    assert frame_comb_ratio(noise, SR) < 3  # the largest of 3 noise bins over the median: ~2
    assert frame_comb_ratio(lines, SR) > 20


def test_output_levels_count_clipped_samples_and_read_peak_and_loudness():
    x = np.full((2, SR), 0.5, np.float32)
    x[:, 1000:1010] = 1.0
    lv = output_levels(x, SR)
    assert lv["clipped_samples"] == 20 and lv["true_peak_dbtp"] >= -0.01 and np.isfinite(lv["loudness_lufs"])


def test_a_reconstruction_that_loses_the_bass_is_measured_by_how_much():
    """A kick-like 55 Hz tone under broadband noise: the spectral distance hardly sees the tone go, the bass
    figure of the autoencoder eval reports it in dB."""
    from training.ae_eval import clip_figures
    from training.listening import bass_level_db

    sr = 44100
    t = np.arange(4 * sr) / sr
    rng = np.random.default_rng(0)
    noise = 0.1 * rng.standard_normal(t.size)
    original = np.stack([0.5 * np.sin(2 * np.pi * 55 * t) + noise] * 2).astype(np.float32)
    thin = np.stack([0.05 * np.sin(2 * np.pi * 55 * t) + noise] * 2).astype(np.float32)  # 20 dB less bass
    assert bass_level_db(original, sr) == pytest.approx(-6.0, abs=0.5)  # a 0.5 sine: -6 dB
    assert clip_figures(original, thin, sr)["bass_vs_original_db"] == pytest.approx(-20.0, abs=1.0)
    assert clip_figures(original, original, sr)["bass_vs_original_db"] == pytest.approx(0.0, abs=1e-6)
