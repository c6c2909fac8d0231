"""The daemon core: typed events from every input -> the live stream, through sync arbitration.

:class:`DaemonCore` runs on the daemon's asyncio loop (MIDI callbacks are handed over with
``loop.call_soon_threadsafe``; OSC, Link and AbletonOSC already deliver there). It keeps one
:class:`~bridge.transport.Transport` model per sync source (midi, link, osc = Reaper/AbletonOSC feedback,
internal = the free-running clock that manual commands drive), asks the :class:`~bridge.sync.SyncArbiter` which
source drives the transport, and forwards only that source's transport and tempo to the
:class:`~generator.live.LiveStream`. When the arbiter switches, the live stream adopts the new source's state
(tempo, playing, position); when it falls back to ``internal`` the music keeps playing at the last tempo.
Controls, seed and preset changes are accepted from any input. Bad input is counted for telemetry (the inputs
log it at a limited rate). Time comes from ``clock`` (seconds, time.monotonic domain, as in bridge.events).

:class:`RenderJobs` runs OSC-requested offline renders in a worker thread and replies progress/done/error.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
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
from bridge.osc_schema import ParamSpec
from bridge.sync import SOURCES, SyncArbiter
from bridge.transport import Transport
from generator.errors import MusikaError

logger = logging.getLogger(__name__)

SYNC_FAMILY = {"midi": "midi", "link": "link", "osc/reaper": "osc", "osc/ableton": "osc"}
MANUAL_SOURCES = ("osc", "cli", "internal")  # /musika/tempo, /musika/transport/*: drive the internal clock
NOT_PARAMS = ("seed", "preset", "tempo")  # set through their own addresses (or the sync source)
Broadcast = Callable[..., None]


class DaemonCore:
    """Applies events to ``live`` (a LiveStream: play/cont/stop/locate/set_tempo/set_control/set_seed/set_preset,
    telemetry(), play_head_beat(), perf.current, output_latency_s, sync_source).

    mode/timeout_s: sync arbitration (bridge.sync). bpm/meter: the internal clock's start. specs: the controls
    that exist (bridge.controls.control_specs). presets: names accepted by PresetEvent. relocate_beats: a playing
    source whose position (PositionEvent) differs from what is heard by more than this (exact sources; coarse
    ones 4x) re-anchors the stream; not within ``relocate_every_s`` of a transport change or another re-anchor.
    Smaller errors of exact sources are nudged away (LiveStream.sync). The internal clock states no positions, so
    while it drives, :meth:`tick` checks what is heard against it every ``internal_check_s``: audio delayed by
    an underrun or an xrun comes back onto the grid instead of staying late.
    Hooks the daemon sets: ``broadcast(address, *args)`` (echo to OSC subscribers), ``learn(control, t)``
    (start MIDI learn), ``set_current(name, value)`` (CC pickup), ``render(request)``, ``specs_for(preset)``.
    """

    def __init__(self, live: Any, *, mode: str = "auto", timeout_s: float = 2.0, bpm: float = 128.0,
                 meter: tuple[int, int] = (4, 4), specs: dict[str, ControlSpec] | None = None,
                 presets: Callable[[], Sequence[str]] = tuple, clock: Callable[[], float] = time.monotonic,
                 relocate_beats: float = 0.5, relocate_every_s: float = 4.0):
        self.live, self.clock, self.presets = live, clock, presets
        self.arbiter = SyncArbiter(mode, timeout_s)
        self.transports = {s: Transport(bpm, *meter) for s in SOURCES}
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
        self._last_relocate = -math.inf
        self.internal_check_s = 0.5
        self._last_internal_check = -math.inf
        self._log = RateLimitedLog(logger)
        self.broadcast: Broadcast = lambda *a: None
        self.learn: Callable[[str, float], None] | None = None
        self.set_current: Callable[[str, float], None] = lambda name, value: None
        self.render: Callable[[RenderRequest], None] | None = None
        self.specs_for: Callable[[str], dict[str, ControlSpec]] | None = None
        self.live.sync_source = self.arbiter.current

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
                self.broadcast("/musika/seed", int(event.seed))
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
            if self.learn is None:
                raise _CoreError(f"MIDI learn for {event.control!r} needs MIDI input; it is off (--no-midi)")
            self.learn(event.control, now)
        elif isinstance(event, RenderRequest):
            if self.render is None:
                raise _CoreError("offline rendering is not available in this daemon")
            self.render(event)

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
        """Re-evaluate the sync source; on a change the live stream adopts the new source. Returns changed."""
        now = self.clock() if now is None else now
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
        elif tr.playing or family == "link":
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
            self.live.set_tempo(event.bpm, event.confidence, now=now, beat=beat, at_time=t if tr.playing else None)
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
        elif action == "play":
            self.live.play(beat, at_time=t, now=now)
            self.playing = True
        else:
            self.live.cont(beat, at_time=t, now=now)
            self.playing = True

    def _handover(self, source: str, now: float) -> None:
        tr = self.transports[source]
        if source == "internal":  # fallback: keep whatever plays, free-running at the last tempo
            tr.set_tempo(self.bpm, now)
            if self.playing:
                tr.play(now, self.heard_beat(now))
            else:
                tr.stop(now)
                tr.locate(self.heard_beat(now), now)
            return
        if source in self.tempo_known and tr.bpm != self.bpm:
            self.bpm = tr.bpm
            self.live.set_tempo(tr.bpm, now=now)
        if tr.playing:
            beat = tr.beat_at(now)
            self._last_relocate = now
            (self.live.locate if self.playing else self.live.play)(beat, at_time=now, now=now)
            self.playing = True
        elif self.playing:
            self.live.stop(now=now)
            self.playing = False

    def heard_beat(self, now: float) -> float:
        """The beat the listener hears at ``now`` (play head minus the sink's latency)."""
        return float(self.live.heard_beat(now))

    def _check_phase(self, event: PositionEvent, now: float, hold_s: float | None = None) -> None:
        hold_s = self.relocate_every_s if hold_s is None else hold_s
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
        self.live.set_control(event.name, value, event.quantise, now=now)
        self.controls[event.name] = value
        if event.source != "midi":
            self.set_current(event.name, value)
        if event.source != "osc" and spec.max > spec.min:
            self.broadcast(f"/musika/param/{event.name}", (value - spec.min) / (spec.max - spec.min))

    def _preset(self, event: PresetEvent, now: float) -> None:
        known = list(self.presets())
        if event.name not in known:
            raise _CoreError(f"preset {event.name!r} is not installed; available: {', '.join(known) or 'none'}")
        if self.specs_for is not None:
            self.specs = self.specs_for(event.name)
            self.controls = {n: self.controls.get(n, s.default) for n, s in self.specs.items()
                             if n not in NOT_PARAMS}
        self.live.set_preset(event.name, event.quantise, now=now)
        if event.source != "osc":
            self.broadcast("/musika/preset", event.name)

    def on_learned(self, result: Any) -> None:
        """MIDI learn bound a CC (a bridge.ccmap.LearnResult; called on the loop)."""
        m = result.mapping
        self.learned.append(f"{m.control}=ch{m.channel}/cc{m.cc}")
        self.broadcast("/musika/ack", "/musika/learn", m.control, m.channel, m.cc)

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
            sync_error_ms=round((heard - host) * 60000 / self.bpm, 2) if self.playing and tr.playing else math.nan,
            relocations=self.relocations, bad_input=sum(self.bad_input.values()),
            ignored=sum(self.ignored.values()), learned=",".join(self.learned),
        )
        out.update({f"param_{k}": v for k, v in self.controls.items()})
        out.update(extra or {})
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


