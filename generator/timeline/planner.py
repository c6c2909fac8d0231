"""The bar planner (pure): which controls, preset, seed and generated stream feed each stretch of host beats.

Positions are quarter-note beats on the host timeline. A *performance* is a sequence of *runs* (contiguous
playing from a start beat until stop or a jump). Within a run, every control/preset/seed change starts a new
*epoch* at its effective beat: a freshly planned latent stream (same seed and coordinate position, new
conditioning) that the renderer crossfades into. Host tempo changes live in the run's :class:`TempoTrack`,
which maps beats to output samples; a tempo record replaces the changes planned after its beat (the live path
plans short phase nudges ahead). The bar grid (:class:`BarGrid`) follows meter records: type "tempo", name
"meter", value [numerator, denominator], at a bar line. Nothing here reads a clock: live and offline feed the
same records, so they plan the same audio.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace

from generator.errors import MusikaError
from generator.runtime.model_config import SAMPLES_PER_LATENT
from generator.timeline.control_log import ControlRecord, SessionHeader

REF_BPM = 120.0  # the coordinate stream advances one latent-time second per two beats
EPS = 1e-9
QUANTISE_MODES = ("bar", "now", "phrase")
# controls that only scale the output and need no new latent stream
OUTPUT_ONLY = frozenset({"gain"})


class PlanError(MusikaError, ValueError):
    """A change cannot be planned (bad quantise mode, position before what is already fixed, bad meter)."""


def bar_beats(meter: tuple[int, int]) -> float:
    """Quarter-note beats per bar: 4/4 -> 4, 6/8 -> 3, 7/8 -> 3.5."""
    num, den = meter
    if num < 1 or den not in (1, 2, 4, 8, 16, 32):
        raise PlanError(f"meter {num}/{den} is not valid; use numerator >= 1 and denominator 1, 2, 4, 8, 16 or 32")
    return num * 4.0 / den


def quantise(arrival: float, mode: str, bar: float, earliest: float, phrase_bars: int = 8,
             origin: float = 0.0) -> float:
    """Effective beat of a change arriving at beat `arrival` when nothing before `earliest` can change.

    now: as soon as possible; bar: the next bar line (a change exactly on a bar line takes effect there);
    phrase: the next multiple of `phrase_bars` bars. Bar lines are at origin + k * bar. A boundary already fixed
    moves to the next one."""
    if mode not in QUANTISE_MODES:
        raise PlanError(f"quantise {mode!r} is not valid; use one of {', '.join(QUANTISE_MODES)}")
    t = max(arrival, earliest)
    if mode == "now":
        return t
    unit = bar * (phrase_bars if mode == "phrase" else 1)
    return origin + math.ceil((t - origin - EPS) / unit) * unit


@dataclass
class BarGrid:
    """Bar lines of the host timeline: (origin beat, bar length in beats) from each meter change on."""

    bar: float
    changes: list[tuple[float, float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.changes = self.changes or [(0.0, self.bar)]

    def at(self, beat: float) -> tuple[float, float]:
        """(origin, bar length) of the meter in force at `beat`."""
        cur = self.changes[0]
        for c in self.changes:
            if c[0] <= beat + EPS:
                cur = c
        return cur

    def set(self, beat: float, bar: float) -> None:
        """Bars of `bar` beats from `beat` on (changes planned after it are dropped)."""
        self.changes = [c for c in self.changes if c[0] < beat - EPS] or [(beat, bar)]
        if self.changes[-1][0] < beat - EPS:
            self.changes.append((beat, bar))

    def floor(self, beat: float) -> float:
        """The bar line at or before `beat`."""
        o, n = self.at(beat)
        return o + math.floor((beat - o) / n + EPS) * n

    def next(self, line: float) -> float:
        """The bar line after bar line `line` (a meter change inside the bar is a bar line)."""
        o, n = self.at(line)
        nxt = line + n
        later = [c for c, _ in self.changes if line + EPS < c < nxt - EPS]
        return later[0] if later else nxt

    def index(self, beat: float) -> int:
        """Bar number (from 0 at beat 0) of the bar holding `beat`."""
        count = 0
        for i, (o, n) in enumerate(self.changes):
            end = self.changes[i + 1][0] if i + 1 < len(self.changes) else math.inf
            if beat < end - EPS:
                return count + math.floor((beat - o) / n + EPS)
            count += math.ceil((end - o) / n - EPS)
        return count

    def quantise(self, arrival: float, mode: str, earliest: float, phrase_bars: int = 8) -> float:
        """:func:`quantise` on this grid (the meter in force at the later of arrival and earliest)."""
        o, n = self.at(max(arrival, earliest))
        return quantise(arrival, mode, n, earliest, phrase_bars, origin=o)


@dataclass(frozen=True)
class EpochDef:
    """One planned latent stream: everything that determines its audio. `coord_step` is where it starts in the
    seed's endless coordinate stream; `values` are the model controls (conditioning names, variation)."""

    start_beat: float
    preset: str
    seed: int
    coord_step: int
    values: tuple[tuple[str, float], ...]
    bar: float = 4.0  # bar length (beats) and a bar line (beat) of the meter at start_beat
    bar_origin: float = 0.0

    def value(self, name: str, default: float | None = None) -> float | None:
        return dict(self.values).get(name, default)


