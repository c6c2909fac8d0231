"""A host's tempo ramp from the tempi it states one after another (pure).

A JACK timebase master states its tempo every period, a Link session at every change; during a tempo map's ramp
they step it many times a second. The ramp's slope (BPM per second) lets the live stream plan the beats ahead along
it (generator.timeline.host_line) instead of at the tempo of the moment.
"""

from __future__ import annotations

import math
from collections import deque

MIN_SLOPE = 0.1  # BPM per second: a gentler glide is followed as a drift
RAMP_WINDOW_S = 0.5  # a ramp's slope is measured over this much of the host's recent tempo changes
RAMP_HOLD_S = 0.1  # a tempo unchanged this long is no longer ramping


class RampSlope:
    """The slope of the tempi stated over the last ``window`` s, while the tempo still moves (it changed within the
    last ``hold`` s); 0 when it holds, or when the slope is under MIN_SLOPE. Feed every statement (changed or not)
    to :meth:`update`; ``reset`` (a jump, a start) forgets the ramp so far."""

    def __init__(self, window: float = RAMP_WINDOW_S, hold: float = RAMP_HOLD_S) -> None:
        self.window, self.hold = window, hold
        self._tempi: deque[tuple[float, float]] = deque()  # (time, tempo) at each change
        self._t_prev = -math.inf  # time of the statement before

    def update(self, t: float, bpm: float, reset: bool = False) -> float:
        """The tempo ``bpm`` stated at time ``t`` (seconds); returns the ramp's slope there (BPM per second)."""
        t_prev, self._t_prev = self._t_prev, t
        if reset:
            self._tempi.clear()
        if not self._tempi or self._tempi[-1][1] != bpm:
            if self._tempi and t_prev - self._tempi[-1][0] > self.hold:  # a ramp starts: it held until then
                self._tempi = deque([(t_prev, self._tempi[-1][1])])
            self._tempi.append((t, bpm))
        while len(self._tempi) > 2 and t - self._tempi[1][0] >= self.window:
            self._tempi.popleft()
        (t0, b0), (t1, b1) = self._tempi[0], self._tempi[-1]
        if len(self._tempi) < 3 or t - t1 > self.hold or t1 <= t0:
            return 0.0
        slope = (b1 - b0) / (t1 - t0)
        return slope if abs(slope) >= MIN_SLOPE else 0.0
