"""Bar-keyed rendering: epoch sources (latents -> audio -> beat grid), pieces stretched onto the host grid, and
the offline entry point that replays a control log through the same planner and lock as the live path.

Per epoch (see generator.timeline.planner) an :class:`EpochSource` generates latents from the seed's coordinate stream
(starting a few latents before the change point), decodes them on demand with a streaming DecodeState, and finds
the generated beat grid bar by bar (generator.timeline.stretch.estimate_grid, prior = the conditioned tempo); a preset
with a "beat" phase condition is told where the host's bar lines fall at the conditioned tempo, so its beats are
generated on the nominal grid: that grid is the map (the measurement only takes over for a preset found not to follow
it, generator.timeline.stretch.BarTracker), and the stretch is the host/conditioned tempo ratio. Host bar j
of the epoch maps to generated samples [G_j, G_j+1) between two generated downbeats; a piece of host beats is
stretched from the matching generated span to exactly its host length (pedalboard, factor ~1 +- a few %).
Pieces are joined with equal-power crossfades that end on the piece start, so a downbeat is never attenuated.
A piece cut short by a change inside its cell (a "now" change, see generator.timeline.planner.pieces) is stretched over
the whole cell and then cut, so the live path, which rewinds into the middle of such a piece, and the offline
replay produce the same samples. LockSettings defaults: Rubber Band's faster mode, and no stretch at all when the
factor is within 0.2 % of 1 (measurements in generator.timeline.stretch).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from generator.runtime.conditioning import played_positions
from generator.runtime.coords import CoordinateStream
from generator.runtime.engine import Engine
from generator.runtime.engine_loader import EngineLoader, EngineOptions
from generator.timeline.control_log import ControlRecord, SessionHeader
from generator.timeline.crossfade import DEFAULT_CROSSFADE_MS, Joiner, fade_out, fade_samples
from generator.timeline.planner import EpochDef, Performance, Piece, Run, pieces
from generator.timeline.stretch import SNAP_MS, STRETCH_CONTEXT, TRUST_BEATS, BarTracker, heard_offsets, lock_piece

logger = logging.getLogger(__name__)

PREROLL_STEPS = 8  # latents decoded before an epoch's start point (decoder/iSTFT warm-up, stretch context)


@dataclass
class LockSettings:
    """Tempo-lock options: lock=False plays the generated audio unstretched (presets without tempo)."""

    lock: bool = True
    high_quality: bool = False  # Rubber Band's finer engine: ~4x the CPU for no gain in beat placement
    tolerance: float = 0.002  # |stretch factor - 1| below this: a plain copy (beats move < 0.2 % of a piece)
    measure_phase: bool = True
    min_confidence: float = 0.3  # below this a measured beat grid is not trusted (the conditioned tempo is)
    piece_beats: float = 1.0  # longest piece: a change with quantise "now" waits at most this long to render
    snap_ms: float = SNAP_MS  # beat snap (BarTracker): a beat moved onto its host beat from at most this far; 0: off


class EpochSource:
    """Generated audio and beat grid of one epoch, computed lazily and deterministically.

    Positions `g` are samples from `origin` (the first decoded latent, coord_step - PREROLL_STEPS rounded down
    to a decoder window). Bar starts G_j (j = 0 is the host bar containing the epoch start) are found in order.
    """

    def __init__(self, engine: Engine, epoch: EpochDef, settings: LockSettings):
        self.engine, self.epoch, self.bar, self.settings = engine, epoch, epoch.bar, settings
        cfg = engine.config
        self.sr = cfg.audio.sample_rate
        self.spl = cfg.samples_per_latent
        self.win = cfg.autoencoder.dec2_window
        self.half = cfg.gan.half_len
        pre = max(0, epoch.coord_step - PREROLL_STEPS)
        self.n_start = pre - pre % self.win
        preset = engine.preset
        trunc = epoch.value("variation")
        self.coords = CoordinateStream(cfg.gan, seed=epoch.seed, truncation=trunc)
        self.cond: dict[str, float] = {}
        for c in preset.controls:
            v = epoch.value(c.name)
            if v is not None:
                self.cond[c.name] = float(min(max(v, c.min), c.max))
        self.cond_bpm = self.cond.get("tempo", epoch.value("tempo", 120.0)) or 120.0
        self.lock = settings.lock and preset.has_condition("tempo")
        self.phases = preset.phases
        # stream time (s) of a host bar line at the conditioned tempo: phases put the model's bars on the host's
        self.downbeat_s = (epoch.coord_step * self.spl / self.sr
                           - (epoch.start_beat - epoch.bar_origin) * 60.0 / self.cond_bpm)
        self._latents = np.zeros((0, 2 * cfg.autoencoder.latent_dim), np.float32)
        self._next_half = self.n_start // self.half
        self._lat_offset = self._next_half * self.half  # stream step of self._latents[0]
        self._state = engine.new_decode_state()
        self._state.next_window = self.n_start // self.win
        self._decoded_steps = self.n_start
        self.audio = np.zeros((2, 0), np.float32)  # samples [offset, offset + audio.shape[1])
        self.offset = 0
        self.tracker = BarTracker(
            self.segment, self.sr, epoch.bar, self.cond_bpm, epoch.start_beat,
            nominal_start=float((epoch.coord_step - self.n_start) * self.spl),
            lock=self.lock, min_confidence=settings.min_confidence, origin=epoch.bar_origin,
            trust_beats=TRUST_BEATS if self.phases else 0.0,  # a phase-conditioned preset: its beats are placed
            snap_s=settings.snap_ms / 1000.0,
        )

    # -- generation ----------------------------------------------------------------------------------------
    def _gen_half_pair(self) -> None:
        h0 = self._next_half
        cond: dict[str, float | np.ndarray] = dict(self.cond)
        for c in self.phases:
            cond[c.name] = played_positions(c, self.engine.config, h0 * self.half, 2 * self.half, self.cond_bpm,
                                            self.downbeat_s)
        lat = self.engine.latents(self.coords.halves(h0, 2), cond, seed=self.epoch.seed, first_half=h0)
        self._latents = np.concatenate([self._latents, lat])
        self._next_half += 2

    def ensure(self, g: float) -> None:
        """Decode until audio covers sample g (exclusive)."""
        need = int(math.ceil(g))
        while self.offset + self.audio.shape[1] < need:
            steps = 4 * self.win
            stop = self._decoded_steps + steps
            while self._lat_offset + self._latents.shape[0] < stop:
                self._gen_half_pair()
            a = self._decoded_steps - self._lat_offset
            out = self.engine.decode(self._latents[a : a + steps], seed=self.epoch.seed, state=self._state)
            self._decoded_steps = stop
            self.audio = np.concatenate([self.audio, out], axis=1)
            keep = self._decoded_steps - self._lat_offset - 2 * self.half  # drop latents no longer needed
            if keep > 0 and keep % self.half == 0 and keep >= 2 * self.half:
                self._latents = self._latents[keep:]
                self._lat_offset += keep

    def segment(self, a: int, b: int) -> np.ndarray:
        """Audio samples [a, b) (zeros where trimmed or before the start), (2, b - a)."""
        self.ensure(b)
        lo = a - self.offset
        if lo >= 0:
            return self.audio[:, lo : b - self.offset]
        out = np.zeros((2, b - a), np.float32)
        if b - self.offset > 0:
            out[:, -lo:] = self.audio[:, : b - self.offset]
        return out

    def trim(self, before: int) -> None:
        """Forget audio before sample `before` (keeps memory flat over long epochs)."""
        cut = before - self.offset
        if cut > 8 * self.sr:  # trim in large steps: copying is O(kept)
            self.audio = self.audio[:, cut:].copy()
            self.offset = before

    # -- beat grid ------------------------------------------------------------------------------------------
    def position(self, beat: float) -> float:
        """Generated sample of host `beat` (see generator.timeline.stretch.BarTracker)."""
        return self.tracker.position(beat)

    @property
    def period(self) -> float:
        return self.tracker.period

    @property
    def confidence(self) -> float:
        return self.tracker.confidence


@dataclass
class PieceResult:
    audio: np.ndarray  # (2, lead + length) float32
    stretch: float
    phase_errors_s: np.ndarray = field(default_factory=lambda: np.zeros(0))


class Renderer:
    """Renders planned pieces. `loader(name) -> Engine` supplies presets (cached here)."""

    def __init__(self, loader: Callable[[str], Engine], bar: float, sample_rate: int,
                 xfade_ms: float = DEFAULT_CROSSFADE_MS, settings: LockSettings | None = None):
        self.loader, self.bar, self.sr = loader, bar, sample_rate
        self.xfade = fade_samples(xfade_ms, sample_rate)
        self.settings = settings or LockSettings()
        self._engines: dict[str, Engine] = {}
        self._sources: dict[tuple[int, EpochDef], EpochSource] = {}

    @property
    def ceiling_dbtp(self) -> float | None:
        """The output stage's true-peak ceiling (the first loaded preset's engine sets it), held at joins too."""
        return next(iter(self._engines.values())).output.ceiling_dbtp if self._engines else None

    def engine(self, name: str) -> Engine:
        if name not in self._engines:
            self._engines[name] = self.loader(name)
        return self._engines[name]

    def source(self, run_id: int, epoch: EpochDef) -> EpochSource:
        key = (run_id, epoch)
        if key not in self._sources:
            self._sources[key] = EpochSource(self.engine(epoch.preset), epoch, self.settings)
        return self._sources[key]

    def has_source(self, run_id: int, epoch: EpochDef) -> bool:
        """Whether the epoch's source exists already (its first piece costs more: decode warm-up, grid)."""
        return (run_id, epoch) in self._sources

    def release(self, keep: Iterable[tuple[int, EpochDef]]) -> None:
        """Forget sources not in `keep` (superseded epochs, finished runs)."""
        keep = set(keep)
        for k in [k for k in self._sources if k not in keep]:
            del self._sources[k]

    @property
    def min_piece(self) -> int:
        """Shortest piece (samples): two crossfades and a sample."""
        return 2 * self.xfade + 2

    def pieces(self, run: Run, start: float, stop: float) -> Iterator[Piece]:
        """The planner's pieces with this renderer's cutting rules (live and offline share them)."""
        return pieces(run, start, stop, self.bar, min_samples=self.min_piece, max_beats=self.settings.piece_beats)

    def render(self, run_id: int, piece: Piece) -> PieceResult:
        src = self.source(run_id, piece.epoch)
        n = piece.s1 - piece.s0
        end, n_span = (piece.span_end, piece.s_span - piece.s0) if piece.cut_short else (piece.end, n)
        out, factor = lock_piece(src.tracker, piece.start, end, n_span, self.xfade, self.sr,
                                 self.settings.high_quality, self.settings.tolerance)
        out = out[:, : self.xfade + n]
        # keep what a live rewind may render again (up to the look-ahead, <= 4 s, behind the newest piece)
        keep = max(2 * src.bar * src.period, 6.0 * self.sr)
        src.trim(int(src.tracker.position(piece.start) - STRETCH_CONTEXT - keep))
        out = src.engine.finish(out, piece.gain_db)  # the output stage, per piece (no state: live == offline)
        errs = np.zeros(0)
        if self.settings.measure_phase and src.lock and src.confidence >= self.settings.min_confidence:
            beats = np.arange(math.ceil(piece.start - 1e-9), piece.end - 1e-9)
            if beats.size:
                spb = 60.0 / piece.bpm * self.sr
                pos = self.xfade + (beats - piece.start) * spb
                errs = heard_offsets(out, self.sr, pos, spb)  # what an outside beat tracker hears
        return PieceResult(out, factor, errs)


