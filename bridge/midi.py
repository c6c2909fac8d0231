"""MIDI input: a port (virtual "Musika", or an existing one by name) -> clock tracker + CC mapper -> events.

Thin I/O over python-rtmidi (opened on an explicit backend: JACK, ALSA, CoreMIDI or WinMM; nothing is opened or
listed at import time) with mido's Parser for decoding. rtmidi is used directly rather than through mido's
ports because only rtmidi's callback carries the backend's per-event delta times; they are accumulated into
host time (offset by the least delayed callback of the last seconds), so tempo and phase come from event
timestamps, not callback time.

:class:`MidiDecoder` is the pure part (bytes + time in, events out) and takes all bad input: undecodable bytes,
running-status abuse, clock floods. Bad input is logged at a limited rate, reported as BadInput events, and
dropped; nothing a sender does can raise out of the MIDI callback.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

import mido

from .ccmap import CCMapper
from .controls import RateLimitedLog
from .errors import MidiPortError
from .events import BadInput, Event
from .logs import native_output_logged
from .tempo import PPQN
from .transport import MidiClockTracker

logger = logging.getLogger(__name__)

BACKENDS = {"jack": "UNIX_JACK", "alsa": "LINUX_ALSA", "coremidi": "MACOSX_CORE", "winmm": "WINDOWS_MM"}
_AUTO_ORDER = {"linux": ("alsa", "jack"), "darwin": ("coremidi", "jack"), "win32": ("winmm",)}
_TRANSPORT = ("clock", "start", "continue", "stop", "songpos")


class MidiDecoder:
    """Raw MIDI bytes (one backend event) at host time ``t`` -> tracker / mapper -> ``emit(event)``.

    max_clock_rate: clock ticks per second above which ticks are dropped as a flood (default: 2x the rate of
    300 BPM). Not thread-safe by itself; :class:`MidiInput` serialises calls with its lock.
    """

    def __init__(
        self,
        emit: Callable[[Event], None],
        tracker: MidiClockTracker | None = None,
        mapper: CCMapper | None = None,
        source: str = "midi",
        sender: str = "midi",
        max_clock_rate: float = 2 * 300 * PPQN / 60,
    ):
        self.emit, self.source, self.sender = emit, source, sender
        self.tracker = tracker if tracker is not None else MidiClockTracker(emit, source=source)
        self.mapper = mapper if mapper is not None else CCMapper(source=source)
        self.max_clock_rate = max_clock_rate
        self.bad = RateLimitedLog(logger)
        self._parser = mido.Parser()
        self._window_start, self._window_ticks = -1e18, 0

    def _bad(self, t: float, reason: str, **details: Any) -> None:
        self.bad.warning(t, "MIDI: ignored bad input from %s: %s", self.sender, reason)
        self.emit(BadInput(self.source, self.sender, reason, details))

    def feed(self, data: Iterable[int], t: float) -> None:
        """Decode one chunk of bytes received at host time ``t`` (seconds); never raises on bad input."""
        try:
            raw = bytes(data)
        except (TypeError, ValueError) as exc:
            self._bad(t, f"not MIDI bytes: {exc}")
            return
        self._parser.feed(raw)
        decoded = 0
        for msg in self._parser:
            decoded += len(msg.bin())
            self._dispatch(msg, t)
        if decoded < len(raw) and not (raw and raw[0] == 0xF0):  # sysex may span chunks
            self._bad(t, f"{len(raw) - decoded} undecodable byte(s) dropped (no status byte, or incomplete)",
                      data=raw[:16].hex())

    def _dispatch(self, msg: mido.Message, t: float) -> None:
        try:
            if msg.type in _TRANSPORT:
                if msg.type == "clock" and self._flooded(t):
                    return
                self.tracker.handle(msg.type, t, getattr(msg, "pos", None))
            elif msg.type == "control_change":
                for event in self.mapper.handle_cc(msg.channel + 1, msg.control, msg.value, t):
                    self.emit(event)
        except Exception as exc:  # a handler bug must not kill the MIDI thread; log it with its traceback
            logger.exception("MIDI: error handling %s", msg)
            self._bad(t, f"error handling {msg.type}: {exc}")

    def _flooded(self, t: float) -> bool:
        if not 0 <= t - self._window_start < 0.25:
            self._window_start, self._window_ticks = t, 0
        self._window_ticks += 1
        if self._window_ticks > self.max_clock_rate * 0.25:
            self._bad(t, f"MIDI clock faster than {self.max_clock_rate:.0f} ticks/s (over 600 BPM); ticks dropped")
            return True
        return False


class _Stamper:
    """Backend delta times accumulated into host time. The offset between the two is the smallest
    ``clock() - accumulated`` over the last ``window_s``: the least delayed callback's, so one held-up callback (the
    first included: a busy thread holding the GIL) does not shift every later stamp, and a slow drift between the
    backend's clock and ``clock()`` is followed. A stall (an event ``max_lag`` after the one before) re-anchors."""

    def __init__(self, clock: Callable[[], float], max_lag: float = 0.5, window_s: float = 2.0):
        self.clock, self.max_lag, self.window_s = clock, max_lag, window_s
        self._acc: float | None = None
        self._offsets: deque[tuple[float, float]] = deque()  # (callback time, callback time - accumulated)

    def __call__(self, delta: float | None) -> float:
        now = self.clock()
        if self._acc is None or delta is None or delta > self.max_lag:
            self._acc = 0.0
            self._offsets.clear()
        else:
            self._acc += max(delta, 0.0)
        off = now - self._acc
        while self._offsets and (self._offsets[-1][1] >= off or self._offsets[0][0] < now - self.window_s):
            if self._offsets[-1][1] >= off:
                self._offsets.pop()  # a monotonic deque: the window's minimum is its first entry
            else:
                self._offsets.popleft()
        self._offsets.append((now, off))
        return self._acc + self._offsets[0][1]


