"""The transport model (playing, tempo, beat at a host time, meter, sync offset) and the MIDI clock tracker.

Pure logic: every method takes the host time as an argument (seconds, the daemon's monotonic clock domain);
nothing here reads a clock or a port. Beats are quarter notes from the song start; bars follow the meter.

:class:`MidiClockTracker` turns MIDI real-time messages (Timing Clock, Start, Continue, Stop, Song Position
Pointer) into :mod:`bridge.events`: the first clock after Start is beat 0, the first clock after Continue is
the position last located by SPP (in 16ths, 6 clocks each) or where Stop left off; every clock after that is
1/24 beat. MIDI clock carries no meter, so bars come from the configured meter (or OSC).

A sender may roll again before its Continue and send clocks on the way (jack_midi_clock plays on from where the
transport stopped, points SPP a little ahead and sends Continue when it gets there). Its clocks then run from the
stop position, between the 16ths, so the clock after Continue is up to a 16th past the SPP. Where those clocks,
counted from where Stop left off, reach the Continue within the SPP's 16th, that count is the position.

After a locate it rolls from the located place (on a 16th where the host located to a bar, beat or 16th), starting
its clock grid at the Song Position Pointer it sends as it rolls (its first clock one period after it), and sends
Continue with a clock of its SPP's 16th, which one depending on where its periods and its master's bar/beat/tick
fall (the third, 60 ms late at 126 BPM, with jack_transport as the master). Counted from that SPP, after at least a
beat of clocks, the clocks say which clock of the 16th it is, and that is the position.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

from .errors import ConfigError
from .events import Event, PositionEvent, TempoEvent, TransportEvent
from .recount import Recount
from .tempo import PPQN, ClockTempoEstimator, TempoState
from .tempo_hysteresis import TempoHysteresis

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

    Ticks that a late port receives twice, or misses, are counted by their intervals (:class:`ClockTempoEstimator`),
    which a burst of them can fool. So once the clock is steady again at the same tempo as before, the count is
    checked against the time since the last steady tick before the odd ones (:class:`~bridge.recount.Recount`): a
    sender stamps its ticks on its transport, so that time says how many ticks passed, and it wins where it is sure.

    ``ticks`` is the count of whole clocks; ``frac`` the part of a clock the sender's clocks sit past them (after a
    Continue from a sender that rolled on from where it stopped, see the module docstring).
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
        self._recount = Recount()  # sets the count from the clock's time after odd ticks
        self.recounts = 0  # times the count was set right from the clock's time
        self.frac = 0.0  # the sender's clocks sit this part of a clock past the count
        self._stopped_at: float | None = None  # where Stop left off, in clocks (a fraction past the last clock)
        self._stopped_period = math.nan  # the clock's period then, s
        self._stopped_jitter = 0.0  # and its jitter (robust spread of its stamps), s
        self._preroll: float | None = None  # clocks while stopped after a pause, counted from _stopped_at
        self._spp_time: float | None = None  # host time of the last SPP while stopped, until a clock follows it
        self._located: int | None = None  # clocks while stopped since that SPP, when the first came a period later
        # seconds the port's clock has fallen behind the host's (JACK: its frame count), so time is counted as the
        # sender counts it; a late port's stamps move with the host clock, not with the sender's frames
        self.drift: Callable[[], float] = lambda: 0.0

    @property
    def beat(self) -> float:
        return (self.ticks + self.frac) / PPQN

    @property
    def playing(self) -> bool:
        return self.transport.playing

    def start(self, t: float) -> None:
        self.ticks, self.frac, self._pending, self._hold = 0, 0.0, "play", False
        self._stopped_at = self._preroll = self._spp_time = self._located = None
        self._recount.forget()

    def continue_(self, t: float) -> None:
        self._pending, self._hold = "continue", False
        self._recount.forget()

    def stop(self, t: float) -> None:
        self._pending = None
        was_playing = self.transport.playing
        self._stopped_at, self._preroll = None, None
        if was_playing and self.last_clock is not None and self.estimator.bpm:  # the part of a clock since the last
            self._stopped_period = 60.0 / self.estimator.bpm / PPQN
            self._stopped_jitter = self.estimator.state.jitter_ms / 1000.0
            part = (t - self.last_clock) / self._stopped_period
            # no clock for longer: it stopped somewhere in the clock after the last (a transport held while it
            # relocates, then Stop), the middle of that clock is the best guess
            self._stopped_at = self.ticks + self.frac + (min(max(part, 0.0), 1.0) if part <= 1.5 else 0.5)
        self.transport.stop(t)
        self.transport.locate(self.beat, t)
        if was_playing:
            self.emit(TransportEvent("stop", self.source, t, self.beat))

    def song_position(self, sixteenths: int, t: float) -> None:
        """Song Position Pointer: ``sixteenths`` (0-16383) MIDI beats from the song start."""
        if not 0 <= sixteenths <= 16383:
            raise ValueError(f"song position: {sixteenths} is out of range 0-16383")
        self.ticks, self.frac = sixteenths * TICKS_PER_16TH, 0.0
        self._hold = self.transport.playing
        self._spp_time, self._located = (None if self._hold else t), None
        self._recount.forget()
        self.transport.locate(self.beat, t)
        self.emit(TransportEvent("locate", self.source, t, self.beat))

    def clock(self, t: float) -> None:
        """One Timing Clock (0xF8) received at host time ``t``. The tempo and the count are read in the sender's
        time (``t`` less the port's drift): a server that loses time moves the host's stamps, not its frames."""
        drift = self.drift()
        state = self.estimator.feed(t - drift)
        if state.note and logger.isEnabledFor(logging.DEBUG):  # -vv: what the count made of an odd tick
            logger.debug("MIDI clock: %s tick at %.4f s, counted as %d", state.note, t, state.advanced)
        if state.advanced == 0:
            self._recount.odd()
            return  # a duplicate tick
        if not self.transport.playing:
            self._count_preroll(t, state)
        self.last_clock = t
        if self.on_clock is not None:
            self.on_clock(t)
        tick_time = state.tick_time + drift if state.bpm is not None else t
        beat_before = self.ticks // PPQN
        if self._pending is not None:
            action, self._pending = self._pending, None
            if action == "play":
                self.transport.play(tick_time, self.beat)
            else:
                self._continue_from_preroll()
                self.transport.locate(self.beat, tick_time)
                self.transport.continue_(tick_time)
            self.emit(TransportEvent(action, self.source, tick_time, self.beat))  # type: ignore[arg-type]
            beat_before = -1
        elif self.transport.playing:
            if self._hold:
                self._hold = False
            else:
                self.ticks += state.advanced
                n = self._recount.tick(t - drift, self.ticks, state.advanced, state.note, state.bpm, state.tick_time,
                                       state.jitter_ms / 1e3)
                if n is not None and n != self.ticks:
                    logger.info("MIDI clock: odd ticks (a late or busy port) put the count %+d off; set from the "
                                "clock's time", self.ticks - n)
                    self.ticks, self.recounts = n, self.recounts + 1
                    self.estimator.reset()  # its line was fitted through the miscounted ticks: start it afresh
        bar_ticks = round(self.transport.bar_beats * PPQN)
        self._clocks += state.advanced
        at_bar = self._clocks % bar_ticks < state.advanced  # while stopped: every bar's worth of clocks
        if self.transport.playing:
            at_bar = self.ticks // PPQN != beat_before and self.ticks % bar_ticks < state.advanced
        if self.transport.playing and self.ticks // PPQN != beat_before:
            self.transport.locate(self.beat, tick_time)
            self.emit(PositionEvent(self.beat, self.source, tick_time, exact=True))
        bpm = self.hysteresis.update(state.bpm, state.step, at_bar, state.slope)
        if bpm is not None:
            self.transport.set_tempo(bpm, tick_time)
            self.emit(TempoEvent(bpm, self.source, tick_time, state.confidence, state.slope))

    def _count_preroll(self, t: float, state: TempoState) -> None:
        """Clocks while stopped: the first after a pause (a sender rolling again before its Continue) is one clock
        past where Stop left off. A sender that keeps clocking while stopped has no pause, and no pre-roll."""
        if self._located is not None:
            self._located += state.advanced
        elif self._spp_time is not None and math.isfinite(self._stopped_period):  # the first clock after an SPP
            # (and a Stop while playing): does the sender's grid start at the SPP?
            period, last = self._stopped_period, self.last_clock
            # how far a stamp may stray: a tenth of a clock, or four times the clock's measured jitter (an
            # interface's 0-4 ms: 0.23 clock at 126 BPM), at most 0.3
            tol = min(0.3, max(0.1, 4.0 * self._stopped_jitter / period))
            gap = (t - last) / period if last is not None else math.inf
            restarted = gap > 1.5 or abs(gap - round(gap)) > tol  # not a free-running clock's next tick
            if abs((t - self._spp_time) / period - 1.0) <= tol and restarted:
                self._located = 1  # (the estimator may count the pause before it as missed ticks)
            self._spp_time = None
        if self._preroll is not None:
            self._preroll += state.advanced
        elif self._stopped_at is not None and self._pending is None and self.last_clock is not None \
                and t - self.last_clock > 1.5 * self._stopped_period:
            self._preroll = self._stopped_at + 1.0

    def _continue_from_preroll(self) -> None:
        """At the clock after Continue: the pre-roll's count, where it lands in the SPP's 16th (else the SPP's)."""
        pre, self._preroll, self._stopped_at = self._preroll, None, None
        located, self._located, self._spp_time = self._located, None, None
        if pre is not None and self.ticks - 0.5 <= pre < self.ticks + TICKS_PER_16TH:
            if abs(pre - self.ticks) >= 0.05:
                logger.info("MIDI clock: the sender rolled on from where it stopped; continuing %.2f clocks past its "
                            "song position", pre - self.ticks)
            self.ticks = math.floor(pre)
            self.frac = pre - self.ticks
        elif located is not None and located > PPQN and located % TICKS_PER_16TH:  # (a sender that clocks from
            # its SPP only after Continue sent no clocks before it: the SPP's position holds)
            logger.info("MIDI clock: the sender rolled on from where it located; continuing %d clock(s) past its song "
                        "position", located % TICKS_PER_16TH)
            self.ticks += located % TICKS_PER_16TH

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