def resolve_loader(engine_or_preset: Engine | str | Path | Callable[[str], Engine],
                   threads: int | None = None) -> Callable[[str], Engine]:
    """An Engine (used for its own preset name, others loaded by name), a preset name/path, or a loader
    (generator.runtime.engine_loader)."""
    return EngineLoader.of(engine_or_preset, EngineOptions(threads=threads))


def render_runs(perf: Performance, renderer: Renderer, end_beat: float | None = None,
                phase_errors: list[float] | None = None) -> np.ndarray:
    """Render every run of a performance in order -> (2, samples) float32 (runs concatenated).

    An open last run is rendered up to `end_beat`. Each run starts with a short fade-in and ends with an
    equal-power fade-out over the crossfade length (stop, jump), except where the next run joins it (a locate
    while playing): there the two crossfade, as any two pieces do."""
    out: list[np.ndarray] = []
    held: np.ndarray | None = None
    for run_id, run in enumerate(perf.runs):
        stop = run.end_beat if run.end_beat is not None else end_beat
        if stop is None:
            raise ValueError("the performance is still playing; give end_beat (or bars) to render_offline")
        joined_next = run_id + 1 < len(perf.runs) and perf.runs[run_id + 1].joined
        audio, held = _render_run(run_id, run, stop, renderer, phase_errors, held if run.joined else None,
                                  joined_next)
        out.append(audio)
    return np.concatenate(out, axis=1) if out else np.zeros((2, 0), np.float32)