def _api(name: str) -> int:
    import rtmidi

    return getattr(rtmidi, "API_" + BACKENDS[name])


def _backend_order(backend: str) -> tuple[str, ...]:
    if backend == "auto":
        return _AUTO_ORDER.get(sys.platform, ("alsa", "jack"))
    if backend not in BACKENDS:
        raise MidiPortError(f"MIDI backend: {backend!r} is not one of auto, {', '.join(BACKENDS)}")
    return (backend,)


class MidiInput:
    """A MIDI input port feeding a :class:`MidiDecoder`.

    port_name: the virtual port to create (virtual=True; macOS, Linux ALSA or JACK) or an existing port to open
    (virtual=False; exact name, else a case-insensitive substring; Windows needs this, e.g. a loopMIDI port).
    backend: "auto" (Linux: alsa then jack; macOS: coremidi; Windows: winmm) or one of jack, alsa, coremidi,
    winmm. on_event: called with every event, in the MIDI thread; hand it over to the daemon's loop with
    ``loop.call_soon_threadsafe``. tracker/mapper: shared with the daemon (default: fresh ones). clock: the
    host clock the timestamps are mapped into (the daemon's; time.monotonic by default, as in bridge.events).
    """

    def __init__(
        self,
        port_name: str = "Musika",
        virtual: bool = True,
        backend: str = "auto",
        on_event: Callable[[Event], None] | None = None,
        tracker: MidiClockTracker | None = None,
        mapper: CCMapper | None = None,
        client_name: str = "musika",
        clock: Callable[[], float] = time.monotonic,
    ):
        self.port_name, self.virtual, self.backend, self.client_name = port_name, virtual, backend, client_name
        self.on_event = on_event or (lambda event: None)
        self.lock = threading.Lock()
        self.decoder = MidiDecoder(self._emit, tracker, mapper, sender=port_name)
        self._stamp = _Stamper(clock)
        self._clock = clock
        self._jack: Any = None  # a bridge.jack_midi.JackMidiPort when JACK MIDI is open through JACK-Client
        self._midiin: Any = None
        self.opened_backend: str | None = None
        self.opened_port: str | None = None

    @property
    def tracker(self) -> MidiClockTracker:
        return self.decoder.tracker

    @property
    def mapper(self) -> CCMapper:
        return self.decoder.mapper

    def _emit(self, event: Event) -> None:
        self.on_event(event)

    def start(self) -> None:
        """Open the port and start receiving. Raises MidiPortError naming the port, backend and remedy."""
        import rtmidi

        errors = []
        for name in _backend_order(self.backend):
            if name == "jack" and self._start_jack(errors):
                return
            try:
                with native_output_logged(logger, f"MIDI {name}"):  # ALSA/libjack print why they cannot open
                    midiin = rtmidi.MidiIn(rtapi=_api(name), name=self.client_name)
            except (rtmidi.RtMidiError, SystemError) as exc:
                errors.append(f"{name}: {exc}")
                continue
            try:
                with native_output_logged(logger, f"MIDI {name}"):
                    self.opened_port = self._open(midiin, name)
            except MidiPortError as exc:
                midiin.delete()
                errors.append(f"{name}: {exc}")
                continue
            midiin.ignore_types(sysex=True, timing=False, active_sense=True)
            midiin.set_callback(self._callback)
            self._midiin, self.opened_backend = midiin, name
            kind = "virtual" if self.virtual else "existing"
            logger.info("MIDI input %r open (%s, %s)", self.opened_port, name, kind)
            return
        hint = " (start JACK, or on Windows create a loopMIDI port and pass --midi-in NAME)"
        raise MidiPortError(f"MIDI input {self.port_name!r}: could not open it: {'; '.join(errors)}{hint}")

    def _start_jack(self, errors: list[str]) -> bool:
        """JACK MIDI through JACK-Client (each event stamped with its own frame); False to try rtmidi's JACK."""
        from .jack_midi import JackMidiPort

        port = JackMidiPort(self.port_name, self.client_name, self._feed_timed, self.virtual, self._clock)
        try:
            with native_output_logged(logger, "MIDI jack"):  # libjack prints why it cannot connect
                self.opened_port = port.start()
        except MidiPortError as exc:
            errors.append(f"jack (JACK-Client): {exc}")
            return False
        self._jack, self.opened_backend = port, "jack"
        self.decoder.tracker.drift = port.clock_drift  # recounts in the server's time (bridge.transport)
        logger.info("MIDI input %r open (jack, %s, frame-stamped)", self.opened_port,
                    "virtual" if self.virtual else "existing")
        return True

    def _feed_timed(self, data: bytes, t: float) -> None:
        with self.lock:
            self.decoder.feed(data, t)

    def _open(self, midiin: Any, backend: str) -> str:
        import rtmidi

        if self.virtual:
            if backend == "winmm":
                raise MidiPortError("Windows cannot create virtual MIDI ports; create one with loopMIDI and "
                                    "open it by name (--midi-in NAME, virtual off)")
            try:
                midiin.open_virtual_port(self.port_name)
            except (rtmidi.RtMidiError, NotImplementedError) as exc:
                raise MidiPortError(f"cannot create virtual port: {exc}") from exc
            return self.port_name
        ports = midiin.get_ports()
        matches = [i for i, p in enumerate(ports) if p == self.port_name] or [
            i for i, p in enumerate(ports) if self.port_name.lower() in p.lower()]
        if not matches:
            raise MidiPortError(f"no input port matches {self.port_name!r}; available: {ports or 'none'}")
        midiin.open_port(matches[0])
        return ports[matches[0]]

    def _callback(self, event: tuple[list[int], float], data: object = None) -> None:
        try:
            message, delta = event
            t = self._stamp(delta)
            with self.lock:
                self.decoder.feed(message, t)
        except Exception:  # never let an exception escape into rtmidi's thread
            logger.exception("MIDI: unexpected error in the input callback")

    def start_learn(self, control: str, t: float, timeout_s: float = 30.0) -> None:
        with self.lock:
            self.mapper.start_learn(control, t, timeout_s)

    def set_current(self, name: str, value: float) -> None:
        with self.lock:
            self.mapper.set_current(name, value)

    def close(self) -> None:
        if self._jack is not None:
            self._jack.close()
            self._jack = None
            logger.info("MIDI input %r closed", self.opened_port)
        if self._midiin is not None:
            self._midiin.cancel_callback()
            self._midiin.close_port()
            self._midiin.delete()
            self._midiin = None
            logger.info("MIDI input %r closed", self.opened_port)


def list_midi_backends() -> list[dict[str, Any]]:
    """For ``musika doctor``: each compiled-in backend, whether it works here, and its input ports.

    Never raises: a backend that fails (no ALSA sequencer, no JACK server) is reported with its error."""
    try:
        import rtmidi

        compiled = set(rtmidi.get_compiled_api())
    except Exception as exc:  # python-rtmidi missing or broken
        return [{"backend": "rtmidi", "available": False, "error": f"{type(exc).__name__}: {exc}"}]
    out: list[dict[str, Any]] = []
    for name in BACKENDS:
        entry: dict[str, Any] = {"backend": name, "compiled": False, "available": False,
                                 "virtual_ports": name != "winmm"}
        try:
            api = _api(name)
            entry["compiled"] = api in compiled
            if entry["compiled"]:
                midiin = rtmidi.MidiIn(rtapi=api, name="musika-doctor")
                entry["inputs"] = list(midiin.get_ports())
                entry["available"] = True
                midiin.delete()
        except Exception as exc:
            entry["error"] = f"{type(exc).__name__}: {exc}"
        out.append(entry)
    return out
