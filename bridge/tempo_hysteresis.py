"""When a new tempo is worth re-conditioning the model for (pure logic): the same rule for every sync source
(MIDI clock, JACK transport, Ableton Link)."""

from __future__ import annotations

import math


class TempoHysteresis:
    """Decides when a new tempo is worth re-conditioning the model for.

    A change is passed on when it exceeds ``threshold_bpm``, on a step, or at a bar boundary when it differs at
    all (more than ``bar_epsilon_bpm``). Everything smaller is left to the time-stretch stage.
    """

    def __init__(self, threshold_bpm: float = 0.3, bar_epsilon_bpm: float = 0.01):
        self.threshold_bpm, self.bar_epsilon_bpm = threshold_bpm, bar_epsilon_bpm
        self.current: float | None = None
        self.slope = 0.0  # the ramp's slope passed on with the current tempo (BPM per second)

    def update(self, bpm: float | None, step: bool = False, at_bar: bool = False,
               slope: float = 0.0) -> float | None:
        """Returns the new tempo to condition on, or None to keep the current one. A ramp's ``slope`` (BPM per
        second) is passed on with it when it starts, ends, or changes by more than a quarter."""
        if bpm is None:
            return None
        diff = math.inf if self.current is None else abs(bpm - self.current)
        ramp_news = (slope == 0.0) != (self.slope == 0.0) or abs(slope - self.slope) > 0.25 * abs(self.slope)
        if (diff > self.threshold_bpm or (step and diff > 0) or (at_bar and diff > self.bar_epsilon_bpm)
                or ramp_news):
            self.current, self.slope = bpm, slope
            return bpm
        return None
