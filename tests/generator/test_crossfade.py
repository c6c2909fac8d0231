from __future__ import annotations

import numpy as np
import pytest

from generator.crossfade import START_FADE, Joiner, crossfade, equal_power_gains, fade_out, fade_samples


def test_equal_power_gains_sum_to_one():
    g_out, g_in = equal_power_gains(1323)
    np.testing.assert_allclose(g_out**2 + g_in**2, 1.0, atol=1e-6)
    assert g_out[0] > 0.99 and g_in[-1] > 0.99 and np.all(np.diff(g_in) > 0)


def test_crossfade_of_identical_constant_peaks_at_plus_3db():
    a = np.ones((2, 1000), np.float32)
    mixed = crossfade(a, a)
    assert mixed.max() == pytest.approx(np.sqrt(2), abs=1e-3)
    with pytest.raises(ValueError, match="same shape"):
        crossfade(a, a[:, :10])


def test_joiner_is_seamless_on_a_continuous_signal():
    """Pieces cut from one sine with their lead-ins rejoin into the sine (up to the equal-power bump)."""
    sr, xf = 44100, 1323
    t = np.arange(sr * 2) / sr
    sig = np.stack([np.sin(2 * np.pi * 220 * t)] * 2).astype(np.float32)
    edges = [0, 20000, 41000, 70000]
    j = Joiner(xf)
    out = [j.push(sig[:, max(0, a - xf) : b] if a else np.pad(sig[:, :b], ((0, 0), (xf, 0))))
           for a, b in zip(edges[:-1], edges[1:], strict=True)]
    out.append(j.finish())
    y = np.concatenate(out, axis=1)
    assert y.shape[1] == edges[-1]
    np.testing.assert_allclose(y[:, START_FADE:], sig[:, START_FADE : edges[-1]], atol=0.42)
    assert np.max(np.abs(np.diff(y[0]))) < 0.05  # no click: steps no bigger than the sine's own slope


def test_joiner_first_piece_starts_at_its_start_and_refuses_short_pieces():
    j = Joiner(100)
    first = j.push(np.ones((2, 1100), np.float32))
    assert first.shape == (2, 900) and first[0, 0] < 0.05 and first[0, START_FADE] == 1.0
    with pytest.raises(ValueError, match="lead-in"):
        j.push(np.ones((2, 150), np.float32))


def test_fade_out_and_samples():
    y = fade_out(np.ones((2, 10), np.float32), 4)
    assert np.all(y[:, :6] == 1.0) and y[0, -1] < 0.2
    assert fade_samples(30, 44100) == 1323
    with pytest.raises(ValueError, match="milliseconds"):
        fade_samples(-1, 44100)
