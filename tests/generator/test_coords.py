import numpy as np
import pytest

from generator.runtime.coords import CoordinateStream, truncated_normal
from generator.runtime.model_config import GanConfig


def test_window_alignment_matches_reference_construction():
    """Rebuild the reference's inference coordinates (musika-architecture.md §3.3) and compare."""
    cfg = GanConfig()
    stream = CoordinateStream(cfg, seed=7, truncation=2.0)
    fac = 3
    anchors = np.stack([stream.anchor(i) for i in range(fac + 2)])
    pts = []
    for a, b in zip(anchors[:-1], anchors[1:], strict=True):
        pts.append(np.linspace(a, b, cfg.anchor_spacing + 1)[:-1])
    pts = np.concatenate(pts)
    mid = 0.5 * (pts[:-1] + pts[1:])
    mid = mid[cfg.half_len // 2 :]
    for k in range(fac):
        ref = mid[k * cfg.window_len : (k + 1) * cfg.window_len]
        assert np.allclose(stream.window(k), ref, atol=1e-6)


def test_global_dims_constant_and_local_dims_drift_slowly():
    cfg = GanConfig()
    c = CoordinateStream(cfg, seed=1).steps(0, 2000)
    assert np.allclose(c[:, cfg.local_dim :], c[0, cfg.local_dim :])
    step = np.abs(np.diff(c[:, : cfg.local_dim], axis=0)).max()
    assert step < 4 * 2.0 / cfg.anchor_spacing + 1e-6


def test_random_access_equals_sequential_and_seed_matters():
    cfg = GanConfig(half_len=16)
    s = CoordinateStream(cfg, seed=3)
    whole = s.steps(0, 5000)
    assert np.array_equal(s.steps(1234, 4321), whole[1234:4321])
    assert np.array_equal(s.halves(10, 3).reshape(-1, 128), whole[160:208])
    assert not np.allclose(CoordinateStream(cfg, seed=4).steps(0, 10), whole[:10])


def test_endless_stream_has_bounded_memory_cost():
    s = CoordinateStream(GanConfig(), seed=0)
    far = s.steps(10**9, 10**9 + 256)
    assert far.shape == (256, 128) and np.all(np.isfinite(far))


def test_truncation_bounds_values_and_moves_them_smoothly():
    u = np.random.default_rng(0).random(10000)
    for b in (0.5, 1.0, 2.0):
        z = truncated_normal(u, b)
        assert np.abs(z).max() <= b + 1e-9
    assert np.abs(truncated_normal(u, 2.0) - truncated_normal(u, 2.01)).max() < 0.05
    with pytest.raises(ValueError):
        CoordinateStream(GanConfig(), seed=0, truncation=0)
