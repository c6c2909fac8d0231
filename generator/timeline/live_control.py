"""The live stream's control side: each method only queues a request, from any thread (the daemon's asyncio
loop); the render worker in :class:`generator.timeline.live.LiveStream` applies them in order. Times are seconds on the
daemon's monotonic clock (`now`: when the request was made, default: the stream's clock), beats are host quarter
notes.
"""

from __future__ import annotations

import queue
from collections.abc import Callable
from typing import Any, Protocol

from generator.timeline.requests import Change, Join, Meter, Request, Tempo, Transport


class LiveControl:
    """Requests for the live stream's worker: transport, tempo and sync, meter, controls, seed and preset."""

    clock: Callable[[], float]
    _requests: queue.Queue[tuple[Request, float]]

    def _put(self, request: Request, now: float | None = None) -> None:
        self._requests.put((request, self.clock() if now is None else now))

    def play(self, beat: float = 0.0, at_time: float | None = None, now: float | None = None) -> None:
        """Host started at `beat` at host time `at_time` (default: now)."""
        self._put(Transport("play", beat, at_time), now)

    def cont(self, beat: float | None = None, at_time: float | None = None, now: float | None = None) -> None:
        self._put(Transport("continue", beat, at_time), now)

    def stop(self, now: float | None = None) -> None:
        self._put(Transport("stop"), now)

    def join(self, beat: float, bpm: float, at_time: float, now: float | None = None) -> None:
        """A sync source takes over while this plays: the host is at `beat` at host time `at_time`, at `bpm`.
        What plays goes on to the host's next bar line that can still be rendered, where the host's run starts
        without a gap (generator.timeline.handover). Until then tempo and sync requests re-time the host; play,
        stop and locate cancel the join."""
        self._put(Join(float(beat), float(bpm), float(at_time)), now)

    def stop_at_bar(self, now: float | None = None) -> None:
        """Stop at the next bar line that can still be rendered (fade out there)."""
        self._put(Transport("stop_bar"), now)

    def locate(self, beat: float, at_time: float | None = None, now: float | None = None) -> None:
        """Host jumped (loop, SPP, Link beat discontinuity): fade, re-anchor at `beat` (at host time `at_time`)."""
        self._put(Transport("locate", beat, at_time), now)

    def set_tempo(self, bpm: float, confidence: float = 1.0, now: float | None = None, beat: float | None = None,
                  at_time: float | None = None, slope: float = 0.0) -> None:
        """Host tempo is `bpm` from host beat `beat` at host time `at_time` on (default: from the beat heard now),
        gliding by `slope` BPM per second while the host ramps (the beats planned ahead follow the ramp)."""
        self._put(Tempo(bpm, confidence, beat, at_time, float(slope)), now)

    def sync(self, beat: float, at_time: float, now: float | None = None) -> None:
        """The host is at `beat` at host time `at_time` (e.g. a MIDI beat): when what is heard is more than
        `phase_tolerance_s` off, the next beats (a bar at least) are nudged (<= 6 % faster or slower) back onto the
        host's grid."""
        self._put(Tempo(None, None, beat, at_time), now)

    def set_meter(self, numerator: int, denominator: int, now: float | None = None) -> None:
        """Host meter changes at the next bar line that can still be rendered."""
        self._put(Meter(int(numerator), int(denominator)), now)

    def set_control(self, name: str, value: float | Callable[[float], float], quantise: str | None = None,
                    now: float | None = None) -> None:
        """`value` in the control's unit, or a function of the host time at which the change is heard (a glide,
        bridge.smoothing), evaluated where the change lands. The same value (or glide) at the same beat again is
        ignored."""
        self._put(Change("control", name, value, quantise), now)

    def set_seed(self, seed: int, quantise: str | None = None, now: float | None = None) -> None:
        self._put(Change("seed", "seed", int(seed), quantise), now)

    def set_preset(self, name: str, quantise: str | None = None, now: float | None = None) -> None:
        self._put(Change("preset", "preset", str(name), quantise), now)


class LiveStreamPort(Protocol):
    """What the daemon core needs of a live stream (generator.timeline.live.LiveStream is the one that plays):
    the control requests of :class:`LiveControl`, and what is heard."""

    sync_source: str
    default_quantise: str
    perf: Any  # generator.timeline.planner.Performance: tempo, meter, controls, runs

    @property
    def joining(self) -> bool: ...

    def heard_beat(self, now: float | None = None) -> float: ...

    @property
    def clock_drift_s(self) -> float: ...

    def telemetry(self) -> Any: ...

    def play(self, beat: float = 0.0, at_time: float | None = None, now: float | None = None) -> None: ...

    def cont(self, beat: float | None = None, at_time: float | None = None, now: float | None = None) -> None: ...

    def stop(self, now: float | None = None) -> None: ...

    def join(self, beat: float, bpm: float, at_time: float, now: float | None = None) -> None: ...

    def stop_at_bar(self, now: float | None = None) -> None: ...

    def locate(self, beat: float, at_time: float | None = None, now: float | None = None) -> None: ...

    def set_tempo(self, bpm: float, confidence: float = 1.0, now: float | None = None, beat: float | None = None,
                  at_time: float | None = None, slope: float = 0.0) -> None: ...

    def sync(self, beat: float, at_time: float, now: float | None = None) -> None: ...

    def set_meter(self, numerator: int, denominator: int, now: float | None = None) -> None: ...

    def set_control(self, name: str, value: float | Callable[[float], float], quantise: str | None = None,
                    now: float | None = None) -> None: ...

    def set_seed(self, seed: int, quantise: str | None = None, now: float | None = None) -> None: ...

    def set_preset(self, name: str, quantise: str | None = None, now: float | None = None) -> None: ...
