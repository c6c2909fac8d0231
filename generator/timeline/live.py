"""The live stream: a render worker that keeps a beat-keyed audio stream filled just ahead of the play head.

Control side (any thread; the daemon's asyncio loop): the methods of :mod:`generator.timeline.live_control` only
queue a request (generator.timeline.requests). The worker thread applies requests (placing each against the real
play head, logging it as a ControlRecord with the beat at which it becomes audible), renders the next piece through
the same planner/renderer as :func:`generator.timeline.stream.render_offline`, and writes it to the ring through a
:class:`~generator.timeline.playout.Playout`. The audio callback only reads the ring. Time arrives as an argument
(`now`, seconds on the daemon's monotonic clock) or from `clock`.

Timing: a run's beat-to-sample map is anchored when its first sample is written, from the real play head (the
device's progress, the queued depth and the sink's latency) at that moment, so a busy worker or the fade of a jump
does not shift it. Changes are placed a safety margin (twice the playing preset's longest recent render,
generator.timeline.render_times) ahead of the play head: bar-bound ones and tempo at the first piece boundary (bar
line, beat) after it, "now" ones and a host's tempo step right there, cutting the piece they fall in short (at least
a tenth of a second ahead). Audio rendered past that point is dropped from the ring and rendered again, as the
offline replay renders it: the look-ahead delays no change. A tempo change follows the host from the beat it is at:
the beats between the change point and the host's grid are played slightly faster or slower (at most 6 %, a few
beats) until they land on the host's beats again; while the host ramps (a tempo request with a slope) the beats
after that are planned one by one along the ramp (generator.timeline.host_line), so what is rendered ahead is heard
where the host plays it. A join (another sync source takes over) and a bar stop wait for their bar line
(generator.timeline.handover).
"""

from __future__ import annotations

import logging
import math
import queue
import time
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from generator.errors import MusikaError
from generator.runtime.engine import Engine
from generator.timeline.control_log import ControlLogWriter, ControlRecord, SessionHeader
from generator.timeline.crossfade import DEFAULT_CROSSFADE_MS, fade_out
from generator.timeline.cursor import RunCursor, host_bpm_at, phase_nudge
from generator.timeline.handover import BarStop, Handover, HostJoin
from generator.timeline.host_line import HostLine, follow
from generator.timeline.live_control import LiveControl
from generator.timeline.planner import OUTPUT_ONLY, Performance, bar_beats, check_bpm
from generator.timeline.playout import Playout
from generator.timeline.render_times import RenderTimes
from generator.timeline.requests import Change, Join, Meter, Request, Tempo, Transport
from generator.timeline.stream import LockSettings, Renderer, resolve_loader
from generator.timeline.telemetry import Telemetry
from generator.timeline.worker import RenderWorker

logger = logging.getLogger(__name__)

RAMP_STEP = 0.01  # a new host tempo within 1 % of the plan's: applied from the render position, not rolled back
GLIDE_TOLERANCE_BPM = 0.02  # while the host ramps, a plan this close to the ramp's tempo is left as it is


