"""Setting a MIDI clock count right from the clock's time after odd ticks (pure logic: tick times in, a count out).

A busy daemon's port gets ticks twice, late, or not at all for a second (recorded with scripts/jack_tick_probe.py);
counting them one by one ends beats away from the sender. :class:`Recount` notes each steady tick (its fitted time,
the count there, the tick period), and once the clock has been steady again for ``CALM_TICKS`` ticks at the same
tempo it gives the count the time since then says. The times are fitted (the estimator's line before, a line through
the calm ticks after), so an interface that scatters its ticks (each 0-8 ms late) does not move the count; where the
time still leaves the count in doubt (the two tempi put it on different clocks, or it falls near half a clock) the
count is left as it is: a count set one clock off is heard as every beat a clock early, until the next locate.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np

CALM_TICKS = 24  # ordinary ticks in a row after odd ones before the count is checked against the clock's time
RECOUNT_MAX_S = 4.0  # the longest disturbance recounted from time (the tempo is taken as steady across it)
SURE = 0.3  # the count from time is taken when it falls this close to a whole clock (and both tempi agree on it)


class Recount:
    """Feed every counted tick: :meth:`tick` returns the count the clock's time says, or None to keep counting."""

    def __init__(self) -> None:
        self.forget()

    def forget(self) -> None:
        """A new start, continue or locate: nothing before it is steady."""
        self._steady: tuple[float, int, float, float] | None = None  # (fitted time, count, period, jitter)
        self._calm: deque[float] = deque(maxlen=CALM_TICKS + 1)  # the ordinary ticks in a row (and the one before)
        self._odd = False  # odd ticks came since the last steady one
        self._prev: float | None = None

    def odd(self) -> None:
        """A tick the estimator dropped (a duplicate)."""
        self._calm.clear()
        self._odd = True

    def tick(self, t: float, count: int, advanced: int, note: str, bpm: float | None, fitted: float,
             jitter_s: float) -> int | None:
        """One counted tick at ``t`` (the sender's time), the count with it, how far the estimator moved it, its
        note, the estimator's tempo, fitted time of the tick and timing jitter (sd, s)."""
        prev, self._prev = self._prev, t
        if self._odd:  # judged against the tempo before the odd ticks (the estimator may be thrown for a while)
            period, jitter = self._steady[2:] if self._steady is not None else (math.nan, 0.0)
        else:
            period, jitter = (60.0 / bpm / 24 if bpm else math.nan), jitter_s
        # an interval about one period (its jitter allowed for: 0-8 ms of scatter on 14 ms reads 0.45-1.55)
        tol = min(0.6, max(0.25, 5.0 * jitter / period)) if period > 0 else 0.0
        if not (advanced == 1 and not note and prev is not None and abs((t - prev) / period - 1) < tol):
            self._calm.clear()  # (NaN period: not ordinary either)
            self._odd = self._steady is not None
            return None
        if not self._calm:
            self._calm.append(prev)
        self._calm.append(t)
        if not self._odd:
            self._steady = (fitted, count, period, jitter)
            return None
        if len(self._calm) <= CALM_TICKS:
            return None
        t0, n0, p0, jitter0 = self._steady  # type: ignore[misc]
        slope, intercept = np.polyfit(np.arange(len(self._calm)), np.asarray(self._calm), 1)
        now_period, t_end = float(slope), float(intercept + slope * (len(self._calm) - 1))
        self._odd = False
        self._steady = (t_end, count, now_period, jitter0)
        if not (t_end - t0 <= RECOUNT_MAX_S and abs(now_period / p0 - 1.0) <= 0.01):
            return None
        x0, x1 = (t_end - t0) / p0, (t_end - t0) / now_period
        if round(x0) != round(x1) or abs(x0 - round(x0)) > SURE:
            return None  # the time cannot say which clock this is: the count stands
        n = n0 + round(x0)
        self._steady = (t_end, n, now_period, jitter0)
        return n
