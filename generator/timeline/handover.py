"""Handing the live stream over to another timeline at a bar line, without a gap (pure: times and beats in).

While music plays on one clock (e.g. the internal one) another sync source can take over. If that host is
playing, what plays goes on until the host's first bar line that can still be rendered in time; the host's run
starts exactly there, its lead-in crossfaded with the last samples before it (the same equal-power join as
between any two pieces), so there is no silence and the host's downbeat sounds at full gain. If the host is
stopped, the run ends at its own next bar line, faded out, and waits for the host's Start; it plays that bar at its
own tempo (the tempo a stopped host states is for its Start: its first beat of clock read 112-123 BPM at 120, and
following each reading bent the last bar twenty times and once ran the ring dry).
"""

from __future__ import annotations

from dataclasses import dataclass

from generator.timeline.planner import BarGrid


@dataclass(frozen=True)
class HostJoin:
    """Join a playing host: it is at ``beat`` (quarter notes) at host time ``at_time`` (s), at ``bpm``."""

    beat: float
    bpm: float
    at_time: float

    def beat_at(self, t: float) -> float:
        return self.beat + (t - self.at_time) * self.bpm / 60.0

    def time_at(self, beat: float) -> float:
        return self.at_time + (beat - self.beat) * 60.0 / self.bpm

    def retimed(self, bpm: float | None, beat: float | None, at_time: float | None, t: float) -> HostJoin:
        """The host reported a tempo (``bpm``; None: unchanged) and/or its position (``beat`` at ``at_time``;
        None: where this one puts it at host time ``t``) before the join happened."""
        if beat is None or at_time is None:
            beat, at_time = self.beat_at(t), t
        return HostJoin(float(beat), self.bpm if bpm is None else float(bpm), float(at_time))

    def first_line(self, grid: BarGrid, earliest_time: float) -> tuple[float, float]:
        """(beat, host time) of the host's first bar line at or after host time ``earliest_time``."""
        beat = self.beat_at(earliest_time)
        line = grid.quantise(beat, "bar", beat)
        return line, self.time_at(line)


@dataclass(frozen=True)
class BarStop:
    """End the run at its own next bar line that can still be rendered (the host that took over is stopped);
    ``bpm``: the tempo that host stated meanwhile, for what follows the stop (None: none)."""

    bpm: float | None = None

    def first_line(self, grid: BarGrid, earliest_beat: float) -> float:
        return grid.quantise(earliest_beat, "bar", earliest_beat)


Handover = HostJoin | BarStop