class LiveStream(LiveControl, RenderWorker):
    """Bar-keyed live renderer feeding `ring` (an AudioRing: write(), depth_frames, frames_written, flush(),
    disarm(), underruns).

    quantise: default for control/seed/preset changes ("bar", "now", "phrase"). recondition: relative host
    tempo change that re-conditions the model (at the next bar); smaller drifts are absorbed by the stretch.
    min/max_lookahead_s bound the adaptive render-ahead depth; output_latency_s is the sink's latency, added
    to reported latencies and used to key the first sample of a run to the beat it is heard at.
    """

    def __init__(self, engine_or_preset: Engine | str | Path | Callable[[str], Engine], ring: Any,
                 header: SessionHeader, *, log: ControlLogWriter | None = None, quantise: str = "bar",
                 phrase_bars: int = 8, xfade_ms: float = DEFAULT_CROSSFADE_MS, settings: LockSettings | None = None,
                 min_lookahead_s: float = 0.3, max_lookahead_s: float = 4.0, output_latency_s: float = 0.0,
                 recondition: float = 0.02, sync_source: str = "internal",
                 clock: Callable[[], float] = time.monotonic, threads: int | None = None,
                 render_timer: Callable[[], float] = time.perf_counter):
        self.ring, self.header, self.log, self.default_quantise = ring, header, log, quantise
        self.phrase_bars, self.recondition, self.clock = phrase_bars, recondition, clock
        self.render_timer = render_timer  # times each render (the look-ahead and the change margin follow it)
        self.sync_source, self.sr = sync_source, header.sample_rate
        self.min_lookahead_s, self.max_lookahead_s = min_lookahead_s, max_lookahead_s
        self.perf = Performance(header)
        settings = replace(settings or LockSettings(), snap_ms=header.snap_ms)  # the header's snap (replays too)
        self.renderer = Renderer(resolve_loader(engine_or_preset, threads), self.perf.bar, self.sr, xfade_ms,
                                 settings)
        engine = self.renderer.engine(header.preset)  # load now: a bad preset fails at construction
        self.playout = Playout(ring, self.sr, output_latency_s, keep_s=1.0)
        self._requests: queue.Queue[tuple[Request, float]] = queue.Queue()
        self.cur = RunCursor(self.playout, self.renderer.xfade, self.renderer.min_piece,
                             ceiling_dbtp=engine.output.ceiling_dbtp)
        self._stop_silence_until: int | None = None
        self._handover: Handover | None = None  # waiting for its bar line (generator.timeline.handover)
        self._placed: dict[str, tuple[float, Any, Any]] = {}  # each control's last change: beat, request, value
        RenderWorker.__init__(self)
        self.lookahead_s, self.rtf = min_lookahead_s, math.nan
        self.render_times = RenderTimes()  # per preset: the look-ahead and the margin of a change follow them
        self.latencies_ms: deque[float] = deque(maxlen=256)  # arrival -> audible, ms
        self.late_ms: deque[float] = deque(maxlen=256)  # audible - the quantisation target (0 = on time), ms
        self.phase_errors_s: deque[float] = deque(maxlen=512)
        self.stretch, self.errors, self.bpm_confidence = 1.0, 0, 1.0
        self.phase_tolerance_s = 0.002  # sync/set_tempo leave a smaller phase error alone
        self._nudges: list[tuple[float, float, float]] = []  # (from, to, host bpm): beats played nudged
        self._trend: HostLine | None = None  # the last tempo request's: a sync follows its ramp

    @property
    def output_latency_s(self) -> float:
        return self.playout.latency_s

    @output_latency_s.setter
    def output_latency_s(self, value: float) -> None:
        self.playout.latency_s = float(value)

    # ------------------------------------------------------------------------------------------- positions
    @property
    def joining(self) -> bool:
        """A join waits for its bar line: what is heard is not on the new host's grid yet."""
        return isinstance(self._handover, HostJoin)

    def heard_beat(self, now: float | None = None) -> float:
        """The beat the listener hears at host time `now` (sink latency and the device's period included)."""
        run = self.perf.current
        if run is None:
            return self.perf.position
        now = self.clock() if now is None else now
        return self.cur.beat_at(self.playout.index_heard_at(now, now))

    @property
    def clock_drift_s(self) -> float:
        """Seconds the audio device's clock has fallen behind the host clock (0.0 where the sink cannot tell)."""
        return float(getattr(self.ring, "clock_drift_s", 0.0))

    def play_head_beat(self) -> float:
        """Beat of the first sample the reader has not taken (the sink's latency not included)."""
        run = self.perf.current
        if run is None:
            return self.perf.position
        return self.cur.beat_at(max(self.cur.frame0, self.playout.head()))

    def _margin(self, new_epoch: bool, cut: bool = False) -> float:
        """Seconds ahead of the play head a change must be placed so the re-render is done in time."""
        return self.render_times.margin(self.perf.preset, new_epoch, self.min_lookahead_s, cut)

    def _record(self, rec: ControlRecord) -> None:
        self.perf.apply(rec)
        if self.log is not None:
            self.log.write(rec)

    def _apply(self, request: Request, t_req: float, now: float) -> None:
        run = self.perf.current
        if isinstance(request, Tempo | Join) and request.bpm is not None:
            check_bpm(request.bpm)  # refused before anything changes (a NaN kept for a Start left nothing playable)
        match request:
            case Change():
                self._change(request, t_req, now)
            case Tempo() if isinstance(self._handover, HostJoin):  # the host's run is not playing yet
                self._handover = self._handover.retimed(request.bpm, request.beat, request.at_time, t_req)
            case Tempo() if isinstance(self._handover, BarStop) and request.bpm is not None:  # for the host's Start
                self._handover = BarStop(float(request.bpm))
            case Tempo():
                self._tempo(request, t_req=t_req, now=now)
            case Meter():
                self._meter(request, now=now)
            case Join() if run is None:  # nothing plays: an ordinary start at the host's tempo
                self._tempo(Tempo(request.bpm), t_req=t_req, now=now)
                self._apply(Transport("play", request.beat, request.at_time), t_req, now)
            case Join():
                self._handover = HostJoin(request.beat, request.bpm, request.at_time)
            case Transport("stop_bar"):
                if run is not None:
                    self._handover = BarStop()
            case Transport("stop"):
                if run is not None:
                    self._end_run()  # (a handover waits only while a run plays; the run's end clears it)
            case Transport():
                self._start(request, run, t_req, now)

    def _start(self, request: Transport, run: Any, t_req: float, now: float) -> None:
        """play, continue, locate: end what plays, anchor a new run at the host's beat."""
        beat = self.perf.position if request.beat is None else request.beat
        if run is not None:
            self._end_run()
        self.playout.silence(int(max(self.lookahead_s, 0.05) * self.sr))
        # anchor: the run's first sample is the next one written; the host is at `beat` at `at_time`
        heard = self.playout.heard_at(self.playout.end, now)
        at_time = t_req if request.at_time is None else request.at_time
        start = round(float(beat) + (heard - at_time) * self.perf.bpm / 60.0, 9)
        self._record(ControlRecord(start, "transport", "continue" if request.action == "continue" else "play",
                                   start, at=float(beat)))
        self._start_run()

    def _change(self, request: Change, t_req: float, now: float) -> None:
        kind, name, value = request.kind, request.name, request.value
        q = request.quantise or self.default_quantise
        if kind == "preset":
            self.renderer.engine(value)  # load (or fail) before the change is planned
        run = self.perf.current
        glide = value if callable(value) else None  # a function of the host time the change is heard at
        if run is None:
            value = glide(t_req) if glide else value
            self._record(ControlRecord(self.perf.position, kind, name, value, q, at=self.perf.position))
            return
        grid = self.perf.grid
        head = self.play_head_beat()
        ideal = grid.quantise(head, q, head, self.phrase_bars)  # with nothing rendered yet; a bad mode fails here
        margin = self._margin(name not in OUTPUT_ONLY, cut=q == "now")
        beat = (self.cur.soonest(margin) if q == "now"
                else grid.quantise(head, q, self.cur.earliest(margin), self.phrase_bars))
        value = float(glide(self.cur.heard(beat, now))) if glide else value
        last = self._placed.get(name)  # nothing to render again for the same change at its beat, or a later no-op
        if last is not None and ((last[:2] == (beat, glide or value)) or (beat >= last[0] and last[2] == value)):
            return
        if not self.cur.rollback(beat):
            beat = grid.quantise(head, q, self.cur.beat, self.phrase_bars)
            value = float(glide(self.cur.heard(beat, now))) if glide else value
        self._placed[name] = (beat, glide or value, value)
        self._record(ControlRecord(beat, kind, name, value, q, at=round(head, 6)))
        self.late_ms.append((run.tempo.sample_at(beat) - run.tempo.sample_at(ideal)) / self.sr * 1000)
        self.latencies_ms.append((self.cur.heard(beat, now) - t_req) * 1000)

    def _tempo(self, request: Tempo, *, t_req: float, now: float) -> None:
        bpm, confidence, host_beat, host_time = request.bpm, request.confidence, request.beat, request.at_time
        if confidence is not None:
            self.bpm_confidence = float(confidence)
        run = self.perf.current
        new_tempo = bpm is not None and float(bpm) != self.perf.bpm
        if run is None:
            if new_tempo:
                self._record(ControlRecord(self.perf.position, "tempo", "bpm", float(bpm)))
            return
        head = self.play_head_beat()
        t_a = t_req if host_time is None else float(host_time)
        b_a = self.cur.beat_at(self.playout.index_heard_at(t_a, now)) if host_beat is None else float(host_beat)
        line = follow(self._trend, t_a, b_a, request.bpm, request.slope, self.perf.bpm)
        self._trend = line if request.bpm is not None else self._trend
        host, bpm, gliding = line.time_of, line.bpm, line.gliding
        cond = self.perf.controls.get("tempo", bpm)
        recondition = abs(bpm - cond) > self.recondition * cond
        # a host's tempo step: caught up from the soonest point, inside a beat (not a beat more at the old tempo)
        step = new_tempo and abs(float(bpm) - run.tempo.bpm_at(self.cur.beat)) > RAMP_STEP * float(bpm)
        c0 = self.cur.soonest(self._margin(False, cut=True)) if step else self.cur.earliest(self._margin(False))
        cx = max(c0, run.tempo.changes[-1][0])  # where the tempo plan in force settles
        off_tempo = abs(run.tempo.bpm_at(cx) - line.bpm_at(host(cx)))
        if (not recondition and off_tempo <= (GLIDE_TOLERANCE_BPM if gliding else 0.0)
                and abs(self.cur.heard(cx, now) - host(cx)) <= self.phase_tolerance_s):
            return  # already on (or on the way to) the host's grid at this tempo
        if (new_tempo or gliding) and abs(bpm - run.tempo.bpm_at(cx)) <= RAMP_STEP * bpm:
            # a step of a ramp: what is rendered plays on and the change starts where rendering is; rolling back and
            # re-rendering the look-ahead at every step of a ramp (a Link peer's: one every 0.4 s) ran dry
            c0 = max(c0, self.cur.beat)
        bar = self.perf.grid.quantise(head, "bar", max(c0, self.cur.earliest(self._margin(True))))
        # a host tempo change is caught up with quickly; a drift (sync: no new tempo) over at least a bar
        c1, nudge = phase_nudge(c0, self.cur.heard(c0, now), host, line.bpm_at(host(c0)),
                                max_beats=int(math.ceil(2 * self.perf.bar)),
                                min_beats=1 if new_tempo or gliding else max(1, int(self.perf.bar)))
        if not self.cur.rollback(c0):
            c0 = c1 = self.cur.beat
            bar = self.perf.grid.quantise(head, "bar", c0)
        plan = line.beat_tempos(c1)  # from c1 on: the host's tempo, beat by beat while it ramps
        # planned nudges from c0 on are replaced (the records below replace the tempo changes after c0 too)
        self._nudges = [(a, min(b, c0), v) for a, b, v in self._nudges if a < c0]
        if c1 > c0:
            self._nudges.append((c0, c1, plan[0][1]))
            self._record(ControlRecord(c0, "tempo", "bpm", nudge, None, at=round(head, 6)))
        for beat, tempo in plan:
            self._record(ControlRecord(beat, "tempo", "bpm", tempo, None, at=round(head, 6)))
        if recondition:
            self._record(ControlRecord(bar, "control", "tempo", bpm, "bar", at=round(head, 6)))

    def _meter(self, request: Meter, now: float) -> None:
        numerator, denominator = request.numerator, request.denominator
        bar_beats((numerator, denominator))  # a bad meter fails here, before anything changes
        run = self.perf.current
        if run is None:
            self._record(ControlRecord(self.perf.position, "tempo", "meter", [numerator, denominator]))
            return
        head = self.play_head_beat()
        beat = self.perf.grid.quantise(head, "bar", self.cur.earliest(self._margin(True)))
        if not self.cur.rollback(beat):
            beat = self.perf.grid.quantise(head, "bar", self.cur.beat)
        self._record(ControlRecord(beat, "tempo", "meter", [numerator, denominator], "bar", at=round(head, 6)))

    def _start_run(self, tail: np.ndarray | None = None) -> None:
        run = self.perf.current
        self.cur.start(run, tail)
        self._nudges, self._placed = [], {}
        self._trend = None
        self._stop_silence_until = None

    def _hand_over(self, now: float) -> None:
        """Carry out the waiting handover once its bar line is rendered (else the run plays on towards it)."""
        h, xf = self._handover, self.renderer.xfade
        lim = self.playout.head() + self._margin(True) * self.sr + xf  # the new run renders in time from here
        if isinstance(h, HostJoin):
            line, t_line = h.first_line(self.perf.grid, self.playout.heard_at(lim, now))
            x = int(round(self.playout.index_heard_at(t_line, now)))
            cut = self.cur.beat_at(x)
        else:
            cut = h.first_line(self.perf.grid, self.cur.beat_at(lim))
            x = self.cur.index(cut)
        if x > self.playout.end or not self.cur.rollback(cut):
            return  # not rendered that far yet, or the reader got there first: placed again at the next step
        if isinstance(h, BarStop):
            self._finish_run(self.cur.joiner.tail, cut)
            return
        self._handover = None
        tail, head = self.cur.joiner.tail, round(self.play_head_beat(), 6)
        if h.bpm != self.perf.bpm:
            self._record(ControlRecord(cut, "tempo", "bpm", h.bpm, at=head))
        self._record(ControlRecord(cut, "transport", "locate", line, at=head))
        self.renderer.release(())
        self._start_run(tail)

    def _end_run(self) -> None:
        """Fade out from the play head, drop the rest, log a stop where the audio ended (a jump is logged as
        stop + play, which render_offline replays the same way)."""
        xf = self.renderer.xfade
        head = self.playout.head()
        ahead = self.playout.slice(head, self.playout.end)
        tail = self.cur.joiner.tail
        parts = [p for p in (ahead, tail) if p is not None]
        raw = np.concatenate(parts, axis=1) if parts else np.zeros((2, 0), np.float32)
        first = self.playout.rewind(None)  # the reader may have moved on since `head`
        seg = raw[:, first - head : first - head + xf]
        self._finish_run(seg, self.cur.beat_at(first + seg.shape[1]))

    def _finish_run(self, seg: np.ndarray | None, beat: float) -> None:
        """Write `seg` (the run's last samples) faded out, then a little silence; log the stop at `beat`."""
        if seg is not None:
            self.playout.write(fade_out(seg))
        pad = int(0.1 * self.sr)
        self.playout.silence(pad)
        self._stop_silence_until = self.playout.end - pad // 2
        self._record(ControlRecord(beat, "transport", "stop"))
        h, self._handover = self._handover, None
        if isinstance(h, BarStop) and h.bpm is not None and h.bpm != self.perf.bpm:  # the stopped host's tempo
            self._record(ControlRecord(self.perf.position, "tempo", "bpm", h.bpm))
        self.cur.joiner.reset()
        self.renderer.release(())

    def step(self, now: float | None = None) -> bool:
        """One unit of work at host time `now` (default: the clock): apply queued requests, then render one piece
        if the stream is below the look-ahead. Returns True when it rendered (call again soon), False when idle."""
        now = self.clock() if now is None else now
        self.playout.observe(now)
        while True:
            try:
                request, t = self._requests.get_nowait()
            except queue.Empty:
                break
            try:
                self._apply(request, t, now)
            except MusikaError as exc:
                self.errors += 1
                logger.warning("ignored %s: %s", request, exc)
        if self._handover is not None:  # set only while a run plays
            self._hand_over(now)
        run = self.perf.current
        head = self.playout.head()
        if run is None:
            if self._stop_silence_until is not None and head >= self._stop_silence_until:
                self.ring.disarm()
                self._stop_silence_until = None
            return False
        if self.playout.end - head >= self.lookahead_s * self.sr:
            return False
        run_id = len(self.perf.runs) - 1
        piece = next(iter(self.renderer.pieces(run, self.cur.beat, self.cur.beat + 2 * self.perf.bar)))
        fresh = not self.renderer.has_source(run_id, piece.epoch)
        t0 = self.render_timer()
        res = self.renderer.render(run_id, piece)
        dt = self.render_timer() - t0
        self.cur.push(piece, res.audio)
        dur = (piece.s1 - piece.s0) / self.sr
        self.render_times.add(piece.epoch.preset, dt, fresh)
        self.rtf = dt / dur if math.isnan(self.rtf) else 0.8 * self.rtf + 0.2 * dt / dur
        worst = self.render_times.worst()  # of any preset played lately: a switch back finds the ring full enough
        self.lookahead_s = min(self.max_lookahead_s, max(self.min_lookahead_s, 2.0 * worst + 0.1))
        self.stretch = res.stretch
        self.phase_errors_s.extend(float(x) for x in res.phase_errors_s if np.isfinite(x))
        hb = self.play_head_beat()
        self.renderer.release({(run_id, e) for e in run.epochs if e.start_beat > hb} | {(run_id, run.epoch_at(hb))})
        return True

    # ------------------------------------------------------------------------------------------- telemetry
    def telemetry(self) -> Telemetry:
        run = self.perf.current
        beat = self.play_head_beat()
        ph = list(self.phase_errors_s)[-16:]
        return Telemetry(
            state="playing" if run is not None else "stopped",
            bpm=host_bpm_at(self._nudges, beat, run.tempo.bpm_at(beat)) if run is not None else self.perf.bpm,
            bpm_confidence=self.bpm_confidence, sync_source=self.sync_source,
            bar=self.perf.grid.index(beat), beat=beat - self.perf.grid.floor(beat),
            buffer_ms=self.ring.depth_frames / self.sr * 1000, lookahead_ms=self.lookahead_s * 1000,
            rtf=self.rtf, underruns=int(self.ring.underruns),
            latency_ms=self.latencies_ms[-1] if self.latencies_ms else math.nan,
            phase_error_ms=float(np.median(ph)) * 1000 if ph else math.nan,
            preset=self.perf.preset, seed=self.perf.seed,
            cond_bpm=float(self.perf.controls.get("tempo", math.nan)), stretch=self.stretch,
        )
