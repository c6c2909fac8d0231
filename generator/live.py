"""The live stream: a render worker that keeps a beat-keyed audio ring filled just ahead of the play head.

Control side (any thread; the daemon's asyncio loop): :meth:`LiveStream.play`, ``stop``, ``cont``, ``locate``,
``set_tempo``, ``set_control``, ``set_seed``, ``set_preset`` only queue a request. The worker thread applies
requests (quantising them against what is already rendered, logging each as a ControlRecord with the beat at
which it becomes audible), renders the next piece through the same planner/renderer as
:func:`generator.stream.render_offline`, and writes it to the ring. The audio callback only reads the ring.
Time arrives as an argument (`now`, seconds on the daemon's monotonic clock) or from `clock`.
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
from generator.planner import Performance, quantise
from generator.stream import LockSettings, Renderer, resolve_loader
from generator.telemetry import Telemetry

logger = logging.getLogger(__name__)


class LiveStream:
    """Bar-keyed live renderer feeding `ring` (an AudioRing: write(), depth_frames, frames_read, flushed_frames,
    flush(), disarm(), underruns).

    quantise: default for control/seed/preset changes ("bar", "now", "phrase"). recondition: relative host
    tempo change that re-conditions the model (at the next bar); smaller drifts are absorbed by the stretch.
    min/max_lookahead_s bound the adaptive render-ahead depth; output_latency_s is the sink's latency, added
    to reported latencies and used to key the first block of a run to the beat it is heard at.
    """

    def __init__(self, engine_or_preset: Engine | str | Path | Callable[[str], Engine], ring: Any,
                 header: SessionHeader, *, log: ControlLogWriter | None = None, quantise: str = "bar",
                 phrase_bars: int = 8, xfade_ms: float = DEFAULT_CROSSFADE_MS, settings: LockSettings | None = None,
                 min_lookahead_s: float = 0.3, max_lookahead_s: float = 4.0, output_latency_s: float = 0.0,
                 recondition: float = 0.02, sync_source: str = "internal",
                 clock: Callable[[], float] = time.monotonic, threads: int | None = None):
        self.ring, self.header, self.log, self.default_quantise = ring, header, log, quantise
        self.phrase_bars, self.recondition, self.clock = phrase_bars, recondition, clock
        self.output_latency_s, self.sync_source = output_latency_s, sync_source
        self.min_lookahead_s, self.max_lookahead_s = min_lookahead_s, max_lookahead_s
        self.sr = header.sample_rate
        self.perf = Performance(header)
        self.renderer = Renderer(resolve_loader(engine_or_preset, threads), self.perf.bar, self.sr, xfade_ms,
                                 settings)
        self.renderer.engine(header.preset)  # load now: a bad preset fails at construction
        self._requests: queue.Queue[tuple[str, tuple, float]] = queue.Queue()
        self._history: deque[tuple[int, np.ndarray]] = deque()  # (written index, block) of the last second
        self._joiner = Joiner(self.renderer.xfade)
        self._run_frame0 = 0  # written-frame index of run sample 0
        self._render_beat = 0.0
        self._render_sample = 0
        self._stop_silence_until: int | None = None
        self._thread: threading.Thread | None = None
        self._running = threading.Event()
        self.lookahead_s = min_lookahead_s
        self.rtf = math.nan
        self._render_times: deque[float] = deque(maxlen=16)
        self.latencies_ms: deque[float] = deque(maxlen=256)  # arrival -> audible, ms
        self.late_ms: deque[float] = deque(maxlen=256)  # audible - the quantisation target (0 = on time), ms
        self.phase_errors_s: deque[float] = deque(maxlen=512)
        self.stretch = 1.0
        self.errors = 0
        self.bpm_confidence = 1.0

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
        """Host jumped (loop, SPP, Link beat discontinuity): flush, fade, re-anchor at `beat`."""
        self._put("locate", beat, at_time, now=now)

    def set_tempo(self, bpm: float, confidence: float = 1.0, now: float | None = None) -> None:
        self._put("tempo", bpm, confidence, now=now)

    def set_control(self, name: str, value: float, quantise: str | None = None, now: float | None = None) -> None:
        self._put("control", name, value, quantise, now=now)

    def set_seed(self, seed: int, quantise: str | None = None, now: float | None = None) -> None:
        self._put("seed", "seed", int(seed), quantise, now=now)

    def set_preset(self, name: str, quantise: str | None = None, now: float | None = None) -> None:
        self._put("preset", "preset", str(name), quantise, now=now)

    # ------------------------------------------------------------------------------------------- positions
    def _played_index(self) -> int:
        return int(self.ring.frames_read + self.ring.flushed_frames)

    def play_head_beat(self) -> float:
        run = self.perf.current
        if run is None:
            return self.perf.position
        return run.tempo.beat_at(max(0, self._played_index() - self._run_frame0))

    # ------------------------------------------------------------------------------------------- worker
    def _record(self, rec: ControlRecord) -> None:
        self.perf.apply(rec)
        if self.log is not None:
            self.log.write(rec)

    def _apply(self, kind: str, args: tuple, now: float) -> None:
        run = self.perf.current
        head = self.play_head_beat()
        if kind in ("control", "seed", "preset"):
            name, value, q = args
            q = q or self.default_quantise
            if kind == "preset":
                self.renderer.engine(value)  # load (or fail) before the change is planned
            if run is None:
                self._record(ControlRecord(self.perf.position, kind, name, value, q, at=self.perf.position))
                return
            beat = quantise(head, q, self.perf.bar, self._render_beat, self.phrase_bars)
            self._record(ControlRecord(beat, kind, name, value, q, at=round(head, 6)))
            ideal = quantise(head, q, self.perf.bar, head, self.phrase_bars)  # with nothing rendered yet
            self.late_ms.append((run.tempo.sample_at(beat) - run.tempo.sample_at(ideal)) / self.sr * 1000)
            self.latencies_ms.append(
                (run.tempo.sample_at(beat) - (self._played_index() - self._run_frame0)) / self.sr * 1000
                + self.output_latency_s * 1000
            )
        elif kind == "tempo":
            bpm, self.bpm_confidence = float(args[0]), float(args[1])
            if run is None:
                self._record(ControlRecord(self.perf.position, "tempo", "bpm", bpm))
                return
            beat = math.ceil(self._render_beat - 1e-9)
            self._record(ControlRecord(beat, "tempo", "bpm", bpm, None, at=round(head, 6)))
            cond = self.perf.controls.get("tempo", bpm)
            if abs(bpm - cond) > self.recondition * cond:
                bar = quantise(head, "bar", self.perf.bar, self._render_beat)
                self._record(ControlRecord(bar, "control", "tempo", bpm, "bar", at=round(head, 6)))
        elif kind in ("play", "continue", "locate"):
            beat, at_time = args
            if beat is None:
                beat = self.perf.position
            if run is not None:
                self._end_run()
            bpm = self.perf.bpm
            prep = max(self.lookahead_s, 0.05)
            heard = now + prep + self.output_latency_s
            start = float(beat) + (heard - (now if at_time is None else at_time)) * bpm / 60.0
            self.ring.write(np.zeros((2, int(prep * self.sr)), np.float32))
            self._record(ControlRecord(round(start, 9), "transport", "play" if kind != "continue" else "continue",
                                       round(start, 9), at=float(beat)))
            self._start_run()
        elif kind == "stop":
            if run is not None:
                self._end_run()

    def _start_run(self) -> None:
        run = self.perf.current
        self._joiner.reset()
        self._history.clear()
        self._run_frame0 = self._written_index()
        self._render_beat = run.start_beat
        self._render_sample = 0
        self._stop_silence_until = None

    def _written_index(self) -> int:
        return int(self.ring.frames_written)

    def _end_run(self) -> None:
        """Fade out from just after the play head, flush the rest, log a stop where the audio ended (a jump is
        logged as stop + play, which render_offline replays the same way)."""
        run = self.perf.current
        xf = self.renderer.xfade
        # flush drops everything unread, so the fade starts where the reader is now (a read racing with us
        # repeats at most one device period under the fade)
        idx = self._played_index()
        tail = self._history_slice(idx, idx + xf)
        self.ring.flush()
        if tail is None:  # the play head is at the end of what was written: fade the held-back tail
            idx = self._written_index()
            tail = self._joiner.finish()
        self.ring.write(fade_out(tail))
        pad = int(0.1 * self.sr)
        self.ring.write(np.zeros((2, pad), np.float32))
        self._stop_silence_until = self._written_index() - pad // 2
        end_beat = run.tempo.beat_at(idx + xf - self._run_frame0)
        self._record(ControlRecord(end_beat, "transport", "stop", None))
        self.renderer.release(())

    def _history_slice(self, a: int, b: int) -> np.ndarray | None:
        parts = []
        for start, block in self._history:
            lo, hi = max(a, start), min(b, start + block.shape[1])
            if hi > lo:
                parts.append(block[:, lo - start : hi - start])
        if not parts:
            return None
        out = np.concatenate(parts, axis=1)
        return out if out.shape[1] == b - a else None

    def _write(self, block: np.ndarray) -> None:
        start = self._written_index()
        self.ring.write(block)
        self._history.append((start, block))
        while self._history and self._history[0][0] + self._history[0][1].shape[1] < start - self.sr:
            self._history.popleft()

    def step(self, now: float | None = None) -> bool:
        """One unit of work: apply queued requests, then render one piece if the ring is below the look-ahead.
        Returns True when it rendered (call again soon), False when idle."""
        while True:
            try:
                kind, args, t = self._requests.get_nowait()
            except queue.Empty:
                break
            try:
                self._apply(kind, args, t)
            except MusikaError as exc:
                self.errors += 1
                logger.warning("ignored %s request %s: %s", kind, args, exc)
        run = self.perf.current
        if run is None:
            if self._stop_silence_until is not None and self._played_index() >= self._stop_silence_until:
                self.ring.disarm()
                self._stop_silence_until = None
            return False
        if self.ring.depth_frames >= self.lookahead_s * self.sr:
            return False
        piece = next(iter(self.renderer.pieces(run, self._render_beat, self._render_beat + 2 * self.perf.bar)))
        t0 = time.perf_counter()
        res = self.renderer.render(len(self.perf.runs) - 1, piece)
        dt = time.perf_counter() - t0
        self._write(self._joiner.push(res.audio))
        dur = (piece.s1 - piece.s0) / self.sr
        self._render_times.append(dt)
        self.rtf = dt / dur if math.isnan(self.rtf) else 0.8 * self.rtf + 0.2 * dt / dur
        self.lookahead_s = min(self.max_lookahead_s, max(self.min_lookahead_s, 2.0 * max(self._render_times) + 0.1))
        self.stretch = res.stretch
        self.phase_errors_s.extend(float(x) for x in res.phase_errors_s if np.isfinite(x))
        self._render_beat, self._render_sample = piece.end, piece.s1
        keep = {(len(self.perf.runs) - 1, run.epoch_at(piece.end))}
        keep |= {(len(self.perf.runs) - 1, e) for e in run.epochs if e.start_beat > piece.end}
        self.renderer.release(keep)
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
            bar=int(math.floor(beat / self.perf.bar)), beat=beat % self.perf.bar,
            buffer_ms=self.ring.depth_frames / self.sr * 1000, lookahead_ms=self.lookahead_s * 1000,
            rtf=self.rtf, underruns=int(self.ring.underruns),
            latency_ms=self.latencies_ms[-1] if self.latencies_ms else math.nan,
            phase_error_ms=float(np.median(ph)) * 1000 if ph else math.nan,
            preset=self.perf.preset, seed=self.perf.seed,
            cond_bpm=float(self.perf.controls.get("tempo", math.nan)), stretch=self.stretch,
        )
