from __future__ import annotations

import numpy as np
import pytest

from generator.timeline.crossfade import START_FADE, Joiner, crossfade, equal_power_gains, fade_out, fade_samples


def test_equal_power_gains_sum_to_one():
    g_out, g_in = equal_power_gains(1323)
    np.testing.assert_allclose(g_out**2 + g_in**2, 1.0, atol=1e-6)
    assert g_out[0] > 0.99 and g_in[-1] > 0.99 and np.all(np.diff(g_in) > 0)


def test_crossfade_of_identical_blocks_leaves_them_unchanged():
    """A join inside one generated stream (the same audio on both sides) neither swells nor lifts its peaks."""
    a = np.random.default_rng(0).uniform(-1, 1, (2, 1323)).astype(np.float32)
    mixed = crossfade(a, a)
    np.testing.assert_allclose(mixed, a, atol=1e-6)
    with pytest.raises(ValueError, match="same shape"):
        crossfade(a, a[:, :10])


def test_crossfade_of_unrelated_blocks_keeps_their_loudness():
    rng = np.random.default_rng(1)
    a, b = (rng.standard_normal((2, 20000)).astype(np.float32) for _ in range(2))
    mixed = crossfade(a, b)
    mid = slice(8000, 12000)  # the middle of the fade, where equal gains would dip by 3 dB
    ratio = np.sqrt(np.mean(mixed[:, mid] ** 2) / np.mean(a[:, mid] ** 2))
    assert ratio == pytest.approx(1.0, abs=0.05)


def test_joiner_holds_the_ceiling_where_two_partly_alike_pieces_cross():
    """Two pieces each under the ceiling, alike enough to add up in the middle of the fade: the join is dipped
    under the ceiling smoothly (no step at either end) instead of rising above it."""
    xf = 1000
    rng = np.random.default_rng(2)
    common = rng.uniform(-1, 1, (2, xf))
    a = (0.45 * common + 0.45 * rng.uniform(-1, 1, (2, xf))).astype(np.float32)
    b = (0.45 * common + 0.45 * rng.uniform(-1, 1, (2, xf))).astype(np.float32)
    ceiling_db = -1.0
    plain = Joiner(xf)
    held = Joiner(xf, ceiling_dbtp=ceiling_db)
    body = np.full((2, 3000), 0.1, np.float32)
    for j in (plain, held):
        j.push(np.concatenate([body, a], axis=1))
    over = plain.push(np.concatenate([b, body], axis=1))[:, :xf]
    under = held.push(np.concatenate([b, body], axis=1))[:, :xf]
    limit = 10 ** (ceiling_db / 20)
    assert np.abs(over).max() > limit
    assert np.abs(under).max() <= limit + 1e-6
    assert abs(under[0, 0] - over[0, 0]) < 1e-3 and abs(under[0, -1] - over[0, -1]) < 1e-2


def test_joiner_is_seamless_on_a_continuous_signal():
    """Pieces cut from one sine with their lead-ins rejoin into the sine."""
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
    np.testing.assert_allclose(y[:, START_FADE:], sig[:, START_FADE : edges[-1]], atol=1e-5)
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
