"""The latent coordinate system as an endless, seeded, random-access stream.

Reference (musika-architecture.md §3.3): anchors a_i = [local_i ‖ g] spaced ``anchor_spacing`` latents apart
(1.5 windows), linear interpolation between neighbours (the segment's end point dropped), then the midpoints of
neighbouring points, then generator windows of two halves starting at ``half_len / 2 + window_len * k``. The
global style vector g is the same for every anchor.

Here anchor i and g are derived from the seed alone (``SeedSequence([seed, i])``), so any latent step can be
recomputed at any time with O(1) memory: generation can run forever and a window can be regenerated with new
conditioning from any step. Truncated sampling uses the inverse CDF of a fixed uniform draw per value, so changing
the truncation bound moves each anchor smoothly instead of re-drawing it.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy.special import ndtr, ndtri

from generator.runtime.model_config import GanConfig

_GLOBAL_INDEX = 2**31 - 1


def truncated_normal(u: np.ndarray, bound: float) -> np.ndarray:
    """Map uniforms u in (0, 1) to a standard normal truncated to [-bound, bound] (inverse-CDF method)."""
    if not bound > 0:
        raise ValueError(f"truncation bound must be > 0, got {bound}")
    lo = ndtr(-bound)
    return ndtri(lo + u * (1.0 - 2.0 * lo))


@lru_cache(maxsize=4096)
def _uniforms(seed: int, index: int, dim: int) -> np.ndarray:
    rng = np.random.default_rng(np.random.SeedSequence([seed & 0xFFFFFFFF, index]))
    u = rng.random(dim)
    u.setflags(write=False)
    return u


class CoordinateStream:
    """Coordinates for latent steps 0, 1, 2, ... of one endless piece.

    Step n of the stream is the n-th latent of the concatenated generator halves; half h covers steps
    [h * half_len, (h + 1) * half_len).
    """

    def __init__(self, cfg: GanConfig, seed: int, truncation: float | None = None):
        self.cfg = cfg
        self.seed = int(seed)
        self.truncation = float(truncation if truncation is not None else cfg.default_truncation)
        if not 0 < self.truncation <= 10:
            raise ValueError(f"truncation must be in (0, 10], got {truncation}")

    def anchor(self, index: int, truncation: float | None = None) -> np.ndarray:
        """Anchor `index` (>= 0): [local (local_dim) ‖ global (global_dim)], float64."""
        b = self.truncation if truncation is None else truncation
        local = truncated_normal(_uniforms(self.seed, index, self.cfg.local_dim), b)
        glob = truncated_normal(_uniforms(self.seed, _GLOBAL_INDEX, self.cfg.global_dim), b)
        return np.concatenate([local, glob])

    def _points(self, m: np.ndarray, truncation: float | None) -> np.ndarray:
        """Interpolated (pre-midpoint) trajectory points p[m], (len(m), coord_dim)."""
        s = self.cfg.anchor_spacing
        i = m // s
        frac = (m - i * s) / s
        uniq = np.unique(np.concatenate([i, i + 1]))
        anchors = {int(k): self.anchor(int(k), truncation) for k in uniq}
        a0 = np.stack([anchors[int(k)] for k in i])
        a1 = np.stack([anchors[int(k) + 1] for k in i])
        return a0 + frac[:, None] * (a1 - a0)

    def steps(self, start: int, stop: int, truncation: float | None = None) -> np.ndarray:
        """Coordinates of latent steps [start, stop), float32 (stop - start, coord_dim)."""
        if start < 0 or stop < start:
            raise ValueError(f"invalid step range [{start}, {stop})")
        m = np.arange(start, stop, dtype=np.int64) + self.cfg.half_len // 2
        return (0.5 * (self._points(m, truncation) + self._points(m + 1, truncation))).astype(np.float32)

    def halves(self, first: int, count: int, truncation: float | None = None) -> np.ndarray:
        """Coordinates of generator halves [first, first + count), float32 (count, half_len, coord_dim)."""
        h = self.cfg.half_len
        return self.steps(first * h, (first + count) * h, truncation).reshape(count, h, self.cfg.coord_dim)

    def window(self, k: int, truncation: float | None = None) -> np.ndarray:
        """Generator window k as the reference builds it, (window_len, coord_dim)."""
        return self.halves(2 * k, 2, truncation).reshape(self.cfg.window_len, self.cfg.coord_dim)