class RenderJobs:
    """Offline renders requested over OSC, one at a time in a worker thread, replying to the requester.

    osc: the OscServer (render_progress/render_done/render_error). presets_dirs: extra preset folders. The
    render uses one ONNX thread so the live stream keeps its share of the CPU."""

    def __init__(self, osc: Any, presets_dirs: Sequence[str | Path] = (), threads: int = 1):
        self.osc, self.presets_dirs, self.threads = osc, tuple(presets_dirs), threads
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task] = set()
        self.done = 0
        self.failed = 0

    def submit(self, request: RenderRequest) -> None:
        task = asyncio.get_running_loop().create_task(self._run(request), name="musika-render-job")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, req: RenderRequest) -> None:
        loop = asyncio.get_running_loop()
        to = req.reply_to

        def progress(fraction: float) -> None:
            if to is not None:
                loop.call_soon_threadsafe(self.osc.render_progress, to, fraction)

        async with self._lock:
            try:
                out = await asyncio.to_thread(self._render, req.session_path, req.out_dir, progress)
            except MusikaError as exc:
                self.failed += 1
                logger.warning("render of %s failed: %s", req.session_path, exc)
                if to is not None:
                    self.osc.render_error(to, str(exc))
                return
            except Exception as exc:  # a bug must not take the daemon down; report it to the requester
                self.failed += 1
                logger.exception("render of %s failed", req.session_path)
                if to is not None:
                    self.osc.render_error(to, f"internal error: {type(exc).__name__}: {exc}")
                return
        self.done += 1
        logger.info("render of %s done: %s", req.session_path, out)
        if to is not None:
            self.osc.render_done(to, str(out))

    def _render(self, session_path: str, out_dir: str, progress: Callable[[float], None]) -> Path:
        from generator.render import render_session
        from generator.session import load_session

        session = load_session(session_path)
        stems = max(1, len(session.stems))
        done: dict[str, float] = {}

        def on_stage(stem: str, stage: str, step: int, total: int) -> None:
            done[stem] = step / max(total, 1)
            progress(min(1.0, sum(done.values()) / stems))

        result = render_session(session, out_dir, threads=self.threads, search=self.presets_dirs, progress=on_stage)
        return Path(result.out_dir)

    async def stop(self, timeout: float = 5.0) -> None:
        """Wait up to ``timeout`` s for a running render (the thread cannot be interrupted)."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout)
