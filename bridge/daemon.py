"""The daemon core: typed events from every input -> the live stream, through sync arbitration.

:class:`DaemonCore` runs on the daemon's asyncio loop (MIDI callbacks are handed over with
``loop.call_soon_threadsafe``; OSC, Link and AbletonOSC already deliver there). It keeps one
:class:`~bridge.transport.Transport` model per sync source (midi, link, jack, osc = Reaper/AbletonOSC feedback,
internal = the free-running clock that manual commands drive), asks the :class:`~bridge.sync.SyncArbiter` which
source drives the transport, and forwards only that source's transport and tempo to the
:class:`~generator.timeline.live.LiveStream`. With no sync source heard yet the internal clock plays from the start
(:meth:`DaemonCore.start`). When the arbiter switches, the live stream adopts the new source's state: a playing
host is joined at its next bar line without a gap (LiveStream.join), a stopped one stops the music at the next bar
line; when it falls back to ``internal`` the music keeps playing at the last tempo. Controls, seed and preset
changes are accepted from any input; a CC mapping's smoothing becomes a glide (bridge.smoothing) whose value each
bar line plays. Bad input is counted for telemetry (the inputs log it at a limited rate). Time comes from
``clock`` (seconds, time.monotonic domain, as in bridge.events).
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from bridge.controls import ControlSpec, RateLimitedLog
from bridge.events import (
    BadInput,
    ControlEvent,
    Event,
    LearnEvent,
    MeterEvent,
    PositionEvent,
    PresetEvent,
    RenderRequest,
    SeedEvent,
    SyncSourceEvent,
    TempoEvent,
    TransportEvent,
)
from bridge.logs import NOTICE
from bridge.osc_schema import ParamSpec
from bridge.ports import DaemonPorts
from bridge.smoothing import ControlSmoother
from bridge.sync import SOURCES, SyncArbiter
from bridge.transport import DeviceClockTransport, Transport
from generator.errors import MusikaError
from generator.timeline.live_control import LiveStreamPort

logger = logging.getLogger(__name__)

SYNC_FAMILY = {"midi": "midi", "link": "link", "jack": "jack", "osc/reaper": "osc", "osc/ableton": "osc"}
MANUAL_SOURCES = ("osc", "cli", "internal")  # /musika/tempo, /musika/transport/*: drive the internal clock
NOT_PARAMS = ("seed", "preset", "tempo")  # set through their own addresses (or the sync source)


class DaemonCore:
    """Applies events to ``live`` (a LiveStream: play/cont/stop/locate/set_tempo/set_control/set_seed/set_preset,
    telemetry(), play_head_beat(), perf.current, output_latency_s, sync_source).

    mode/timeout_s: sync arbitration (bridge.sync). bpm/meter: the internal clock's start. specs: the controls that
    exist (bridge.controls.control_specs). presets: names accepted by PresetEvent. relocate_beats: a playing source
    whose position (PositionEvent) differs from what is heard by more than this (exact sources; coarse ones 4x)
    re-anchors the stream; not within ``relocate_every_s`` of a transport change or another re-anchor. Smaller
    errors of exact sources are nudged away (LiveStream.sync). The internal clock states no positions, so while it
    drives, :meth:`tick` checks what is heard against it every ``internal_check_s``: audio delayed by an underrun or
    an xrun comes back onto the grid instead of staying late. It counts the device's time, not the host's, so a
    device clock that runs slower or faster than the host's leaves the beats alone.
    ``ports`` (:class:`DaemonPorts`): what the core drives besides the live stream, given at construction.
    """

    def __init__(self, live: LiveStreamPort, *, ports: DaemonPorts | None = None, mode: str = "auto",
                 timeout_s: float = 2.0, bpm: float = 128.0, meter: tuple[int, int] = (4, 4),
                 specs: dict[str, ControlSpec] | None = None, presets: Callable[[], Sequence[str]] = tuple,
                 clock: Callable[[], float] = time.monotonic, relocate_beats: float = 0.5,
                 relocate_every_s: float = 4.0):
        self.live, self.clock, self.presets = live, clock, presets
        self.ports = ports or DaemonPorts()
        self.arbiter = SyncArbiter(mode, timeout_s)
        self.transports = {s: Transport(bpm, *meter) for s in SOURCES}
        # the internal clock counts the device's time: its beats are even in what is played (bridge.transport)
        self.transports["internal"] = DeviceClockTransport(lambda: self.live.clock_drift_s, bpm, *meter)
        self.specs: dict[str, ControlSpec] = dict(specs or {})
        self.controls: dict[str, float] = {n: s.default for n, s in self.specs.items() if n not in NOT_PARAMS}
        self.relocate_beats, self.relocate_every_s = relocate_beats, relocate_every_s
        self.playing = False  # what the live stream was last told
        self.bpm = float(bpm)
        self.tempo_known: set[str] = set()  # sources that have told us their tempo
        self.bad_input: Counter[str] = Counter()
        self.ignored: Counter[str] = Counter()
        self.relocations = 0
        self.sync_error_beats = math.nan
        self.learned: list[str] = []
        self.smoother = ControlSmoother()  # CC smoothing: glides handed to the live stream (bridge.smoothing)
        self._glide_quantise: dict[str, str | None] = {}
        self._glide_sent: dict[str, float] = {}
        self._last_relocate = -math.inf
        self.internal_check_s = 0.5
        self._last_internal_check = -math.inf
        self._log = RateLimitedLog(logger)
        self.live.sync_source = self.arbiter.current

    # ------------------------------------------------------------------------------------------ start
    def start(self, inputs: str = "") -> None:
        """Serving begins (every input is open). In ``auto`` mode with no sync source heard yet, and in
        ``internal`` mode, the internal clock plays at once; a forced source (midi, link, osc) waits for the host's
        Start. ``inputs`` says what could bring a host, for the log line (e.g. "MIDI clock or Reaper OSC")."""
        now = self.clock()
        self.tick(now)
        mode = self.arbiter.mode
        if mode not in ("auto", "internal"):
            logger.log(NOTICE, "sync %s: waiting for the host to start", mode)
            return
        if self.arbiter.current != "internal":
            return  # a host was heard while the inputs opened: the handover followed it
        if mode == "internal":
            logger.log(NOTICE, "playing on the internal clock at %g BPM (sync internal)", self.bpm)
        else:
            follow = f"; will follow the host when it sends {inputs}" if inputs else ""
            logger.log(NOTICE, "no sync source yet: playing on the internal clock at %g BPM%s", self.bpm, follow)
        self.handle(TransportEvent("play", "internal", now, 0.0))

    # ------------------------------------------------------------------------------------------ dispatch
    def handle(self, event: Event) -> None:
        """Apply one event (on the loop thread). Never raises on bad input: it is counted and logged."""
        now = self.clock()
        try:
            self._dispatch(event, now)
        except MusikaError as exc:  # e.g. a value out of range, an unknown preset: the music keeps playing
            self._refuse(now, getattr(event, "source", "?"), f"{type(event).__name__}: {exc}")

    def _refuse(self, now: float, source: str, reason: str) -> None:
        self.bad_input[source] += 1
        self._log.warning(now, "ignored input from %s: %s", source, reason)

    def _dispatch(self, event: Event, now: float) -> None:
        if isinstance(event, BadInput):
            self.bad_input[event.source] += 1
        elif isinstance(event, TransportEvent | TempoEvent | PositionEvent):
            self._sync_event(event, now)
        elif isinstance(event, ControlEvent):
            self._control(event, now)
        elif isinstance(event, SeedEvent):
            self.live.set_seed(event.seed, event.quantise, now=now)
            if event.source != "osc":
                self.ports.broadcast("/musika/seed", int(event.seed))
        elif isinstance(event, PresetEvent):
            self._preset(event, now)
        elif isinstance(event, SyncSourceEvent):
            self.arbiter.set_mode(event.source_name)
            self.tick(now)
        elif isinstance(event, MeterEvent):
            for tr in self.transports.values():
                tr.set_meter(event.numerator, event.denominator)
            self.live.set_meter(event.numerator, event.denominator, now=now)  # from the next bar line
        elif isinstance(event, LearnEvent):
            if self.ports.learn is None:
                raise _CoreError(f"MIDI learn for {event.control!r} needs MIDI input; it is off (--no-midi)")
            self.ports.learn(event.control, now)
        elif isinstance(event, RenderRequest):
            if self.ports.render is None:
                raise _CoreError("offline rendering is not available in this daemon")
            self.ports.render(event)

    # ------------------------------------------------------------------------------------------ sync
    def family(self, source: str) -> str | None:
        """The sync source an event's source belongs to (None: not a sync source)."""
        if source in MANUAL_SOURCES:
            return "internal"
        return SYNC_FAMILY.get(source)

    def seen(self, family: str, t: float) -> None:
        """A sync source delivered data at host time ``t`` (e.g. every MIDI clock tick, polled)."""
        self.arbiter.seen(family, t)

    def tick(self, now: float | None = None) -> bool:
        """Hand on the glides under way, re-evaluate the sync source; on a change the live stream adopts the new
        source. Returns changed."""
        now = self.clock() if now is None else now
        self._send_glides(now)
        decision = self.arbiter.update(now)
        self.live.sync_source = decision.source
        if decision.changed:
            self._handover(decision.source, now)
        elif decision.source == "internal" and now - self._last_internal_check >= self.internal_check_s:
            self._last_internal_check = now
            tr = self.transports["internal"]
            if tr.playing:  # the internal clock states no position: check what is heard against it
                self._check_phase(PositionEvent(tr.beat_at(now), "internal", now, exact=True), now,
                                  hold_s=self.internal_check_s)  # its own clock: no source lag to wait out
        return decision.changed

    def _sync_event(self, event: TransportEvent | TempoEvent | PositionEvent, now: float) -> None:
        family = self.family(event.source)
        if family is None:
            raise _CoreError(f"unknown sync source {event.source!r}")
        tr, t = self.transports[family], event.time
        if isinstance(event, TransportEvent):
            _follow(tr, event)
        elif isinstance(event, TempoEvent):
            tr.set_tempo(event.bpm, t)
            self.tempo_known.add(family)
        elif tr.playing or family in ("link", "jack"):  # exact sources state where a stopped host stands
            tr.locate(event.beat, t)
        if family != "internal":
            self.arbiter.seen(family, t)
        if self.tick(now):
            return  # the handover adopted this source's state, this event included
        if not self.arbiter.accepts(family):
            if family == "internal" and event.source != "internal":
                self.ignored[event.source] += 1
                self._log.warning(now, "%s from %s noted for the internal clock, but %s drives the transport "
                                  "now (send /musika/sync internal to take over)", type(event).__name__,
                                  event.source, self.arbiter.current)
            return
        if isinstance(event, TransportEvent):
            self._apply_transport(event.action, tr, t, now)
        elif isinstance(event, TempoEvent):
            self.bpm = event.bpm
            beat = tr.beat_at(t) if tr.playing else None
            self.live.set_tempo(event.bpm, event.confidence, now=now, beat=beat, at_time=t if tr.playing else None,
                                slope=event.slope if tr.playing else 0.0)
        else:
            self._check_phase(event, now)

    def _apply_transport(self, action: str, tr: Transport, t: float, now: float) -> None:
        beat = tr.beat_at(t)
        self._last_relocate = now  # no phase check until the new run is heard
        if action == "stop":
            if self.playing:
                self.live.stop(now=now)
            self.playing = False
        elif action == "locate":
            if self.playing:
                self.live.locate(beat, at_time=t, now=now)
        else:  # play, continue
            (self.live.play if action == "play" else self.live.cont)(beat, at_time=t, now=now)
            self.playing = True

    def _handover(self, source: str, now: float) -> None:
        """The live stream adopts ``source``'s state: a playing host is joined at its next bar line without a
        gap (or started, when nothing plays); a stopped one stops the music at the next bar line."""
        tr, why = self.transports[source], self.arbiter.reason
        if source == "internal":  # fallback: keep whatever plays, free-running at the last tempo
            tr.set_tempo(self.bpm, now)
            if self.playing:
                tr.play(now, self.heard_beat(now))
                logger.log(NOTICE, "%s: playing on at %.1f BPM on the internal clock", why, self.bpm)
            else:
                tr.stop(now)
                tr.locate(self.heard_beat(now), now)
                logger.log(NOTICE, "%s: stopped, on the internal clock at %.1f BPM", why, self.bpm)
            return
        joining = tr.playing and self.playing
        if not tr.playing and self.playing:  # first: a stopped host's tempo is for its Start, not the last bar
            self.live.stop_at_bar(now=now)
        if source in self.tempo_known and tr.bpm != self.bpm:
            self.bpm = tr.bpm
            if not joining:  # a join carries the host's tempo itself
                self.live.set_tempo(tr.bpm, now=now)
        if tr.playing:
            beat = tr.beat_at(now)
            self._last_relocate = now
            if joining:
                self.live.join(beat, tr.bpm, at_time=now, now=now)
                logger.log(NOTICE, "following %s: joining its bar grid at its next bar line", why)
            else:
                self.live.play(beat, at_time=now, now=now)
                logger.log(NOTICE, "following %s: playing from beat %.1f", why, beat)
            self.playing = True
        elif self.playing:
            self.playing = False
            logger.log(NOTICE, "following %s: the host is stopped, so the music stops at the next bar line and "
                       "starts with the host", why)
        elif self.arbiter.alive(source, now):  # (a forced source never heard yet: start() said so)
            logger.log(NOTICE, "following %s: waiting for the host to start", why)

    def heard_beat(self, now: float) -> float:
        """The beat the listener hears at ``now`` (play head minus the sink's latency)."""
        return float(self.live.heard_beat(now))

    def _check_phase(self, event: PositionEvent, now: float, hold_s: float | None = None) -> None:
        hold_s = self.relocate_every_s if hold_s is None else hold_s
        if self.playing and self.live.joining:  # the host's run starts at its bar line: re-time the join
            self.live.sync(event.beat, event.time, now=now)
            return
        if not self.playing or self.live.perf.current is None or now - self._last_relocate < hold_s:
            return
        heard = self.heard_beat(now) - (now - event.time) * self.bpm / 60.0
        err = heard - event.beat
        self.sync_error_beats = err
        limit = self.relocate_beats * (1 if event.exact else 4)
        if abs(err) <= limit and event.exact:
            self.live.sync(event.beat, event.time, now=now)  # small errors: nudged back onto the grid
        if abs(err) > limit:
            self._last_relocate = now
            self.relocations += 1
            logger.warning("%s is at beat %.2f but beat %.2f is heard (%.0f ms off); re-anchoring",
                           event.source, event.beat, heard, err * 60000 / self.bpm)
            self.live.locate(event.beat, at_time=event.time, now=now)

    # ------------------------------------------------------------------------------------------ controls
    def _control(self, event: ControlEvent, now: float) -> None:
        spec = self.specs.get(event.name)
        if spec is None:
            raise _CoreError(f"control {event.name!r} does not exist; known: {', '.join(sorted(self.specs))}")
        value = spec.clamp(float(event.value))
        if event.smoothing_ms > 0 and self.playing and not spec.integer:
            self.smoother.set_target(event.name, value, now, event.smoothing_ms, self.controls.get(event.name))
            self._glide_quantise[event.name] = event.quantise
            self._send_glides(now)
        else:
            self.smoother.cancel(event.name)
            self.live.set_control(event.name, value, event.quantise, now=now)
            self.controls[event.name] = value
        if event.source != "midi":
            self.ports.set_current(event.name, value)
        if event.source != "osc" and spec.max > spec.min:
            self.ports.broadcast(f"/musika/param/{event.name}", (value - spec.min) / (spec.max - spec.min))

    def _send_glides(self, now: float) -> None:
        """Hand each glide under way to the live stream, which plays at each bar line (the control's
        quantisation point) the value of the moment it is heard; the same value at the same beat is ignored."""
        for name in self.smoother.due(now):
            glide, q = self.smoother.glide(name), self._glide_quantise.get(name)
            if (q or self.live.default_quantise) == "now" and now < glide.end:
                if now - self._glide_sent.get(name, -math.inf) < 60.0 / self.bpm:
                    continue  # "now" lands anywhere: one step per beat is smooth enough and costs little
            self._glide_sent[name] = now
            self.live.set_control(name, glide.value_at, q, now=now)
            self.controls[name] = glide.value_at(now)

    def _preset(self, event: PresetEvent, now: float) -> None:
        known = list(self.presets())
        if event.name not in known:
            raise _CoreError(f"preset {event.name!r} is not installed; available: {', '.join(known) or 'none'}")
        if self.ports.specs_for is not None:
            self.specs = self.ports.specs_for(event.name)
            self.controls = {n: self.controls.get(n, s.default) for n, s in self.specs.items()
                             if n not in NOT_PARAMS}
            for name in [n for n in self._glide_quantise if n not in self.specs]:
                self.smoother.cancel(name)  # the new preset has no such control
        self.live.set_preset(event.name, event.quantise, now=now)
        if event.source != "osc":
            self.ports.broadcast("/musika/preset", event.name)

    def on_learned(self, result: Any) -> None:
        """MIDI learn bound a CC (a bridge.ccmap.LearnResult; called on the loop)."""
        m = result.mapping
        self.learned.append(f"{m.control}=ch{m.channel}/cc{m.cc}")
        self.ports.broadcast("/musika/ack", "/musika/learn", m.control, m.channel, m.cc)

    # ------------------------------------------------------------------------------------------ telemetry
    def params(self) -> list[ParamSpec]:
        """Continuous controls for /musika/param/<name> (0-1 over the wire)."""
        return [ParamSpec(s.name, s.min, s.max, s.default, s.unit) for s in self.specs.values()
                if s.name not in NOT_PARAMS and not s.integer]

    def status(self, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """Flat telemetry for /musika/status and the log: the live stream's Telemetry plus sync details."""
        now = self.clock()
        out: dict[str, Any] = self.live.telemetry().to_dict()
        tr = self.transports[self.arbiter.current]
        host = tr.beat_at(now)
        heard = self.heard_beat(now)
        out.update(
            time=round(now, 4), sync_mode=self.arbiter.mode, sync_reason=self.arbiter.reason,
            host_playing=tr.playing, host_bpm=tr.bpm, host_beat=round(host, 4), heard_beat=round(heard, 4),
            sync_error_ms=(round((heard - host) * 60000 / self.bpm, 2)
                           if self.playing and tr.playing and not self.live.joining else math.nan),
            relocations=self.relocations, bad_input=sum(self.bad_input.values()),
            ignored=sum(self.ignored.values()), learned=",".join(self.learned),
        )
        out["lock_phase_ms"] = lock = out["phase_error_ms"]  # + late: the beats in what was rendered, and what is
        out["phase_error_ms"] = lock - out["sync_error_ms"]  # heard runs behind the host by -sync_error_ms (NaN: ?)
        out.update({f"param_{k}": v for k, v in self.controls.items()}, **(extra or {}))
        return {k: (round(v, 4) if isinstance(v, float) and math.isfinite(v) else v) for k, v in out.items()}


class _CoreError(MusikaError, ValueError):
    """An event the core cannot apply (unknown control or preset, MIDI off, ...)."""


def _follow(tr: Transport, event: TransportEvent) -> None:
    """Update a source's transport model from its transport event."""
    t = event.time
    if event.action == "play":
        tr.play(t, event.beat if event.beat is not None else 0.0)
    elif event.action == "continue":
        if event.beat is not None:
            tr.locate(event.beat, t)
        tr.continue_(t)
    elif event.action == "stop":
        tr.stop(t)
        if event.beat is not None:
            tr.locate(event.beat, t)
    elif event.beat is not None:
        tr.locate(event.beat, t)
