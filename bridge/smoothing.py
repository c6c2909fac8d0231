"""CC smoothing: a control glides from the value it has to a new one over the mapping's ``smoothing_ms``.

Pure logic: host times (seconds) arrive as arguments. A glide is linear in the control's own unit (after the
mapping's range and curve). A new target while a glide runs starts a new glide from the value reached, so a knob
turned fast follows smoothly behind the hand and arrives ``smoothing_ms`` after the hand stops.

Where the music hears it: the model's controls take effect at quantisation points (the next bar line by default,
``phrase`` the next phrase, ``now`` as soon as possible). The daemon hands the live stream a glide's
:meth:`Glide.value_at`, which is evaluated at the host time at which the change's bar line is heard, so each bar
line plays the glided value of its own moment: a glide shorter than the time to the next bar line is the plain
change there, a long one steps towards its target bar by bar. :meth:`ControlSmoother.due` says which glides still
have a value to deliver.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Glide:
    """From ``start`` at host time ``t0`` to ``target`` over ``duration_s`` (0: a jump), linearly."""

    start: float
    target: float
    t0: float
    duration_s: float

    @property
    def end(self) -> float:
        """Host time at which the target is reached."""
        return self.t0 + self.duration_s

    def value_at(self, t: float) -> float:
        """The control's value at host time ``t`` (the start before ``t0``, the target from :attr:`end` on)."""
        if self.duration_s <= 0 or t >= self.end:
            return self.target
        return self.start + (self.target - self.start) * max(t - self.t0, 0.0) / self.duration_s


class ControlSmoother:
    """Glides per control name: ``set_target`` starts one, ``value_at`` reads it, ``due`` lists those whose values
    a consumer that samples them at quantisation points still has to pick up."""

    def __init__(self) -> None:
        self._glides: dict[str, Glide] = {}
        self._delivered: set[str] = set()  # glides whose target has been handed out

    def set_target(self, name: str, value: float, t: float, smoothing_ms: float = 0.0,
                   current: float | None = None) -> Glide:
        """Glide to ``value`` from host time ``t`` over ``smoothing_ms``, starting from the value gliding now
        (else ``current``, else ``value`` itself). Returns the glide."""
        if not (math.isfinite(smoothing_ms) and smoothing_ms >= 0):
            raise ValueError(f"smoothing_ms {smoothing_ms!r} must be a number >= 0")
        start = self.value_at(name, t, value if current is None else current)
        glide = Glide(start, float(value), t, smoothing_ms / 1000.0)
        self._glides[name] = glide
        self._delivered.discard(name)
        return glide

    def value_at(self, name: str, t: float, default: float = math.nan) -> float:
        """The value of ``name`` at host time ``t`` (``default`` when it never had a target)."""
        glide = self._glides.get(name)
        return default if glide is None else glide.value_at(t)

    def glide(self, name: str) -> Glide | None:
        return self._glides.get(name)

    def cancel(self, name: str) -> None:
        """The control was set some other way (an OSC message, a preset change): forget its glide."""
        self._glides.pop(name, None)
        self._delivered.discard(name)

    def due(self, t: float) -> list[str]:
        """Names whose glide a change made at host time ``t`` must carry: every glide under way, and one last
        time each glide that has reached its target by ``t`` (a change made then is heard at or after the end, so
        it carries the target); after that a glide is not due again until its next target."""
        out = []
        for name, glide in self._glides.items():
            if name not in self._delivered:
                out.append(name)
                if t >= glide.end:
                    self._delivered.add(name)
        return out
