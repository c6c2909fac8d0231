"""The OSC server: a UDP socket on the daemon's asyncio loop that decodes packets into typed events.

It owns the socket and nothing else: bridge.osc_addresses decodes, the `on_event` callback (the daemon core)
decides. Replies and echoes go back to the sender's address and port; subscribers get status pushed at their
rate. Bad packets are counted (`stats`), handed to the core as :class:`BadInput`, logged at a limited rate with
their sender, and dropped; the server keeps running. Only loopback clients are accepted unless `allow` lists
their networks, and binding to a non-loopback address requires such a list.

    server = OscServer(port=9000, on_event=core.handle, status_provider=core.status)
    await server.start()          # server.port is the actual port (port=0 picks a free one)
    ...
    await server.stop()
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder
from pythonosc.osc_message_builder import OscMessageBuilder

from bridge.errors import BridgeError, ConfigError
from bridge.events import BadInput, Event
from bridge.osc_addresses import Context, OscInputError, ParamSpec, decode, status_messages
from bridge.osc_schema import flatten, parse_allow, sender_allowed
from bridge.reaper import ReaperState

logger = logging.getLogger(__name__)
Sender = tuple[str, int]


class OscBindError(BridgeError, OSError):
    """The OSC port cannot be bound (in use, or the address does not exist on this machine)."""


class RateLimitedLog:
    """At most one warning per `interval` seconds to `log`; the next one says how many were suppressed.

    (Stand-in until bridge.controls ships the shared RateLimitedLog.)"""

    def __init__(self, log: logging.Logger, interval: float = 5.0) -> None:
        self.log, self.interval, self._last, self._suppressed = log, interval, -1e18, 0

    def warning(self, now: float, msg: str, *args: object, exc_info: bool = False) -> None:
        if now - self._last < self.interval:
            self._suppressed += 1
            return
        if self._suppressed:
            msg += f" ({self._suppressed} similar messages suppressed)"
        self._last, self._suppressed = now, 0
        self.log.warning(msg, *args, exc_info=exc_info)


def build(messages: Sequence[tuple[str, Sequence[object]]]) -> bytes:
    """One datagram: a plain message, or an immediate bundle when there are several."""
    built = []
    for address, args in messages:
        builder = OscMessageBuilder(address=address)
        for value in args:
            builder.add_arg(value)
        built.append(builder.build())
    if len(built) == 1:
        return built[0].dgram
    bundle = OscBundleBuilder(IMMEDIATELY)
    for msg in built:
        bundle.add_content(msg)
    return bundle.build().dgram


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, server: OscServer) -> None:
        self.server = server

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        self.server._receive(data, (str(addr[0]), int(addr[1])))

    def error_received(self, exc: Exception) -> None:  # ICMP port unreachable from a gone client
        logger.debug("OSC socket error: %s", exc)


class OscServer:
    """UDP OSC server on the running asyncio loop; see the module docstring."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, allow: Iterable[str] = (),
                 on_event: Callable[[Event], None] = lambda e: None,
                 status_provider: Callable[[], Mapping[str, object]] = dict,
                 presets_provider: Callable[[], Sequence[str]] = lambda: (),
                 params_provider: Callable[[], Sequence[ParamSpec]] = lambda: (),
                 path_roots: Mapping[str, str | Path] | None = None, *, reaper: ReaperState | None = None,
                 max_packet: int = 8192, max_subscribers: int = 16, max_pending: int = 1024,
                 horizon_s: float = 60.0, error_replies_per_s: float = 20.0) -> None:
        self.allow = parse_allow(allow)
        try:
            local = ipaddress.ip_address(host).is_loopback
        except ValueError:
            local = host == "localhost"
        if not local and not self.allow:
            raise ConfigError(f"OSC host {host!r} is not loopback, so other machines could control the daemon; "
                              f"pass allow networks (--allow 192.168.1.0/24) or bind to 127.0.0.1")
        self.host, self.port = host, port
        self.on_event = on_event
        self.ctx = Context(params=params_provider, presets=presets_provider, status=status_provider,
                           path_roots={k: Path(v) for k, v in (path_roots or {}).items()},
                           reaper=reaper or ReaperState())
        self.max_packet, self.max_subscribers, self.max_pending = max_packet, max_subscribers, max_pending
        self.horizon_s = horizon_s
        self.stats = {"received": 0, "bad": 0, "refused": 0, "events": 0, "scheduled": 0, "replies": 0}
        self.subscribers: dict[Sender, list[float]] = {}  # sender -> [period_s, next_due (loop time)]
        self._log = RateLimitedLog(logger)
        self._error_budget, self._error_rate, self._error_t = error_replies_per_s, error_replies_per_s, 0.0
        self._transport: asyncio.DatagramTransport | None = None
        self._pending: set[asyncio.TimerHandle] = set()
        self._push_task: asyncio.Task | None = None
        self._wake = asyncio.Event()

    async def start(self) -> None:
        """Bind the socket; afterwards `self.port` is the port actually bound."""
        loop = asyncio.get_running_loop()
        try:
            self._transport, _ = await loop.create_datagram_endpoint(lambda: _Protocol(self),
                                                                     local_addr=(self.host, self.port))
        except OSError as exc:
            raise OscBindError(f"cannot bind OSC to {self.host}:{self.port} ({exc.strerror or exc}); choose "
                               f"another port (0 picks a free one) or stop the program using it") from exc
        self.port = self._transport.get_extra_info("sockname")[1]
        self._push_task = asyncio.create_task(self._push_loop(), name="osc-status-push")
        logger.info("OSC listening on %s:%d (allow: loopback%s)", self.host, self.port,
                    "".join(f", {n}" for n in self.allow))

    async def stop(self) -> None:
        for handle in self._pending:
            handle.cancel()
        self._pending.clear()
        if self._push_task is not None:
            self._push_task.cancel()
            await asyncio.gather(self._push_task, return_exceptions=True)
            self._push_task = None
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    # ---- sending -------------------------------------------------------------------------------------

    def send(self, to: Sender, address: str, *args: object) -> None:
        """Send one message to `to` (ip, port); silently nothing when stopped."""
        self.send_many(to, [(address, args)])

    def send_many(self, to: Sender, messages: Sequence[tuple[str, Sequence[object]]]) -> None:
        """Send several messages to `to` in one datagram (a bundle)."""
        if self._transport is not None and messages:
            self._transport.sendto(build(messages), to)
            self.stats["replies"] += 1

    def broadcast(self, address: str, *args: object, exclude: Sender | None = None) -> None:
        """Send to every subscriber, e.g. to echo a value the core changed (MIDI, automation)."""
        for sub in list(self.subscribers):
            if sub != exclude:
                self.send(sub, address, *args)

    def render_progress(self, to: Sender, fraction: float) -> None:
        self.send(to, "/musika/render/progress", float(fraction))

    def render_done(self, to: Sender, path: str) -> None:
        self.send(to, "/musika/render/done", str(path))

    def render_error(self, to: Sender, message: str) -> None:
        self.send(to, "/musika/render/error", str(message))

    def _send_status(self, to: Sender) -> None:
        try:
            status = self.ctx.status()
        except Exception:
            logger.exception("OSC: the status provider failed")
            return
        self.send_many(to, status_messages(status))

    # ---- receiving -----------------------------------------------------------------------------------

    def _bad(self, sender: Sender, reason: str, now: float, address: str = "") -> None:
        self.stats["bad"] += 1
        self._log.warning(now, "OSC: dropped a message from %s:%d: %s", sender[0], sender[1], reason)
        self._deliver([BadInput(source="osc", sender=f"{sender[0]}:{sender[1]}", reason=reason[:200])])
        if address.startswith("/musika/") and self._take_error_budget(now):
            self.send(sender, "/musika/error", address[:200], reason[:500])

    def _take_error_budget(self, now: float) -> bool:
        self._error_budget = min(self._error_rate, self._error_budget + (now - self._error_t) * self._error_rate)
        self._error_t = now
        if self._error_budget >= 1.0:
            self._error_budget -= 1.0
            return True
        return False

    def _receive(self, data: bytes, sender: Sender) -> None:
        now = time.monotonic()
        self.stats["received"] += 1
        if not sender_allowed(sender[0], self.allow):
            self.stats["refused"] += 1
            self._log.warning(now, "OSC: refused a packet from %s (not loopback and not in the allow list)",
                              sender[0])
            return
        if len(data) > self.max_packet:
            return self._bad(sender, f"packet of {len(data)} bytes exceeds {self.max_packet}", now)
        try:
            messages = flatten(data)
        except Exception as exc:  # python-osc raises ParseError, IndexError, struct.error, UnicodeError...
            return self._bad(sender, f"malformed packet ({type(exc).__name__}: {exc})", now)
        wall = time.time()
        batches: dict[float, list[Event]] = {}
        for stamp, msg in messages:
            due = now + max(0.0, stamp - wall) if stamp else now
            if due - now > self.horizon_s:
                self._bad(sender, f"timetag {due - now:.1f} s ahead exceeds {self.horizon_s:g} s", now, msg.address)
                continue
            try:
                result = decode(msg.address, list(msg.params), sender, due, self.ctx)
            except OscInputError as exc:
                self._bad(sender, str(exc), now, msg.address)
                continue
            except Exception as exc:  # a bug in a factory must not stop the server
                self._log.warning(now, "OSC: internal error decoding %s", msg.address[:80], exc_info=True)
                self._bad(sender, f"internal error ({type(exc).__name__})", now)
                continue
            batches.setdefault(due, []).extend(result.events)
            self.send_many(sender, result.replies)
            for address, args in result.echo:
                self.send(sender, address, *args)
                self.broadcast(address, *args, exclude=sender)
            if result.subscribe_hz is not None:
                self._subscribe(sender, result.subscribe_hz)
        for due, events in batches.items():
            self._schedule(due, events, sender, now)

    def _schedule(self, due: float, events: list[Event], sender: Sender, now: float) -> None:
        if due <= now:
            return self._deliver(events)
        if len(self._pending) >= self.max_pending:
            return self._bad(sender, f"more than {self.max_pending} scheduled bundles pending", now)
        loop = asyncio.get_running_loop()
        handle: asyncio.TimerHandle

        def fire() -> None:
            self._pending.discard(handle)
            self._deliver(events)

        handle = loop.call_later(due - now, fire)
        self._pending.add(handle)
        self.stats["scheduled"] += 1

    def _deliver(self, events: list[Event]) -> None:
        for event in events:
            self.stats["events"] += 1
            try:
                self.on_event(event)
            except Exception:
                self._log.warning(time.monotonic(), "OSC: the event handler failed on %r", event, exc_info=True)

    # ---- subscriptions -------------------------------------------------------------------------------

    def _subscribe(self, sender: Sender, hz: float) -> None:
        if hz <= 0:
            self.subscribers.pop(sender, None)
            return
        if sender not in self.subscribers and len(self.subscribers) >= self.max_subscribers:
            self.subscribers.pop(next(iter(self.subscribers)))  # evict the oldest
        self.subscribers[sender] = [1.0 / hz, asyncio.get_running_loop().time()]
        self._wake.set()

    async def _push_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._wake.clear()
            timeout = None
            if self.subscribers:
                now = loop.time()
                for sender, slot in list(self.subscribers.items()):
                    if slot[1] <= now:
                        self._send_status(sender)
                        slot[1] = max(slot[1] + slot[0], now)
                timeout = max(min(slot[1] for slot in self.subscribers.values()) - loop.time(), 0.001)
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=timeout)
            except TimeoutError:
                pass

