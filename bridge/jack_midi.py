"""JACK MIDI input through JACK-Client: every event stamped with its own frame, not with the time of its period.

rtmidi's JACK backend stamps each event with jack_get_time() when its client's process callback runs: every event
of a period gets the same stamp, late by wherever the client runs in that period (11.6 ms steps at -p 512, plus the
graph's processing before it). Here the process callback maps each event's frame offset onto the host clock: the
period's first frame is on the host clock at ``frame / rate`` plus a robust anchor (:class:`FrameClock`), so a
tick's time is exact to the sample, on the same time line the JACK audio sink keys its output to
(bridge.audio.jack_sink).
"""

from __future__ import annotations

import bisect
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from .errors import MidiPortError

logger = logging.getLogger(__name__)


class JackMidiPort:
    """A JACK MIDI input port ``client_name:port_name`` (virtual) or connected from an existing output port.

    feed(data, t): called in JACK's process thread with each event's bytes and host time (seconds, `clock`)."""

    def __init__(self, port_name: str, client_name: str, feed: Callable[[bytes, float], None], virtual: bool = True,
                 clock: Callable[[], float] = time.monotonic, servername: str | None = None):
        self.port_name, self.client_name, self.feed, self.virtual = port_name, client_name, feed, virtual
        self.clock, self.servername = clock, servername
        self._client: Any = None
        self._port: Any = None
        self._frames: FrameClock | None = None
        self._anchor0: float | None = None
        self.opened_port = ""

    def clock_drift(self) -> float:
        """Seconds the JACK server's clock has fallen behind the host clock since the port opened (0.0 before)."""
        frames, anchor0 = self._frames, self._anchor0
        return frames.anchor - anchor0 if frames is not None and anchor0 is not None else 0.0

    def start(self) -> str:
        """Open the client and port; returns its name (virtual) or the source connected to it (existing). Raises
        MidiPortError (no server, no such port)."""
        try:
            import jack
        except (ImportError, OSError) as exc:
            raise MidiPortError(f"JACK-Client is unavailable ({exc})") from exc
        try:
            client = jack.Client(self.client_name, servername=self.servername, no_start_server=True)
        except jack.JackError as exc:
            raise MidiPortError(f"no JACK server ({exc})") from exc
        try:
            port = client.midi_inports.register(self.port_name)
            self._client, self._port = client, port
            client.set_process_callback(self._process)
            client.activate()
            if not self.virtual:
                sources = [p.name for p in client.get_ports(is_midi=True, is_output=True)]
                match = [p for p in sources if p == self.port_name] or [
                    p for p in sources if self.port_name.lower() in p.lower()]
                if not match:
                    raise MidiPortError(f"no JACK MIDI output matches {self.port_name!r}; available: "
                                        f"{sources or 'none'}")
                client.connect(match[0], port)
                self.opened_port = match[0]
        except (jack.JackError, MidiPortError) as exc:
            self._client = self._port = None
            client.close()
            raise MidiPortError(str(exc)) from exc
        if self.virtual:
            self.opened_port = self.port_name
        return self.opened_port

    def _process(self, frames: int) -> None:
        client, port = self._client, self._port
        if client is None or port is None:
            return
        if self._frames is None:
            self._frames = FrameClock(client.samplerate, self.clock)
        start = self._frames.cycle(client)
        if self._anchor0 is None:
            self._anchor0 = self._frames.anchor
        for offset, data in port.incoming_midi_events():
            try:
                self._receive(client, bytes(data), start, offset)
            except Exception:  # never let an exception escape into JACK's thread
                logger.exception("MIDI: unexpected error in the JACK MIDI callback")

    def _receive(self, client: Any, data: bytes, start: float, offset: int) -> None:
        """One event of this period, ``offset`` frames after its first frame (heard at host time ``start``)."""
        self.feed(data, start + offset / client.samplerate)

    def close(self) -> None:
        client, self._client, self._port = self._client, None, None
        if client is not None:
            client.deactivate()
            client.close()


class FrameClock:
    """Host time of JACK frames: ``frame / rate`` plus an anchor, the median over the last `window` periods of
    ``clock() - frames_since_cycle_start / rate - last_frame_time / rate`` measured in the process callback. One
    late or glitched reading (an xrun, JACK's time filter settling) moves nothing; a real jump in the frame count
    does not move the anchor either, since both sides of it count frames. A server that loses time (one frozen for
    a while, which goes on from where it stopped) moves every reading after it: ``JUMP_PERIODS`` readings in a row
    that agree with each other and sit more than ``JUMP_S`` to one side start the window again from them, so every
    client of the server (MIDI, transport, audio) moves within a few periods of the others instead of one median's
    half window later. Call :meth:`cycle` once per period."""

    JUMP_S = 0.002
    JUMP_PERIODS = 4

    def __init__(self, rate: int, clock: Callable[[], float] = time.monotonic, window: int = 64):
        self.rate, self.clock = float(rate), clock
        self._anchors: deque[float] = deque(maxlen=window)
        self._sorted: list[float] = []
        self._off: list[float] = []  # readings in a row on one side, more than JUMP_S off the anchor
        self.jumps = 0  # times the anchor was started again from a moved server's readings

    def cycle(self, client: Any) -> float:
        """Note this period (in the process callback); returns the host time of its first frame."""
        frame = client.last_frame_time
        anchor = self.clock() - (client.frames_since_cycle_start + frame) / self.rate
        if self._sorted and abs(anchor - self.anchor) > self.JUMP_S \
                and (not self._off or (anchor > self.anchor) == (self._off[0] > self.anchor)):
            self._off.append(anchor)
            if len(self._off) >= self.JUMP_PERIODS and max(self._off) - min(self._off) <= self.JUMP_S / 2:
                self._anchors.clear()
                self._sorted.clear()
                for a in self._off[:-1]:
                    self._anchors.append(a)
                    bisect.insort(self._sorted, a)
                self._off = []
                self.jumps += 1
        else:
            self._off = []
        if len(self._anchors) == self._anchors.maxlen:
            self._sorted.remove(self._anchors[0])
        self._anchors.append(anchor)
        bisect.insort(self._sorted, anchor)
        return frame / self.rate + self.anchor

    @property
    def anchor(self) -> float:
        """Host time of frame 0 (seconds): grows as the device's clock falls behind the host's."""
        return self._sorted[len(self._sorted) // 2] if self._sorted else 0.0
