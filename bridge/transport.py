"""The transport model (playing, tempo, beat at a host time, meter, sync offset) and the MIDI clock tracker.

Pure logic: every method takes the host time as an argument (seconds, the daemon's monotonic clock domain);
nothing here reads a clock or a port. Beats are quarter notes from the song start; bars follow the meter.

:class:`MidiClockTracker` turns MIDI real-time messages (Timing Clock, Start, Continue, Stop, Song Position
Pointer) into :mod:`bridge.events`: the first clock after Start is beat 0, the first clock after Continue is
the position last located by SPP (in 16ths, 6 clocks each) or where Stop left off; every clock after that is
1/24 beat. MIDI clock carries no meter, so bars come from the configured meter (or OSC).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from .errors import ConfigError
from .events import Event, PositionEvent, TempoEvent, TransportEvent
from .tempo import PPQN, ClockTempoEstimator, TempoHysteresis

logger = logging.getLogger(__name__)

DENOMINATORS = (1, 2, 4, 8, 16, 32)
TICKS_PER_16TH = 6


@dataclass(frozen=True)
class BarPosition:
    """bar: 0-based bar index; beat: position inside the bar in quarter notes (0 <= beat < bar_beats)."""

    bar: int
    beat: float
    bar_beats: float


class Transport:
    """Playing flag, tempo, meter and position: which beat should sound at host time ``t``.

    ``sync_offset_ms`` shifts the bridge's idea of "now": positive values make it run that much ahead of the
    host (like Live's Sync Delay, it covers the route from the bridge's output back into the DAW).
    """

    def __init__(self, bpm: float = 120.0, numerator: int = 4, denominator: int = 4, sync_offset_ms: float = 0.0):
        self.playing = False
        self.bpm = _check_bpm(bpm)
        self.numerator, self.denominator = 4, 4
        self.set_meter(numerator, denominator)
        self.sync_offset_ms = float(sync_offset_ms)
        self._anchor_time = 0.0  # host time at which the host was at _anchor_beat
        self._anchor_beat = 0.0

    @property
    def bar_beats(self) -> float:
        """Length of one bar in quarter notes (6/8 -> 3.0)."""
        return self.numerator * 4.0 / self.denominator

    def set_meter(self, numerator: int, denominator: int) -> None:
        if not (isinstance(numerator, int) and 1 <= numerator <= 32):
            raise ConfigError(f"meter numerator: {numerator!r} is out of range 1-32")
        if denominator not in DENOMINATORS:
            raise ConfigError(f"meter denominator: {denominator!r} is not one of {', '.join(map(str, DENOMINATORS))}")
        self.numerator, self.denominator = numerator, denominator

    def _host_beat(self, t: float) -> float:
        if not self.playing:
            return self._anchor_beat
        return self._anchor_beat + (t - self._anchor_time) * self.bpm / 60.0

    def beat_at(self, t: float) -> float:
        """The beat that should sound at host time ``t`` (sync offset applied)."""
        return self._host_beat(t + self.sync_offset_ms / 1000.0)

    def time_at_beat(self, beat: float) -> float:
        """Host time at which ``beat`` should sound (inverse of :meth:`beat_at`; needs a playing transport)."""
        return self._anchor_time + (beat - self._anchor_beat) * 60.0 / self.bpm - self.sync_offset_ms / 1000.0

    def bar_at(self, t: float) -> BarPosition:
        beat = self.beat_at(t)
        bar = int(beat // self.bar_beats)
        return BarPosition(bar, beat - bar * self.bar_beats, self.bar_beats)

    def play(self, t: float, beat: float = 0.0) -> None:
        """Start playing at host time ``t`` from ``beat`` (Start: the song start)."""
        self._anchor_time, self._anchor_beat, self.playing = t, float(beat), True

    def continue_(self, t: float) -> None:
        """Resume from the stopped (or located) position at host time ``t``."""
        self._anchor_time, self.playing = t, True

    def stop(self, t: float) -> None:
        self._anchor_beat = self._host_beat(t)
        self._anchor_time, self.playing = t, False

    def locate(self, beat: float, t: float) -> None:
        """Jump to ``beat`` at host time ``t`` (SPP, or a host jump while playing)."""
        self._anchor_time, self._anchor_beat = t, float(beat)

    def set_tempo(self, bpm: float, t: float) -> None:
        """Change tempo at host time ``t`` without moving the current position."""
        self._anchor_beat = self._host_beat(t)
        self._anchor_time, self.bpm = t, _check_bpm(bpm)


class DeviceClockTransport(Transport):
    """A transport that counts the audio device's time, as a DAW's own transport counts its interface's samples.

    Times in and out are host times; ``drift()`` says how far (seconds) the device's clock has fallen behind the
    host clock, so beats advance with the device's frames. Beats then sit on an even grid in what the device
    plays, however its clock runs against the host's; a period the device skips (an xrun) still counts.
    """

    def __init__(self, drift: Callable[[], float], bpm: float = 120.0, numerator: int = 4, denominator: int = 4,
                 sync_offset_ms: float = 0.0):
        super().__init__(bpm, numerator, denominator, sync_offset_ms)
        self.drift = drift

    def beat_at(self, t: float) -> float:
        return super().beat_at(t - self.drift())

    def time_at_beat(self, beat: float) -> float:
        return super().time_at_beat(beat) + self.drift()

    def play(self, t: float, beat: float = 0.0) -> None:
        super().play(t - self.drift(), beat)

    def continue_(self, t: float) -> None:
        super().continue_(t - self.drift())

    def stop(self, t: float) -> None:
        super().stop(t - self.drift())

    def locate(self, beat: float, t: float) -> None:
        super().locate(beat, t - self.drift())

    def set_tempo(self, bpm: float, t: float) -> None:
        super().set_tempo(bpm, t - self.drift())


def _check_bpm(bpm: float) -> float:
    bpm = float(bpm)
    if not 1.0 <= bpm <= 999.0:
        raise ConfigError(f"tempo: {bpm!r} BPM is out of range 1-999")
    return bpm


class MidiClockTracker:
    """MIDI clock + transport messages -> TempoEvent / TransportEvent / PositionEvent via ``emit``.

    emit: called with each event (in the caller's thread). on_clock: optional, called with the time of every
    clock tick (for sync-source liveness). Tempo events pass through :class:`TempoHysteresis` (re-condition only
    on a real change, a step, or at a bar line); a PositionEvent (exact) is emitted on every beat while playing,
    timed by the estimator's de-jittered tick time. ``transport`` follows everything and can be queried.
    """

    def __init__(
        self,
        emit: Callable[[Event], None],
        estimator: ClockTempoEstimator | None = None,
        transport: Transport | None = None,
        source: str = "midi",
        hysteresis_bpm: float = 0.3,
        on_clock: Callable[[float], None] | None = None,
    ):
        self.emit, self.source, self.on_clock = emit, source, on_clock
        self.estimator = estimator or ClockTempoEstimator()
        self.transport = transport or Transport()
        self.hysteresis = TempoHysteresis(hysteresis_bpm)
        self.ticks = 0  # song position in clocks (1/24 beat)
        self._pending: str | None = None  # "play"/"continue": waiting for the first clock
        self._hold = False  # after SPP while playing: the next clock *is* the located position
        self.last_clock: float | None = None
        self._clocks = 0  # clocks received, for bar-spaced tempo updates while stopped

    @property
    def beat(self) -> float:
        return self.ticks / PPQN

    @property
    def playing(self) -> bool:
        return self.transport.playing

    def start(self, t: float) -> None:
        self.ticks, self._pending, self._hold = 0, "play", False

    def continue_(self, t: float) -> None:
        self._pending, self._hold = "continue", False

    def stop(self, t: float) -> None:
        self._pending = None
        was_playing = self.transport.playing
        self.transport.stop(t)
        self.transport.locate(self.beat, t)
        if was_playing:
            self.emit(TransportEvent("stop", self.source, t, self.beat))

    def song_position(self, sixteenths: int, t: float) -> None:
        """Song Position Pointer: ``sixteenths`` (0-16383) MIDI beats from the song start."""
        if not 0 <= sixteenths <= 16383:
            raise ValueError(f"song position: {sixteenths} is out of range 0-16383")
        self.ticks = sixteenths * TICKS_PER_16TH
        self._hold = self.transport.playing
        self.transport.locate(self.beat, t)
        self.emit(TransportEvent("locate", self.source, t, self.beat))

    def clock(self, t: float) -> None:
        """One Timing Clock (0xF8) received at host time ``t``."""
        state = self.estimator.feed(t)
        if state.note and logger.isEnabledFor(logging.DEBUG):  # -vv: what the count made of an odd tick
            logger.debug("MIDI clock: %s tick at %.4f s, counted as %d", state.note, t, state.advanced)
        if state.advanced == 0:
            return  # a duplicate tick
        self.last_clock = t
        if self.on_clock is not None:
            self.on_clock(t)
        tick_time = state.tick_time if state.bpm is not None else t
        beat_before = self.ticks // PPQN
        if self._pending is not None:
            action, self._pending = self._pending, None
            if action == "play":
                self.transport.play(tick_time, self.beat)
            else:
                self.transport.locate(self.beat, tick_time)
                self.transport.continue_(tick_time)
            self.emit(TransportEvent(action, self.source, tick_time, self.beat))  # type: ignore[arg-type]
            beat_before = -1
        elif self.transport.playing:
            if self._hold:
                self._hold = False
            else:
                self.ticks += state.advanced
        bar_ticks = round(self.transport.bar_beats * PPQN)
        self._clocks += state.advanced
        at_bar = self._clocks % bar_ticks < state.advanced  # while stopped: every bar's worth of clocks
        if self.transport.playing:
            at_bar = self.ticks // PPQN != beat_before and self.ticks % bar_ticks < state.advanced
        if self.transport.playing and self.ticks // PPQN != beat_before:
            self.transport.locate(self.beat, tick_time)
            self.emit(PositionEvent(self.beat, self.source, tick_time, exact=True))
        bpm = self.hysteresis.update(state.bpm, state.step, at_bar)
        if bpm is not None:
            self.transport.set_tempo(bpm, tick_time)
            self.emit(TempoEvent(bpm, self.source, tick_time, state.confidence))

    def handle(self, kind: str, t: float, pos: int | None = None) -> bool:
        """Dispatch by mido message type ("clock", "start", "continue", "stop", "songpos"); False if not ours."""
        if kind == "clock":
            self.clock(t)
        elif kind == "start":
            self.start(t)
        elif kind == "continue":
            self.continue_(t)
        elif kind == "stop":
            self.stop(t)
        elif kind == "songpos" and pos is not None:
            self.song_position(pos, t)
        else:
            return False
        return True
