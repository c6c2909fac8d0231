"""The JACK transport as a sync source: the host's play/stop, position, tempo and meter, read every JACK period.

A DAW that runs the JACK transport (Ardour, Qtractor, Hydrogen, Carla, Non Timeline, jack_transport) states its
position in frames in every period and, as timebase master, its bar/beat/tick (BBT), tempo and meter. MIDI clock
made from the same transport (jack_midi_clock) cannot say where a locate lands until its Continue, which comes
clocks late; the transport says it in the period the playhead moves.

:class:`TransportFollower` is the pure part: each period's (state, position, host time of its first frame) in,
:mod:`bridge.events` out (source "jack"): play/continue when it starts rolling, stop, locate when the frame jumps,
TempoEvent and MeterEvent when the timebase master's change, and an exact PositionEvent ``position_hz`` times a
second. The beat is the BBT's at each start, locate and tempo or meter change, and counted on from the frames at
that tempo in between: frames are exact to the sample, while some masters' BBT drifts (jack_transport adds whole
ticks each period: 1.7 % slow at 126 BPM with 512-frame periods). Without a timebase master the beat is counted
from frame 0 at the configured tempo. Beats are quarter notes from the song start (a 6/8 bar is 3 of them), the
bar lines a constant meter's. Tempo changes pass through
:class:`~bridge.tempo_hysteresis.TempoHysteresis` as MIDI clock's and Link's do: a tempo ramp a master states in
every period arrives as steps of about 0.3 BPM, the positions stay exact.

:class:`JackTransportSync` is the I/O: a JACK client of its own whose process callback feeds the follower and hands
the events to ``feed`` (in JACK's thread: the daemon passes them to its loop).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import BridgeError
from .events import Event, MeterEvent, PositionEvent, TempoEvent, TransportEvent
from .jack_midi import FrameClock
from .tempo_hysteresis import TempoHysteresis
from .tempo_ramp import RampSlope

logger = logging.getLogger(__name__)
SOURCE = "jack"


class JackTransportError(BridgeError):
    """No JACK server to read the transport from (or JACK-Client is missing)."""


@dataclass(frozen=True)
class Bbt:
    """A timebase master's musical position (JACK's jack_position_t BBT fields; bar and beat count from 1)."""

    bar: int
    beat: int
    tick: int
    ticks_per_beat: float
    beats_per_bar: float
    beat_type: float
    beats_per_minute: float

    @property
    def quarters(self) -> float:
        """Quarter notes from the song start (a constant meter from bar 1)."""
        beats = (self.bar - 1) * self.beats_per_bar + (self.beat - 1) + self.tick / self.ticks_per_beat
        return beats * 4.0 / self.beat_type

    @property
    def quarter_bpm(self) -> float:
        return self.beats_per_minute * 4.0 / self.beat_type

    @property
    def meter(self) -> tuple[int, int]:
        return int(round(self.beats_per_bar)), int(round(self.beat_type))


def bbt_of(position: dict[str, Any]) -> Bbt | None:
    """The BBT of a JACK-Client position dict (None: no timebase master states one, or it is unusable)."""
    try:
        bbt = Bbt(int(position["bar"]), int(position["beat"]), int(position["tick"]),
                  float(position["ticks_per_beat"]), float(position["beats_per_bar"]), float(position["beat_type"]),
                  float(position["beats_per_minute"]))
    except (KeyError, TypeError, ValueError):
        return None
    usable = (bbt.bar >= 1 and bbt.beat >= 1 and bbt.ticks_per_beat > 0 and bbt.beats_per_bar > 0
              and bbt.beat_type > 0 and math.isfinite(bbt.beats_per_minute) and 1.0 <= bbt.quarter_bpm <= 999.0)
    return bbt if usable else None


class TransportFollower:
    """JACK transport periods -> sync events (pure: the host time of each period is an argument).

    bpm: the tempo while no timebase master states one. position_hz: exact positions a second (also while stopped,
    so the arbiter hears the source). hysteresis_bpm: tempo changes smaller than this wait until the tempo holds.
    """

    def __init__(self, bpm: float = 120.0, position_hz: float = 4.0, hysteresis_bpm: float = 0.3):
        self.default_bpm = float(bpm)
        self.position_s = 1.0 / position_hz if position_hz > 0 else math.inf
        self.hysteresis = TempoHysteresis(hysteresis_bpm)
        self.rolling: bool | None = None  # None: no period seen yet
        self.bpm = float(bpm)  # the tempo the beats are counted at
        self.meter: tuple[int, int] | None = None
        self._anchor = (0, 0.0)  # (frame, beat) the count runs from
        self._expect: int | None = None  # the frame the next period starts at, if nothing moves
        self._last_position = -math.inf
        self._bpm_at_position = math.nan
        self._rate = 0
        self.ramp = RampSlope()  # the master's tempo ramp, from its tempo in every period

    def beat_at_frame(self, frame: int) -> float:
        anchor_frame, anchor_beat = self._anchor
        return anchor_beat + (frame - anchor_frame) / self._rate * self.bpm / 60.0

    def period(self, rolling: bool, position: dict[str, Any], t: float, nframes: int) -> list[Event]:
        """One JACK period: transport ``rolling`` (STARTING counts as not yet), ``position`` (JACK-Client's dict,
        its frame the period's first), ``t`` the host time of that frame, ``nframes`` the period's length."""
        frame, self._rate = int(position["frame"]), int(position["frame_rate"])
        bbt = bbt_of(position)
        first = self.rolling is None
        moved = self._expect is not None and frame != self._expect
        started = rolling and not self.rolling
        events: list[Event] = []
        metered = bbt is not None and bbt.meter != self.meter
        if metered:
            self.meter = bbt.meter
            events.append(MeterEvent(*bbt.meter, SOURCE))
        settled = self.bpm  # the tempo as it was at the last period
        if first or moved or started or metered or (bbt is not None and bbt.quarter_bpm != self.bpm):
            self.bpm = bbt.quarter_bpm if bbt is not None else self.default_bpm  # count on from the BBT here
            self._anchor = (frame, bbt.quarters if bbt is not None else frame / self._rate * self.bpm / 60.0)
        beat = self.beat_at_frame(frame)
        due = t - self._last_position >= self.position_s
        held = due and self.bpm == settled == self._bpm_at_position  # a tempo that held still since the last
        slope = self.ramp.update(t, self.bpm, reset=first or moved or started)
        tempo = self.hysteresis.update(round(self.bpm, 3), step=first or moved or started or held, slope=slope)
        if tempo is not None:
            events.append(TempoEvent(tempo, SOURCE, t, slope=slope))
        if started:
            events.append(TransportEvent("play" if frame == 0 else "continue", SOURCE, t, beat=beat))
        elif self.rolling and not rolling:
            events.append(TransportEvent("stop", SOURCE, t, beat=beat))
        elif moved and not first:
            events.append(TransportEvent("locate", SOURCE, t, beat=beat))
        if events or due:
            self._last_position, self._bpm_at_position = t, self.bpm
            events.append(PositionEvent(beat, SOURCE, t, exact=True))
        self.rolling = rolling
        self._expect = frame + nframes if rolling else frame
        return events


class JackTransportSync:
    """Reads the JACK transport every period through a client of its own; ``feed(event)`` is called in JACK's
    process thread (hand the events to the daemon's loop from there). ``start()`` raises JackTransportError."""

    def __init__(self, feed: Callable[[Event], None], client_name: str = "musika-transport", bpm: float = 120.0,
                 position_hz: float = 4.0, servername: str | None = None, clock: Callable[[], float] = time.monotonic):
        self.feed, self.client_name, self.servername, self.clock = feed, client_name, servername, clock
        self.follower = TransportFollower(bpm, position_hz)
        self._client: Any = None
        self._frames: FrameClock | None = None
        self._rolling: Any = None

    def start(self) -> str:
        """Open the client; returns its name."""
        from .audio.base import AudioSinkError
        from .audio.jack_sink import import_jack

        try:
            jack = import_jack()
        except AudioSinkError as exc:
            raise JackTransportError(f"--sync jack reads the JACK transport: {exc}") from exc
        try:
            client = jack.Client(self.client_name, servername=self.servername, no_start_server=True)
        except jack.JackError as exc:
            raise JackTransportError(f"--sync jack reads the JACK transport, but no JACK server is running ({exc}); "
                                     "start the DAW's JACK server (or jackd) first") from exc
        self._rolling = jack.ROLLING
        self._frames = FrameClock(client.samplerate, self.clock)
        client.set_process_callback(self._process)
        self._client = client
        client.activate()
        logger.info("JACK transport: following it as %s", client.name)
        return client.name

    def _process(self, frames: int) -> None:
        client = self._client
        if client is None or self._frames is None:
            return
        try:
            t = self._frames.cycle(client)
            state, position = client.transport_query()
            for event in self.follower.period(state == self._rolling, position, t, frames):
                self.feed(event)
        except Exception:  # never let an exception escape into JACK's thread
            logger.exception("JACK transport: unexpected error in the process callback")

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.deactivate()
            client.close()
