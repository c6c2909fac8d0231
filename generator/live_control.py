"""The live stream's control side: each method only queues a request, from any thread (the daemon's asyncio
loop); the render worker in :class:`generator.live.LiveStream` applies them in order. Times are seconds on the
daemon's monotonic clock (`now`: when the request was made, default: the stream's clock), beats are host quarter
notes.
"""

from __future__ import annotations

import queue
from collections.abc import Callable
from typing import Any


class LiveControl:
    """Requests for the live stream's worker: transport, tempo and sync, meter, controls, seed and preset."""

    clock: Callable[[], float]
    _requests: queue.Queue[tuple[str, tuple, float]]

    def _put(self, kind: str, *args: Any, now: float | None = None) -> None:
        self._requests.put((kind, args, self.clock() if now is None else now))

    def play(self, beat: float = 0.0, at_time: float | None = None, now: float | None = None) -> None:
        """Host started at `beat` at host time `at_time` (default: now)."""
        self._put("play", beat, at_time, now=now)

    def cont(self, beat: float | None = None, at_time: float | None = None, now: float | None = None) -> None:
        self._put("continue", beat, at_time, now=now)

    def stop(self, now: float | None = None) -> None:
        self._put("stop", now=now)

    def join(self, beat: float, bpm: float, at_time: float, now: float | None = None) -> None:
        """A sync source takes over while this plays: the host is at `beat` at host time `at_time`, at `bpm`.
        What plays goes on to the host's next bar line that can still be rendered, where the host's run starts
        without a gap (generator.handover). Until then tempo and sync requests re-time the host; play, stop and
        locate cancel the join."""
        self._put("join", float(beat), float(bpm), float(at_time), now=now)

    def stop_at_bar(self, now: float | None = None) -> None:
        """Stop at the next bar line that can still be rendered (fade out there)."""
        self._put("stop_bar", now=now)

    def locate(self, beat: float, at_time: float | None = None, now: float | None = None) -> None:
        """Host jumped (loop, SPP, Link beat discontinuity): fade, re-anchor at `beat` (at host time `at_time`)."""
        self._put("locate", beat, at_time, now=now)

    def set_tempo(self, bpm: float, confidence: float = 1.0, now: float | None = None, beat: float | None = None,
                  at_time: float | None = None) -> None:
        """Host tempo is `bpm` from host beat `beat` at host time `at_time` on (default: from the beat heard now)."""
        self._put("tempo", bpm, confidence, beat, at_time, now=now)

    def sync(self, beat: float, at_time: float, now: float | None = None) -> None:
        """The host is at `beat` at host time `at_time` (e.g. a MIDI beat): when what is heard is more than
        `phase_tolerance_s` off, the next beats (a bar at least) are nudged (<= 6 % faster or slower) back onto the
        host's grid."""
        self._put("tempo", None, None, beat, at_time, now=now)

    def set_meter(self, numerator: int, denominator: int, now: float | None = None) -> None:
        """Host meter changes at the next bar line that can still be rendered."""
        self._put("meter", int(numerator), int(denominator), now=now)

    def set_control(self, name: str, value: float | Callable[[float], float], quantise: str | None = None,
                    now: float | None = None) -> None:
        """`value` in the control's unit, or a function of the host time at which the change is heard (a glide,
        bridge.smoothing), evaluated where the change lands. The same value (or glide) at the same beat again is
        ignored."""
        self._put("control", name, value, quantise, now=now)

    def set_seed(self, seed: int, quantise: str | None = None, now: float | None = None) -> None:
        self._put("seed", "seed", int(seed), quantise, now=now)

    def set_preset(self, name: str, quantise: str | None = None, now: float | None = None) -> None:
        self._put("preset", "preset", str(name), quantise, now=now)
