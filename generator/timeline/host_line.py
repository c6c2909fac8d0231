"""Where the host's beats fall while its tempo glides (pure: no clock is read here).

A sync source states where the host is (beat ``b0`` at host time ``t0``) and its tempo there; during a tempo ramp
it also states the ramp's slope (BPM per second). What the live stream renders now is heard up to a few seconds
later, when a ramping host has moved on: 1.6 BPM/s (126 -> 113 BPM over 8 s) extrapolated at a constant tempo puts
a beat 1.5 s ahead about 15 ms early. :class:`HostLine` extrapolates the ramp instead, for ``horizon_s`` at most
(a ramp ends; past the horizon the tempo it reached holds), so the beats planned ahead land where the host will
play them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

RAMP_HORIZON_S = 2.0  # a slope is trusted this far past the moment it was measured
PLAN_BEATS = 6  # a ramp is planned this many beats ahead at most (a new statement replans it)
MAX_SLOPE = 20.0  # BPM per second: more is not a ramp a host plays (a step is stated as a step)


@dataclass(frozen=True)
class HostLine:
    """The host at beat ``b0`` at host time ``t0`` (seconds), at ``bpm`` there and gliding by ``slope`` BPM per
    second for ``horizon_s`` seconds on; before ``t0`` at ``bpm``."""

    t0: float
    b0: float
    bpm: float
    slope: float = 0.0
    horizon_s: float = RAMP_HORIZON_S

    def __post_init__(self) -> None:
        if not self.bpm > 0:
            raise ValueError(f"tempo must be > 0 BPM, got {self.bpm!r}")
        # never so steep that the tempo would fall to half within the horizon
        limit = min(MAX_SLOPE, 0.5 * self.bpm / self.horizon_s) if self.horizon_s > 0 else 0.0
        slope = float(self.slope) if math.isfinite(self.slope) else 0.0  # (a broken estimate is no ramp)
        object.__setattr__(self, "slope", max(-limit, min(limit, slope)))

    @property
    def gliding(self) -> bool:
        return self.slope != 0.0 and self.horizon_s > 0

    def bpm_at(self, t: float) -> float:
        """The host's tempo at host time ``t``."""
        return self.bpm + self.slope * min(max(t - self.t0, 0.0), self.horizon_s)

    def beat_at(self, t: float) -> float:
        """The host's beat at host time ``t``."""
        tau = t - self.t0
        if tau <= 0 or not self.gliding:
            return self.b0 + tau * self.bpm / 60.0
        h = min(tau, self.horizon_s)
        return self.b0 + (self.bpm * h + 0.5 * self.slope * h * h + (tau - h) * self.bpm_at(self.t0 + h)) / 60.0

    def time_of(self, beat: float) -> float:
        """Host time at which the host plays ``beat`` (the inverse of :meth:`beat_at`)."""
        db = beat - self.b0
        if db <= 0 or not self.gliding:
            return self.t0 + db * 60.0 / self.bpm
        h = self.horizon_s
        db_h = (self.bpm * h + 0.5 * self.slope * h * h) / 60.0
        if db >= db_h:
            return self.t0 + h + (db - db_h) * 60.0 / self.bpm_at(self.t0 + h)
        # slope/2 tau^2 + bpm tau = 60 db, in the form that stays exact as the slope goes to 0
        return self.t0 + 120.0 * db / (self.bpm + math.sqrt(self.bpm * self.bpm + 120.0 * self.slope * db))

    def beat_tempos(self, beat: float, max_beats: int = PLAN_BEATS) -> list[tuple[float, float]]:
        """[(beat, tempo)]: the tempo that plays each beat from ``beat`` on exactly as long as the host takes for it,
        one beat after the other until the horizon (or ``max_beats``); the last holds (to 1e-6 BPM, for the control
        log). Holding: [(beat, bpm)], the tempo exactly as stated."""
        if not self.gliding:
            return [(beat, self.bpm)]
        out: list[tuple[float, float]] = []
        for j in range(max_beats):
            b = beat + j
            t = self.time_of(b)
            out.append((b, round(60.0 / (self.time_of(b + 1) - t), 6)))
            if t >= self.t0 + self.horizon_s:
                break
        return out


def follow(trend: HostLine | None, t: float, beat: float, bpm: float | None, slope: float,
           bpm_in_force: float) -> HostLine:
    """The host's line from ``beat`` at host time ``t``: a tempo statement's own ``bpm`` and ``slope``; a position
    alone (``bpm`` None) follows the last statement's ramp (``trend``) for what is left of its horizon, else the
    tempo in force."""
    if bpm is not None:
        return HostLine(t, beat, float(bpm), slope)
    if trend is None or not trend.gliding:
        return HostLine(t, beat, bpm_in_force)
    left = max(0.0, trend.horizon_s - max(0.0, t - trend.t0))
    return HostLine(t, beat, trend.bpm_at(t), trend.slope, left)