@dataclass
class TempoTrack:
    """Piecewise-constant host tempo of one run: (beat, bpm) changes; samples counted from the run start."""

    start_beat: float
    bpm: float
    sample_rate: int
    changes: list[tuple[float, float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        check_bpm(self.bpm)
        self.changes = [(self.start_beat, self.bpm)]

    def set(self, beat: float, bpm: float) -> None:
        """Tempo `bpm` from `beat` on. Changes planned after `beat` are dropped (a later record replaces what an
        earlier one planned ahead, e.g. a phase nudge); one at the same beat is replaced."""
        check_bpm(bpm)
        if beat < self.start_beat - EPS:
            raise PlanError(f"tempo change at beat {beat:.3f} is before the run's start ({self.start_beat:.3f})")
        self.changes = [c for c in self.changes if c[0] < beat - EPS] or [(self.start_beat, bpm)]
        if self.changes[-1][0] < beat - EPS:
            self.changes.append((beat, bpm))

    def bpm_at(self, beat: float) -> float:
        bpm = self.changes[0][1]
        for b, v in self.changes:
            if b <= beat + EPS:
                bpm = v
        return bpm

    def sample_at(self, beat: float) -> int:
        """Output sample index (from the run start) of `beat`, rounded to the nearest sample."""
        s = 0.0
        for i, (b, bpm) in enumerate(self.changes):
            nxt = self.changes[i + 1][0] if i + 1 < len(self.changes) else math.inf
            if beat <= b:
                break
            s += (min(beat, nxt) - b) * 60.0 / bpm * self.sample_rate
        return int(round(s))

    def beat_at(self, sample: float) -> float:
        """Inverse of :meth:`sample_at` (no rounding)."""
        s = 0.0
        for i, (b, bpm) in enumerate(self.changes):
            spb = 60.0 / bpm * self.sample_rate
            nxt = self.changes[i + 1][0] if i + 1 < len(self.changes) else math.inf
            seg = (nxt - b) * spb
            if sample <= s + seg:
                return b + (sample - s) / spb
            s += seg
        return self.changes[-1][0]

    def change_beats(self, a: float, b: float) -> list[float]:
        return [x for x, _ in self.changes if a + EPS < x < b - EPS]


def check_bpm(bpm: float) -> None:
    """Raise PlanError unless ``bpm`` is a finite tempo in 20..400."""
    if not (isinstance(bpm, int | float) and math.isfinite(bpm) and 20.0 <= bpm <= 400.0):
        raise PlanError(f"tempo {bpm!r} BPM is not valid; use 20..400")


@dataclass
class Run:
    """Contiguous playback from `start_beat` to `end_beat` (None: still playing)."""

    start_beat: float
    tempo: TempoTrack
    epochs: list[EpochDef]
    gains: list[tuple[float, float]]  # (beat, dB)
    end_beat: float | None = None
    grid: BarGrid | None = None  # the performance's bar lines (None: every `bar` beats from 0)
    joined: bool = False  # started by a locate while a run played: crossfades with that run, no gap

    def epoch_at(self, beat: float) -> EpochDef:
        cur = self.epochs[0]
        for e in self.epochs:
            if e.start_beat <= beat + EPS:
                cur = e
        return cur

    def gain_at(self, beat: float) -> float:
        g = self.gains[0][1]
        for b, v in self.gains:
            if b <= beat + EPS:
                g = v
        return g


@dataclass(frozen=True)
class Piece:
    """A span of one run rendered from one epoch at one tempo: beats [start, end), run samples [s0, s1)."""

    start: float
    end: float
    s0: int
    s1: int
    epoch: EpochDef
    bpm: float
    gain_db: float
    bar: int  # index of the bar the piece starts in
    first: bool  # first piece of its run (fades in from silence)
    span_end: float = math.nan  # a piece cut short by a change inside its cell is stretched to here, then cut
    s_span: int = -1

    @property
    def cut_short(self) -> bool:
        return self.s_span > self.s1


class Performance:
    """State machine over control-log records, in performance order; builds the runs.

    `controls` start from the header (plus `defaults` for names the header omits). Records must come with
    non-decreasing beats inside a run; transport records open and close runs."""

    def __init__(self, header: SessionHeader, defaults: Mapping[str, float] | None = None):
        self.header = header
        self.sample_rate = header.sample_rate
        self.bar = bar_beats(header.meter)
        self.grid = BarGrid(self.bar)
        self.preset = header.preset
        self.seed = int(header.seed)
        self.bpm = float(header.bpm)
        check_bpm(self.bpm)
        self.controls: dict[str, float] = {"tempo": self.bpm, **dict(defaults or {}), **header.controls}
        self.runs: list[Run] = []
        self.playing = False
        self.position = 0.0

    # -- helpers --------------------------------------------------------------------------------------------
    def _epoch(self, beat: float) -> EpochDef:
        values = tuple(sorted((k, float(v)) for k, v in self.controls.items() if k not in OUTPUT_ONLY))
        step = int(math.floor(beat * 60.0 / REF_BPM * self.sample_rate / SAMPLES_PER_LATENT + EPS))
        origin, bar = self.grid.at(beat)
        return EpochDef(beat, self.preset, self.seed, max(step, 0), values, bar, origin)

    def _start_run(self, beat: float) -> None:
        self.controls["tempo"] = self.bpm  # a new run conditions the model on the host tempo in force
        run = Run(beat, TempoTrack(beat, self.bpm, self.sample_rate), [self._epoch(beat)],
                  [(beat, float(self.controls.get("gain", 0.0)))], grid=self.grid)
        self.runs.append(run)
        self.playing = True
        self.position = beat

    @property
    def current(self) -> Run | None:
        return self.runs[-1] if self.playing and self.runs else None

    # -- records --------------------------------------------------------------------------------------------
    def apply(self, rec: ControlRecord) -> None:
        """Apply one record (see generator.timeline.control_log for the meaning of each type)."""
        run = self.current
        if run is not None and rec.type != "transport" and rec.beat < run.start_beat - EPS:
            raise PlanError(f"{rec.type} {rec.name} at beat {rec.beat:.3f} is before its run ({run.start_beat:.3f})")
        if rec.type == "transport":
            self._transport(rec)
        elif rec.type == "tempo" and rec.name == "meter":
            self._meter(rec, run)
        elif rec.type == "tempo":
            self.bpm = float(rec.value)
            if run is not None:
                run.tempo.set(rec.beat, self.bpm)
        else:
            if rec.type == "preset":
                self.preset = str(rec.value)
            elif rec.type == "seed":
                self.seed = int(rec.value)
            else:
                self.controls[rec.name] = float(rec.value)
            if run is None:
                return
            if rec.type == "control" and rec.name in OUTPUT_ONLY:
                run.gains.append((rec.beat, float(rec.value)))
                run.gains.sort(key=lambda g: g[0])
                return
            # an epoch snapshots every control in force when the record is applied; several changes on one
            # beat make one epoch. Records may arrive out of beat order (a "now" after a scheduled bar change).
            ep = self._epoch(rec.beat)
            same = [i for i, e in enumerate(run.epochs) if abs(e.start_beat - rec.beat) <= EPS]
            if same:
                run.epochs[same[0]] = replace(ep, coord_step=run.epochs[same[0]].coord_step)
            else:
                run.epochs.append(ep)
                run.epochs.sort(key=lambda e: e.start_beat)

    def _meter(self, rec: ControlRecord, run: Run | None) -> None:
        """A meter record (type tempo, name meter, value [numerator, denominator]): bars of the new length from
        its beat on; while playing, a new epoch starts there (the beat tracker follows the new bar)."""
        try:
            num, den = (int(x) for x in rec.value)
        except (TypeError, ValueError) as exc:
            raise PlanError(f"meter record value {rec.value!r} is not valid; use [numerator, denominator]") from exc
        bar = bar_beats((num, den))
        beat = rec.beat if run is not None else self.grid.quantise(rec.beat, "bar", rec.beat)
        self.grid.set(beat, bar)
        self.bar = bar
        if run is None:
            return
        run.epochs = [e if e.start_beat < beat - EPS else replace(e, bar=bar, bar_origin=beat) for e in run.epochs]
        if not any(abs(e.start_beat - beat) <= EPS for e in run.epochs):
            run.epochs.append(replace(run.epoch_at(beat), start_beat=beat, bar=bar, bar_origin=beat,
                                      coord_step=self._epoch(beat).coord_step))
            run.epochs.sort(key=lambda e: e.start_beat)

    def _transport(self, rec: ControlRecord) -> None:
        run = self.current
        target = None if rec.value is None else float(rec.value)
        if rec.name == "stop":
            if run is not None:
                run.end_beat = rec.beat
            self.playing = False
            self.position = rec.beat
        elif rec.name in ("play", "continue"):
            if run is not None:
                run.end_beat = rec.beat
            start = target if target is not None else (0.0 if rec.name == "play" else self.position)
            self._start_run(start)
        elif rec.name == "locate":
            if target is None:
                raise PlanError("a locate record needs the beat to jump to in 'value'")
            if run is not None:
                run.end_beat = rec.beat
                self._start_run(target)
                self.runs[-1].joined = True
            else:
                self.position = target


def pieces(run: Run, start: float, end: float, bar: float, min_samples: int = 0,
           max_beats: float | None = None) -> Iterator[Piece]:
    """Cut run beats [start, end) into pieces at bar lines (and every `max_beats` beats from each bar line),
    epoch starts, gain and tempo changes.

    A cut closer than `min_samples` to the previous one is dropped (the piece runs on), so every piece is at
    least `min_samples` long except a short last one when `end` itself is that close. Bar lines, the beat grid
    and tempo changes are *hard* cuts; epoch starts and gain changes between them are *soft*: the piece before
    one is stretched over its whole cell (up to the next hard cut, `span_end`) and then cut short, so it sounds
    exactly as it did when it was rendered before the change was known (the live path rewinds to a soft cut
    without rendering that piece again)."""
    cuts = {start, end}
    hard = {end}
    grid = run.grid or BarGrid(bar)
    b = grid.floor(start)
    while b < end - EPS:
        nb = grid.next(b)
        hard.add(b)
        if max_beats:
            k = b + max_beats
            while k < nb - EPS:
                hard.add(k)
                k += max_beats
        b = nb
    hard.update(run.tempo.change_beats(start, end))
    cuts.update(h for h in hard if start + EPS < h < end - EPS)
    cuts.update(e.start_beat for e in run.epochs if start + EPS < e.start_beat < end - EPS)
    cuts.update(g for g, _ in run.gains if start + EPS < g < end - EPS)
    edges = [start]
    for c in sorted(cuts):
        if c > edges[-1] + EPS and run.tempo.sample_at(c) - run.tempo.sample_at(edges[-1]) >= min_samples:
            edges.append(c)
    if edges[-1] < end - EPS:
        if len(edges) > 1:
            edges[-1] = end
        else:
            edges.append(end)
    for a, z in zip(edges[:-1], edges[1:], strict=True):
        if z - a <= EPS:
            continue
        s0, s1 = run.tempo.sample_at(a), run.tempo.sample_at(z)
        if s1 <= s0:
            continue
        h = max(z, min((x for x in hard if x > a + EPS), default=z))
        yield Piece(a, z, s0, s1, run.epoch_at(a), run.tempo.bpm_at(a), run.gain_at(a), grid.index(a),
                    abs(a - run.start_beat) <= EPS, h, run.tempo.sample_at(h))
