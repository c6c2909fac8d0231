"""The live stream: a render worker that keeps a beat-keyed audio stream filled just ahead of the play head.

Control side (any thread; the daemon's asyncio loop): :meth:`LiveStream.play`, ``stop``, ``cont``, ``locate``,
``set_tempo``, ``set_meter``, ``set_control``, ``set_seed``, ``set_preset`` only queue a request. The worker thread
applies requests (placing each against the real play head, logging it as a ControlRecord with the beat at which it
becomes audible), renders the next piece through the same planner/renderer as
:func:`generator.stream.render_offline`, and writes it to the ring through a :class:`~generator.playout.Playout`.
The audio callback only reads the ring. Time arrives as an argument (`now`, seconds on the daemon's monotonic
clock) or from `clock`.

Timing: a run's beat-to-sample map is anchored when its first sample is written, from the real play head (what
the reader has taken, the queued depth and the sink's latency) at that moment, so a busy worker or the fade of a
jump does not shift it. Changes (controls, tempo, meter) are placed at the first piece boundary that is still at
least a safety margin (twice the measured render time of a piece) ahead of the play head; audio rendered past it
is dropped from the ring and rendered again, exactly as the offline replay renders it. A tempo change follows the
host from the beat it is at: the beats between the change point and the host's grid are played slightly faster or
slower (at most 6 %, a few beats) until they land on the host's beats again.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from generator.control_log import ControlLogWriter, ControlRecord, SessionHeader
from generator.crossfade import DEFAULT_CROSSFADE_MS, Joiner, fade_out
from generator.engine import Engine
from generator.errors import MusikaError
from generator.planner import EPS, OUTPUT_ONLY, Performance, bar_beats, phase_nudge
from generator.playout import Playout
from generator.stream import LockSettings, Renderer, resolve_loader
from generator.telemetry import Telemetry

logger = logging.getLogger(__name__)


class LiveStream:
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
                 clock: Callable[[], float] = time.monotonic, threads: int | None = None):
        self.ring, self.header, self.log, self.default_quantise = ring, header, log, quantise
        self.phrase_bars, self.recondition, self.clock = phrase_bars, recondition, clock
        self.sync_source = sync_source
        self.min_lookahead_s, self.max_lookahead_s = min_lookahead_s, max_lookahead_s
        self.sr = header.sample_rate
        self.perf = Performance(header)
        self.renderer = Renderer(resolve_loader(engine_or_preset, threads), self.perf.bar, self.sr, xfade_ms,
                                 settings)
        self.renderer.engine(header.preset)  # load now: a bad preset fails at construction
        self.playout = Playout(ring, self.sr, output_latency_s, keep_s=1.0)
        self._requests: queue.Queue[tuple[str, tuple, float]] = queue.Queue()
        self._joiner = Joiner(self.renderer.xfade)
        self._frame0 = 0  # stream index of run sample 0
        self._render_beat = 0.0
        # piece boundaries rendered: (beat, the joiner's tail there, hard: not a piece cut short by a change)
        self._ends: deque[tuple[float, np.ndarray | None, bool]] = deque()
        self._stop_silence_until: int | None = None
        self._thread: threading.Thread | None = None
        self._running = threading.Event()
        self.lookahead_s = min_lookahead_s
        self.rtf = math.nan
        self._piece_times: deque[float] = deque(maxlen=16)  # render s of a piece of an epoch already running
        self._epoch_times: deque[float] = deque(maxlen=8)  # render s of an epoch's first piece
        self.latencies_ms: deque[float] = deque(maxlen=256)  # arrival -> audible, ms
        self.late_ms: deque[float] = deque(maxlen=256)  # audible - the quantisation target (0 = on time), ms
        self.phase_errors_s: deque[float] = deque(maxlen=512)
        self.stretch = 1.0
        self.errors = 0
        self.bpm_confidence = 1.0

    @property
    def output_latency_s(self) -> float:
        return self.playout.latency_s

    @output_latency_s.setter
    def output_latency_s(self, value: float) -> None:
        self.playout.latency_s = float(value)

    # ---------------------------------------------------------------------------------------- control side
    def _put(self, kind: str, *args: Any, now: float | None = None) -> None:
        self._requests.put((kind, args, self.clock() if now is None else now))

    def play(self, beat: float = 0.0, at_time: float | None = None, now: float | None = None) -> None:
        """Host started at `beat` at host time `at_time` (default: now)."""
        self._put("play", beat, at_time, now=now)

    def cont(self, beat: float | None = None, at_time: float | None = None, now: float | None = None) -> None:
        self._put("continue", beat, at_time, now=now)

    def stop(self, now: float | None = None) -> None:
        self._put("stop", now=now)

    def locate(self, beat: float, at_time: float | None = None, now: float | None = None) -> None:
        """Host jumped (loop, SPP, Link beat discontinuity): fade, re-anchor at `beat` (at host time `at_time`)."""
        self._put("locate", beat, at_time, now=now)

    def set_tempo(self, bpm: float, confidence: float = 1.0, now: float | None = None, beat: float | None = None,
                  at_time: float | None = None) -> None:
        """Host tempo is `bpm` from host beat `beat` at host time `at_time` on (default: from the beat heard now)."""
        self._put("tempo", bpm, confidence, beat, at_time, now=now)

    def set_meter(self, numerator: int, denominator: int, now: float | None = None) -> None:
        """Host meter changes at the next bar line that can still be rendered."""
        self._put("meter", int(numerator), int(denominator), now=now)

    def set_control(self, name: str, value: float, quantise: str | None = None, now: float | None = None) -> None:
        self._put("control", name, value, quantise, now=now)

    def set_seed(self, seed: int, quantise: str | None = None, now: float | None = None) -> None:
        self._put("seed", "seed", int(seed), quantise, now=now)

    def set_preset(self, name: str, quantise: str | None = None, now: float | None = None) -> None:
        self._put("preset", "preset", str(name), quantise, now=now)

    # ------------------------------------------------------------------------------------------- positions
    def play_head_beat(self) -> float:
        """Beat of the first sample the reader has not taken (the sink's latency not included)."""
        run = self.perf.current
        if run is None:
            return self.perf.position
        return run.tempo.beat_at(max(0, self.playout.head() - self._frame0))

    def _index(self, beat: float, tail: np.ndarray | None) -> int:
        """Stream index where audio from piece boundary `beat` on starts: its crossfade lead-in, when it has one
        (`tail` is the joiner's tail there; None at the run's start)."""
        lead = 0 if tail is None else self.renderer.xfade
        return self._frame0 + self.perf.current.tempo.sample_at(beat) - lead

    def _heard(self, beat: float, now: float) -> float:
        return self.playout.heard_at(self._frame0 + self.perf.current.tempo.sample_at(beat), now)

    def _margin(self, new_epoch: bool) -> float:
        """Seconds ahead of the play head a change must be placed so the re-render is done in time."""
        times = [*self._piece_times, *(self._epoch_times if new_epoch else ())]
        return (2.0 * max(times) if times else self.min_lookahead_s) + 0.02

    def _earliest(self, margin_s: float) -> float:
        """The first hard piece boundary (bar line, beat, tempo change) whose audio starts at least `margin_s`
        after the play head (else the render position): the earliest beat a bar-bound change can start at."""
        lim = self.playout.head() + margin_s * self.sr
        for beat, tail, hard in self._ends:
            if hard and self._index(beat, tail) >= lim:
                return beat
        return self._render_beat

    def _soonest(self, margin_s: float) -> float:
        """The earliest beat a "now" change can start at: its crossfade begins `margin_s` after the play head. It
        cuts the piece it falls in short, at least a minimum piece away from that piece's ends."""
        tempo, mn = self.perf.current.tempo, self.renderer.min_piece
        c = round(tempo.beat_at(self.playout.head() + margin_s * self.sr + self.renderer.xfade - self._frame0), 6)
        if c >= self._render_beat - EPS:
            return self._render_beat
        b = [e[0] for e in self._ends if e[0] <= c + EPS][-1]
        e = [e[0] for e in self._ends if e[0] > c + EPS][0]
        if tempo.sample_at(c) - tempo.sample_at(b) < mn:
            c = round(tempo.beat_at(tempo.sample_at(b) + mn + 1), 6)
        return e if tempo.sample_at(e) - tempo.sample_at(c) < mn else c

    def _rollback(self, beat: float) -> bool:
        """Render again from `beat` on (if it is before the render position): from that piece boundary, or by
        cutting the piece it falls in short there. False when the reader got there first (nothing changed)."""
        if beat >= self._render_beat - EPS:
            return True
        keep = [e for e in self._ends if e[0] <= beat + EPS]
        if not keep:
            return False
        b, tail, hard = keep[-1]
        x = self._index(b, tail)
        if abs(b - beat) > EPS:  # inside the piece [b, ...): its audio up to `beat` stays, its tail is the join
            b, hard = beat, False
            x = self._frame0 + self.perf.current.tempo.sample_at(beat) - self.renderer.xfade
            tail = self.playout.slice(x, x + self.renderer.xfade)
            if tail is None:
                return False
        if self.playout.rewind(x) != x:
            return False
        while self._ends and self._ends[-1][0] > b - EPS:
            self._ends.pop()
        self._ends.append((b, tail, hard))
        self._joiner.restore(tail)
        self._render_beat = b
        return True

    # ------------------------------------------------------------------------------------------- worker
    def _record(self, rec: ControlRecord) -> None:
        self.perf.apply(rec)
        if self.log is not None:
            self.log.write(rec)

    def _apply(self, kind: str, args: tuple, t_req: float, now: float) -> None:
        run = self.perf.current
        if kind in ("control", "seed", "preset"):
            self._change(kind, args, t_req, now)
        elif kind == "tempo":
            self._tempo(*args, t_req=t_req, now=now)
        elif kind == "meter":
            self._meter(*args, now=now)
        elif kind in ("play", "continue", "locate"):
            beat, at_time = args
            if beat is None:
                beat = self.perf.position
            if run is not None:
                self._end_run()
            self.playout.silence(int(max(self.lookahead_s, 0.05) * self.sr))
            # anchor: the run's first sample is the next one written; the host is at `beat` at `at_time`
            heard = self.playout.heard_at(self.playout.end, now)
            start = round(float(beat) + (heard - (t_req if at_time is None else at_time)) * self.perf.bpm / 60.0, 9)
            self._record(ControlRecord(start, "transport", "play" if kind != "continue" else "continue",
                                       start, at=float(beat)))
            self._start_run()
        elif kind == "stop":
            if run is not None:
                self._end_run()

    def _change(self, kind: str, args: tuple, t_req: float, now: float) -> None:
        name, value, q = args
        q = q or self.default_quantise
        if kind == "preset":
            self.renderer.engine(value)  # load (or fail) before the change is planned
        run = self.perf.current
        if run is None:
            self._record(ControlRecord(self.perf.position, kind, name, value, q, at=self.perf.position))
            return
        grid = self.perf.grid
        head = self.play_head_beat()
        ideal = grid.quantise(head, q, head, self.phrase_bars)  # with nothing rendered yet; a bad mode fails here
        margin = self._margin(name not in OUTPUT_ONLY)
        beat = self._soonest(margin) if q == "now" else grid.quantise(head, q, self._earliest(margin), self.phrase_bars)
        if not self._rollback(beat):
            beat = grid.quantise(head, q, self._render_beat, self.phrase_bars)
        self._record(ControlRecord(beat, kind, name, value, q, at=round(head, 6)))
        self.late_ms.append((run.tempo.sample_at(beat) - run.tempo.sample_at(ideal)) / self.sr * 1000)
        self.latencies_ms.append((self._heard(beat, now) - t_req) * 1000)

    def _tempo(self, bpm: float, confidence: float, host_beat: float | None, host_time: float | None, *,
               t_req: float, now: float) -> None:
        bpm, self.bpm_confidence = float(bpm), float(confidence)
        run = self.perf.current
        if run is None:
            self._record(ControlRecord(self.perf.position, "tempo", "bpm", bpm))
            return
        head = self.play_head_beat()
        c0 = self._earliest(self._margin(False))
        bar = self.perf.grid.quantise(head, "bar", max(c0, self._earliest(self._margin(True))))
        t_a = t_req if host_time is None else float(host_time)
        b_a = (run.tempo.beat_at(self.playout.index_heard_at(t_a, now) - self._frame0) if host_beat is None
               else float(host_beat))
        c1, nudge = phase_nudge(c0, self._heard(c0, now), lambda b: t_a + (b - b_a) * 60.0 / bpm, bpm,
                                max_beats=int(math.ceil(2 * self.perf.bar)))
        cond = self.perf.controls.get("tempo", bpm)
        recondition = abs(bpm - cond) > self.recondition * cond
        if c1 == c0 and not recondition and run.tempo.bpm_at(c0) == bpm and not run.tempo.change_beats(c0, math.inf):
            return  # already playing this tempo on the host's grid
        if not self._rollback(c0):
            c0 = c1 = self._render_beat
            bar = self.perf.grid.quantise(head, "bar", c0)
        if c1 > c0:
            self._record(ControlRecord(c0, "tempo", "bpm", nudge, None, at=round(head, 6)))
        self._record(ControlRecord(c1, "tempo", "bpm", bpm, None, at=round(head, 6)))
        if recondition:
            self._record(ControlRecord(bar, "control", "tempo", bpm, "bar", at=round(head, 6)))

    def _meter(self, numerator: int, denominator: int, now: float) -> None:
        bar_beats((numerator, denominator))  # a bad meter fails here, before anything changes
        run = self.perf.current
        if run is None:
            self._record(ControlRecord(self.perf.position, "tempo", "meter", [numerator, denominator]))
            return
        head = self.play_head_beat()
        beat = self.perf.grid.quantise(head, "bar", self._earliest(self._margin(True)))
        if not self._rollback(beat):
            beat = self.perf.grid.quantise(head, "bar", self._render_beat)
        self._record(ControlRecord(beat, "tempo", "meter", [numerator, denominator], "bar", at=round(head, 6)))

    def _start_run(self) -> None:
        run = self.perf.current
        self._joiner.reset()
        self._frame0 = self.playout.end
        self._render_beat = run.start_beat
        self._ends = deque([(run.start_beat, None, True)])
        self._stop_silence_until = None

    def _end_run(self) -> None:
        """Fade out from the play head, drop the rest, log a stop where the audio ended (a jump is logged as
        stop + play, which render_offline replays the same way)."""
        run = self.perf.current
        xf = self.renderer.xfade
        head = self.playout.head()
        ahead = self.playout.slice(head, self.playout.end)
        tail = self._joiner.tail
        parts = [p for p in (ahead, tail) if p is not None]
        raw = np.concatenate(parts, axis=1) if parts else np.zeros((2, 0), np.float32)
        first = self.playout.rewind(None)  # the reader may have moved on since `head`
        seg = raw[:, first - head : first - head + xf]
        self.playout.write(fade_out(seg))
        pad = int(0.1 * self.sr)
        self.playout.silence(pad)
        self._stop_silence_until = self.playout.end - pad // 2
        self._record(ControlRecord(run.tempo.beat_at(first + seg.shape[1] - self._frame0), "transport", "stop"))
        self._joiner.reset()
        self.renderer.release(())

    def step(self, now: float | None = None) -> bool:
        """One unit of work at host time `now` (default: the clock): apply queued requests, then render one piece
        if the stream is below the look-ahead. Returns True when it rendered (call again soon), False when idle."""
        now = self.clock() if now is None else now
        self.playout.observe(now)
        while True:
            try:
                kind, args, t = self._requests.get_nowait()
            except queue.Empty:
                break
            try:
                self._apply(kind, args, t, now)
            except MusikaError as exc:
                self.errors += 1
                logger.warning("ignored %s request %s: %s", kind, args, exc)
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
        piece = next(iter(self.renderer.pieces(run, self._render_beat, self._render_beat + 2 * self.perf.bar)))
        fresh = not self.renderer.has_source(run_id, piece.epoch)
        t0 = time.perf_counter()
        res = self.renderer.render(run_id, piece)
        dt = time.perf_counter() - t0
        self.playout.write(self._joiner.push(res.audio))
        self._render_beat = piece.end
        self._ends.append((piece.end, self._joiner.tail, not piece.cut_short))
        while len(self._ends) > 2 and self._index(*self._ends[1][:2]) < head:
            self._ends.popleft()
        dur = (piece.s1 - piece.s0) / self.sr
        (self._epoch_times if fresh else self._piece_times).append(dt)
        self.rtf = dt / dur if math.isnan(self.rtf) else 0.8 * self.rtf + 0.2 * dt / dur
        worst = max([*self._piece_times, *self._epoch_times])
        self.lookahead_s = min(self.max_lookahead_s, max(self.min_lookahead_s, 2.0 * worst + 0.1))
        self.stretch = res.stretch
        self.phase_errors_s.extend(float(x) for x in res.phase_errors_s if np.isfinite(x))
        hb = self.play_head_beat()
        self.renderer.release({(run_id, e) for e in run.epochs if e.start_beat > hb} | {(run_id, run.epoch_at(hb))})
        return True

    # ------------------------------------------------------------------------------------------- thread
    def start(self) -> None:
        """Start the render worker thread."""
        if self._thread is not None:
            return
        self._running.set()
        self._thread = threading.Thread(target=self._loop, name="musika-render", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while self._running.is_set():
            try:
                busy = self.step()
            except Exception:  # keep the daemon alive; the error is in the log and telemetry
                self.errors += 1
                logger.exception("render worker error")
                busy = False
                time.sleep(0.05)
            if not busy:
                time.sleep(0.005)

    def close(self, timeout: float = 5.0) -> None:
        """Stop the worker thread (the ring keeps what was written)."""
        self._running.clear()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    # ------------------------------------------------------------------------------------------- telemetry
    def telemetry(self) -> Telemetry:
        run = self.perf.current
        beat = self.play_head_beat()
        ph = list(self.phase_errors_s)[-16:]
        return Telemetry(
            state="playing" if run is not None else "stopped",
            bpm=run.tempo.bpm_at(beat) if run is not None else self.perf.bpm,
            bpm_confidence=self.bpm_confidence, sync_source=self.sync_source,
            bar=self.perf.grid.index(beat), beat=beat - self.perf.grid.floor(beat),
            buffer_ms=self.ring.depth_frames / self.sr * 1000, lookahead_ms=self.lookahead_s * 1000,
            rtf=self.rtf, underruns=int(self.ring.underruns),
            latency_ms=self.latencies_ms[-1] if self.latencies_ms else math.nan,
            phase_error_ms=float(np.median(ph)) * 1000 if ph else math.nan,
            preset=self.perf.preset, seed=self.perf.seed,
            cond_bpm=float(self.perf.controls.get("tempo", math.nan)), stretch=self.stretch,
        )