def _render_run(run_id: int, run: Run, stop: float, renderer: Renderer, phase_errors: list[float] | None,
                tail: np.ndarray | None = None, hold: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """Run beats [start, stop) as the live path plays them: the joined stream up to stop, its last crossfade
    length faded out (live fades the committed stream from the play head, or the held-back tail when the
    play head has reached the end of what was written), or with `hold` held back and returned second, for the
    next run to join. `tail`: the previous run's held-back samples, crossfaded into this run's first lead-in
    (the stream then starts that many samples before the run's sample 0)."""
    s_stop = run.tempo.sample_at(stop)
    lead = 0 if tail is None else tail.shape[1]
    if s_stop <= 0:
        return np.zeros((2, 0), np.float32), None
    xf = renderer.xfade
    joiner = Joiner(xf, ceiling_dbtp=renderer.ceiling_dbtp)
    joiner.restore(tail)
    parts: list[np.ndarray] = []
    emitted = 0
    for p in renderer.pieces(run, run.start_beat, stop + 2 * renderer.bar):
        if p.s0 >= s_stop:
            break
        res = renderer.render(run_id, p)
        parts.append(joiner.push(res.audio))
        emitted += parts[-1].shape[1]
        if phase_errors is not None:
            phase_errors.extend(float(x) for x in res.phase_errors_s if np.isfinite(x))
    if emitted < s_stop + lead:
        parts.append(joiner.finish()[:, : s_stop + lead - emitted])
    stream = np.concatenate(parts, axis=1)[:, : s_stop + lead]
    renderer.release(())
    if hold:
        return stream[:, : stream.shape[1] - xf], stream[:, stream.shape[1] - xf :]
    return fade_out(stream, xf), None


def render_offline(
    engine_or_preset: Engine | str | Path | Callable[[str], Engine],
    header: SessionHeader,
    records: Iterable[ControlRecord] = (),
    bars: float | None = None,
    end_beat: float | None = None,
    xfade_ms: float = DEFAULT_CROSSFADE_MS,
    settings: LockSettings | None = None,
    phase_errors: list[float] | None = None,
    threads: int | None = None,
) -> np.ndarray:
    """Replay a performance -> stereo (2, samples) float32 at header.sample_rate, the audio the live path
    plays for it (same planner, lock and crossfades).

    `header` gives preset, seed, tempo (BPM), meter and initial controls (see generator.timeline.control_log); records
    are the control log lines in file order. Without a transport record first, playback starts at beat 0.
    The open last run ends at `end_beat`, or after `bars` bars from its start. `phase_errors`, when given a
    list, receives the measured onset offsets (seconds) of generated beats from the host grid."""
    records = list(records)
    perf = Performance(header)
    settings = replace(settings or LockSettings(), snap_ms=header.snap_ms)  # the performance's own snap
    renderer = Renderer(resolve_loader(engine_or_preset, threads), perf.bar, header.sample_rate, xfade_ms, settings)
    renderer.engine(header.preset)  # first: its output settings hold for the whole performance
    if not records or records[0].type != "transport":
        perf.apply(ControlRecord(0.0, "transport", "play", 0.0))
    for rec in records:
        perf.apply(rec)
    if perf.current is not None and end_beat is None:
        if bars is None:
            raise ValueError("render_offline needs bars or end_beat to know where the performance ends")
        end_beat = perf.current.start_beat + bars * perf.bar
    return render_runs(perf, renderer, end_beat, phase_errors)
