"""Telling a training run that has blown up from one that is only noisy (pure logic: logged values in, a verdict out).

An adversarial autoencoder can collapse in a few dozen steps after thousands of good ones: the critic wins, the
reconstruction losses jump tenfold and stay there, and every later checkpoint overwrites the good weights. Measured
on a width-0.5 shared autoencoder (level 1, lr 1e-4, critic from step 3,000): `ae1/magnitude` held 0.078-0.095 from
step 5,000 to 8,490, then read 0.17, 0.65, 1.02 at steps 8,500-8,520 and never came back (critic loss 0.0,
gradient norms up to 800); a NaN check does not see that.

:class:`DivergenceGuard` watches a stage's reconstruction terms. Each step it compares the median of the last
``window`` values of a term with the median of the ``history`` values before them; a term whose recent median is
more than ``factor`` times that median has diverged: it stayed up for over half the window. A burst of a few bad
batches does not count (a later run logged `ae1/stft` 22 against 1.9 at step 380, for a few steps, and went on).
Nothing is judged before ``warmup`` values (early training falls fast, and a term that starts later, such as level
2's, starts its own history).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from statistics import median


@dataclass(frozen=True)
class Divergence:
    """A term that blew up: its recent median against its earlier one, at `step`."""

    term: str
    step: int
    recent: float
    before: float
    factor: float

    def __str__(self) -> str:
        return (f"{self.term} rose to {self.recent:.3g} (median of the last steps) from {self.before:.3g} (median "
                f"before), over {self.factor:g}x, at step {self.step}")


class DivergenceGuard:
    """Watches `terms` (loss names as logged); `update(step, values)` returns a Divergence or None."""

    def __init__(self, terms: Iterable[str], factor: float = 4.0, window: int = 25, history: int = 500,
                 warmup: int = 200):
        if factor <= 1 or window < 1 or history < window or warmup < window:
            raise ValueError(f"need factor > 1, window >= 1, history >= window, warmup >= window; got {factor}, "
                             f"{window}, {history}, {warmup}")
        self.terms = tuple(terms)
        self.factor, self.window, self.history, self.warmup = factor, window, history, warmup
        self._values: dict[str, deque[float]] = {t: deque(maxlen=history + window) for t in self.terms}

    def reset(self) -> None:
        """Forget everything (e.g. the run went back to an earlier checkpoint)."""
        for v in self._values.values():
            v.clear()

    def update(self, step: int, values: Mapping[str, float]) -> Divergence | None:
        for term in self.terms:
            v = values.get(term)
            if v is None or not math.isfinite(v):  # NaN/inf are the finite check's to report
                continue
            seen = self._values[term]
            seen.append(float(v))
            if len(seen) < self.warmup:
                continue
            recent = list(seen)[-self.window:]
            before = median(list(seen)[: -self.window])
            now = median(recent)
            if before > 0 and now > self.factor * before:
                return Divergence(term, step, now, before, self.factor)
        return None
