"""The bar grid of an offline session: a tempo map that changes at bar starts, and a meter."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Grid:
    """Tempo map and meter. tempo: ((bar, bpm), ...) sorted, the first at bar 1; changes happen at bar starts.

    bpm counts quarter notes; a bar holds numerator * 4 / denominator quarter-note beats."""

    tempo: tuple[tuple[int, float], ...]
    meter: tuple[int, int] = (4, 4)

    @property
    def beats_per_bar(self) -> float:
        return self.meter[0] * 4.0 / self.meter[1]

    def bar_to_beat(self, bar: float) -> float:
        """1-based bar position (may be fractional) -> beats from the session start."""
        return (bar - 1.0) * self.beats_per_bar

    def bpm_at_bar(self, bar: float) -> float:
        bpm = self.tempo[0][1]
        for b, t in self.tempo:
            if b <= bar:
                bpm = t
        return bpm

    def seconds_at_bar(self, bar: float) -> float:
        """Time of a 1-based bar position in seconds (exact for the piecewise-constant tempo map)."""
        total, beats_done = 0.0, 0.0
        target = self.bar_to_beat(bar)
        for i, (b, bpm) in enumerate(self.tempo):
            start = self.bar_to_beat(b)
            end = self.bar_to_beat(self.tempo[i + 1][0]) if i + 1 < len(self.tempo) else math.inf
            seg = max(0.0, min(end, target) - max(start, beats_done))
            total += seg * 60.0 / bpm
            beats_done = max(beats_done, min(end, target))
            if target <= end:
                break
        return total

    def sample_at_bar(self, bar: float, sample_rate: int) -> int:
        """Sample index at which a bar position starts (rounded to the nearest sample)."""
        return int(round(self.seconds_at_bar(bar) * sample_rate))
