"""Least-squares fits of tick times against tick indices (pure): lines with outlier rejection, parabolas for ramps,
and the standard error of a line's slope. Used by :class:`bridge.tempo.ClockTempoEstimator`."""

from __future__ import annotations

import math
from statistics import median

import numpy as np

STAMP_FLOOR_S = 2e-5  # about a sample at 48 kHz

def fit_line(xs: list[int], ys: list[float]) -> tuple[float, float, float]:
    """Least-squares line y = a + b x with outlier rejection (points beyond 3 robust sd, e.g. a tick stamped a
    period late by an xrun, are dropped and the line refitted). Returns (slope b, fitted y at the last x, robust
    residual sd)."""
    b, last, sigma = _lsq(xs, ys)
    if sigma > 0 and len(xs) >= 8:
        a = last - b * xs[-1]
        keep = [i for i, (x, y) in enumerate(zip(xs, ys, strict=True)) if abs(y - (a + b * x)) <= 3 * sigma]
        if len(xs) - 2 >= len(keep) >= 0.75 * len(xs) or 0 < len(xs) - len(keep) <= 2 and len(keep) >= 4:
            b2, _, sigma = _lsq([xs[i] for i in keep], [ys[i] for i in keep])
            a2 = _lsq_intercept([xs[i] for i in keep], [ys[i] for i in keep], b2)
            return b2, a2 + b2 * xs[-1], sigma
    return b, last, sigma


def _lsq_intercept(xs: list[int], ys: list[float], b: float) -> float:
    return sum(ys) / len(ys) - b * sum(xs) / len(xs)


def _lsq(xs: list[int], ys: list[float]) -> tuple[float, float, float]:
    """Plain least-squares line y = a + b x: (slope b, fitted y at the last x, robust residual sd)."""
    n = len(xs)
    mx = sum(xs) / n
    my = sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx <= 0:
        return 0.0, ys[-1], 0.0
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
    a = my - b * mx
    if n < 4:
        return b, a + b * xs[-1], 0.0
    res = [abs(y - (a + b * x)) for x, y in zip(xs, ys, strict=True)]
    sigma = 1.4826 * median(res) * math.sqrt(n / (n - 2))
    return b, a + b * xs[-1], sigma


def parabola(xs: list[int], ys: list[float]) -> tuple[float, float, float, float, float]:
    """Least-squares parabola through a window's ticks, in terms centred on the window: y = a + b u + c (u^2 - m)
    with u = x - (the window's centre) and m the mean of u^2, so b is the straight line's slope. Returns
    (a, b, c, d, m), d = u at the last tick."""
    x = np.asarray(xs, np.float64)
    u = x - x.mean()
    m = float(np.mean(u * u))
    y = np.asarray(ys, np.float64) - ys[-1]
    w = u * u - m
    a = float(y.mean())
    b = float(np.dot(u, y) / np.dot(u, u))
    c = float(np.dot(w, y - b * u) / np.dot(w, w))  # (u and u^2 - m are orthogonal on a symmetric window)
    return a + ys[-1], b, c, float(u[-1]), m


def curvature_z(xs: list[int], ys: list[float]) -> float:
    """How sure a bend in the ticks' times is: a parabola's curvature over its standard error (from the robust
    spread of the residuals). A steady tempo reads within +-3 with any jitter; a ramp reads 5 and more once the
    window holds enough of it (1.6 BPM/s over two beats: ~50 with exact stamps, ~5 with 0.5 ms of jitter)."""
    x = np.asarray(xs, np.float64)
    u = x - x.mean()
    design = np.stack([np.ones_like(u), u, u * u], axis=1)
    y = np.asarray(ys, np.float64) - ys[-1]
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    res = y - design @ coef
    n = len(xs)
    # (no stamp is better than a sample: exact stamps must not make rounding look like a bend)
    sigma = max(1.4826 * float(np.median(np.abs(res))) * math.sqrt(n / max(n - 3, 1)), STAMP_FLOOR_S)
    se = sigma * math.sqrt(float(np.linalg.inv(design.T @ design)[2, 2]))
    return float(coef[2] / se)


def slope_se(sigma: float, n: int) -> float:
    """Standard error of a least-squares slope over n equally spaced points with residual sd sigma."""
    return sigma * math.sqrt(12.0 / (n * (n * n - 1))) if n > 2 else math.inf


def hinge(xs: list[int], ys: list[float], min_after: int, max_after: int, power: int = 1,
          every: int = 1) -> tuple[float, float, int]:
    """The likeliest kink in a window of ticks: a line whose slope changes after one of its last ``min_after`` to
    ``max_after`` ticks (every ``every``-th): a tempo step, every tick after it a period's change further off the line
    before (``power`` 2: a ramp's start, the ticks after it off by the square of their distance from it).
    Returns (z, change of slope, ticks after the kink) for the kink that fits best, z being the change over its
    standard error (from the robust residual spread). A steady clock reads within about +-5 with any jitter; a 5 %
    step with 0-4 ms of scatter reads 8 and more eight ticks after it, where its ticks are still inside the scatter."""
    x = np.asarray(xs, np.float64) - xs[-1]
    y = np.asarray(ys, np.float64) - ys[-1]
    n = x.size
    ks = np.arange(min_after, min(max_after, n - 3) + 1, every)
    if ks.size == 0:
        return 0.0, 0.0, 0
    kinks = x[n - 1 - ks]  # the last tick before the change, per candidate
    h = np.maximum(0.0, x[None, :] - kinks[:, None]) ** power
    design = np.stack([np.ones_like(h), np.broadcast_to(x, h.shape), h], axis=2)  # (candidates, n, 3)
    gram = np.einsum("cni,cnj->cij", design, design)
    coef = np.linalg.solve(gram, np.einsum("cni,n->ci", design, y)[:, :, None])[:, :, 0]
    res = y[None, :] - np.einsum("cni,ci->cn", design, coef)
    best = int(np.argmin(np.einsum("cn,cn->c", res, res)))
    sigma = max(1.4826 * float(np.median(np.abs(res[best]))) * math.sqrt(n / (n - 3)), STAMP_FLOOR_S)
    se = sigma * math.sqrt(float(np.linalg.inv(gram[best])[2, 2]))
    return float(coef[best, 2] / se), float(coef[best, 2]), int(ks[best])
