"""Ableton Live through AbletonOSC (ideoforms/AbletonOSC): poll tempo, transport, song time and meter.

AbletonOSC is a Live control-surface script that listens on UDP 11000 and answers on 11001 to the sender's IP.
:class:`AbletonOscClient` binds the reply port, asks for `tempo`, `is_playing`, `current_song_time` and the
signature at `poll_hz`, and hands changes to `on_event` as typed events. Live services scripts on a ~100 ms
timer, so positions are coarse (``PositionEvent.exact=False``): use it for tempo, meter and transport, and MIDI
clock or Link for phase. :class:`AbletonState` is the pure part (replies in, events out, time passed in).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bridge.events import BadInput, Event, MeterEvent, PositionEvent, TempoEvent, TransportEvent
from bridge.osc import OscBindError, RateLimitedLog, build
from bridge.osc_schema import flatten

logger = logging.getLogger(__name__)
SOURCE = "osc/ableton"
PROPERTIES = ("tempo", "is_playing", "current_song_time", "signature_numerator", "signature_denominator")
QUERIES = tuple(f"/live/song/get/{p}" for p in PROPERTIES)


@dataclass
class AbletonState:
    """What Live reported last; :meth:`handle` turns one reply into events, emitting tempo, transport and meter
    only when they change and a position for every song-time reply."""

    bpm: float | None = None
    playing: bool | None = None
    beat: float | None = None
    numerator: int | None = None
    denominator: int | None = None

    def handle(self, address: str, args: Sequence[object], now: float) -> list[Event]:
        """Raises ValueError naming the address and value for a reply that makes no sense."""
        prop = address.removeprefix("/live/song/get/")
        if prop not in PROPERTIES:
            raise ValueError(f"unexpected AbletonOSC reply {address[:80]!r}")
        value = args[-1] if args else None  # some AbletonOSC versions prefix replies with the query's own args
        if isinstance(value, bool) and prop == "is_playing":
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ValueError(f"AbletonOSC {prop} reply {list(args)[:4]!r} is not a finite number")
        if prop == "tempo":
            if not 20.0 <= value <= 999.0:
                raise ValueError(f"AbletonOSC tempo {value} is outside Live's 20–999 BPM")
            changed, self.bpm = self.bpm != float(value), float(value)
            return [TempoEvent(float(value), SOURCE, now)] if changed else []
        if prop == "is_playing":
            playing = bool(value)
            if playing == self.playing:
                return []
            self.playing = playing
            action = "play" if playing else "stop"
            return [TransportEvent(action, SOURCE, now, beat=self.beat if playing else None)]
        if prop == "current_song_time":
            if value < 0:
                raise ValueError(f"AbletonOSC song time {value} is negative")
            self.beat = float(value)
            return [PositionEvent(float(value), SOURCE, now, exact=False)]
        if value != int(value) or not 1 <= value <= 99:
            raise ValueError(f"AbletonOSC {prop} {value} is not a whole number 1–99")
        setattr(self, prop.removeprefix("signature_"), int(value))
        if prop == "signature_denominator" and self.numerator is not None:
            return [MeterEvent(self.numerator, int(value), SOURCE)]
        return []


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, client: AbletonOscClient) -> None:
        self.client = client

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        self.client._receive(data, str(addr[0]))

    def error_received(self, exc: Exception) -> None:  # Live not running: ICMP port unreachable
        logger.debug("AbletonOSC socket error: %s", exc)


class AbletonOscClient:
    """Polls Live through AbletonOSC on the running asyncio loop; `await start()`, `await stop()`."""

    def __init__(self, host: str = "127.0.0.1", send_port: int = 11000, reply_port: int = 11001,
                 on_event: Callable[[Event], None] = lambda e: None, poll_hz: float = 10.0,
                 meter_every: int = 10) -> None:
        if not 0.1 <= poll_hz <= 50:
            raise ValueError(f"AbletonOSC poll rate {poll_hz} Hz is outside 0.1–50 Hz")
        self.host, self.send_port, self.reply_port = host, send_port, reply_port
        self.on_event, self.poll_hz, self.meter_every = on_event, poll_hz, meter_every
        self.state = AbletonState()
        self.stats = {"polls": 0, "replies": 0, "bad": 0}
        self.last_reply: float | None = None  # time.monotonic() of Live's last answer
        self._log = RateLimitedLog(logger)
        self._transport: asyncio.DatagramTransport | None = None
        self._task: asyncio.Task | None = None

    @property
    def connected(self) -> bool:
        """Live answered within the last second (or three poll periods)."""
        window = max(1.0, 3.0 / self.poll_hz)
        return self.last_reply is not None and time.monotonic() - self.last_reply < window

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        local = "127.0.0.1" if _is_loopback(self.host) else "0.0.0.0"
        try:
            self._transport, _ = await loop.create_datagram_endpoint(lambda: _Protocol(self),
                                                                     local_addr=(local, self.reply_port))
        except OSError as exc:
            raise OscBindError(f"cannot bind the AbletonOSC reply port {local}:{self.reply_port} "
                               f"({exc.strerror or exc}); is another AbletonOSC client running?") from exc
        self.reply_port = self._transport.get_extra_info("sockname")[1]
        self._task = asyncio.create_task(self._poll(), name="abletonosc-poll")
        logger.info("AbletonOSC: polling %s:%d, replies on port %d", self.host, self.send_port, self.reply_port)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    def send(self, address: str, *args: object) -> None:
        """Send a command to Live, e.g. ("/live/song/set/tempo", 124.0) or ("/live/song/start_playing",)."""
        if self._transport is not None:
            self._transport.sendto(build([(address, args)]), (self.host, self.send_port))

    async def _poll(self) -> None:
        n = 0
        while True:
            queries = QUERIES if n % self.meter_every == 0 else QUERIES[:3]
            for query in queries:
                self.send(query)
            self.stats["polls"] += 1
            if n == int(3 * self.poll_hz) and self.last_reply is None:
                logger.warning("AbletonOSC: no reply from Live at %s:%d; in Live select AbletonOSC under "
                               "Settings > Link/Tempo/MIDI > Control Surface", self.host, self.send_port)
            n += 1
            await asyncio.sleep(1.0 / self.poll_hz)

    def _receive(self, data: bytes, sender_ip: str) -> None:
        now = time.monotonic()
        if sender_ip != self.host and not (_is_loopback(sender_ip) and _is_loopback(self.host)):
            self._bad(now, sender_ip, "reply from a host that is not Live's")
            return
        try:
            events = []
            for _stamp, msg in flatten(data):
                events += self.state.handle(msg.address, list(msg.params), now)
        except Exception as exc:  # malformed packet or nonsense value: count, log, drop
            self._bad(now, sender_ip, str(exc))
            return
        self.stats["replies"] += 1
        self.last_reply = now
        for event in events:
            self._deliver(event)

    def _bad(self, now: float, sender: str, reason: str) -> None:
        self.stats["bad"] += 1
        self._log.warning(now, "AbletonOSC: dropped a reply from %s: %s", sender, reason)
        self._deliver(BadInput(source=SOURCE, sender=sender, reason=reason[:200]))

    def _deliver(self, event: Event) -> None:
        try:
            self.on_event(event)
        except Exception:
            logger.exception("AbletonOSC: the event handler failed on %r", event)
