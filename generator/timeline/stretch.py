"""Tempo lock: the time-stretch that puts generated beats on the host grid, and the bar tracker that decides where.

The stretch uses ``pedalboard.time_stretch`` (Rubber Band). A span of source audio [g0, g1) is stretched to
exactly ``out_len`` host samples with ``context`` samples of source on both sides, so Rubber Band's edge
effects fall outside the cut; a factor within ``tolerance`` of 1 is a plain copy of ``out_len`` samples (no CPU;
the live default 0.002 moves a beat at most 0.2 % of a piece, < 1 ms). Measured on synthetic kicks (16 bars,
1-beat pieces, host 128 BPM, 1 thread): Rubber Band's faster mode costs 3-5 % of real time and keeps beats within
4.4 ms median / 4.8 ms p95 of the grid at a 2 % stretch (HQ: 0.3 / 1.2 ms, but ~19 % of real time, which alone
caps the live chain below 5x real time); per-bar pieces cost 12 % (HQ) / 3 % (fast).

Where the generated beats are comes from generator.timeline.beat_grid, or, for a preset conditioned on the host's beat
phase, from the conditioning itself (:class:`BarTracker` ``trust_beats``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

import numpy as np

from generator.timeline.beat_grid import (  # noqa: F401  (re-exported: the lock's public names)
    HEARD_REACH_BEATS,
    LOW_HZ,
    ONSET_HOP,
    BeatGrid,
    _lowpass,
    envelope_offsets,
    estimate_grid,
    heard_envelope,
    heard_offsets,
    onset_envelope,
    onset_offsets,
)
from generator.timeline.crossfade import crossfade

logger = logging.getLogger(__name__)

STRETCH_CONTEXT = 4096  # source samples on each side of a stretched span
TRACK_SMOOTH = 0.3  # weight of a new period measurement in the tracker's running period
TRUST_BARS = 4  # bars of heard phase whose median decides whether a phase-conditioned preset is trusted
# a phase-conditioned preset's beats are trusted unless heard further off than this (its kicks' strongest onsets,
# generator.timeline.beat_grid.onset_offsets, median over TRUST_BARS bars)
TRUST_BEATS = 0.2
# early readings get this much more room: the heard onsets of the decoders' kicks read 15-40 ms early (their rise
# is smeared ahead of them)
TRUST_EARLY_EXTRA = 0.04
HEARD_WINDOW_BEATS = 0.3  # each beat's heard onset is searched within this many beats of the conditioned beat
SNAP_MS = 25.0  # default: a generated beat's (or off-beat's) onset is moved onto the host grid from at most this far
SNAP_MAX_MS = 50.0  # the most a setting may ask for
SNAP_POINTS = 2  # snap points per beat: each beat's onset and each off-beat's on its own (they scatter apart)
SPLICE_RANGE = (0.3, 0.7)  # where between two snap points the splice is placed (the quietest 5 ms there)
SPLICE_MS = 10.0  # crossfade at a snap splice
# a snapped point's onset must be the strongest within the heard reach plus its own move plus this margin (s): a
# kick, not a break whose nearest strong onset is a hat that the move would pull into a beat tracker's reach
SNAP_MARGIN_S = 0.002


def stretch_span(
    source: np.ndarray,
    g0: int,
    g1: int,
    out_len: int,
    lead: int,
    sr: int,
    context: int = 4096,
    high_quality: bool = True,
    tolerance: float = 1e-6,
) -> np.ndarray:
    """Stretch source samples [g0, g1) of `source` (channels, n) to exactly `out_len` samples, with `lead`
    extra output samples before (the crossfade lead-in) -> (channels, lead + out_len) float32.

    Needs source samples [g0 - context', g1 + context'] where context' = context + lead * factor; missing
    source at the edges is treated as silence (callers keep enough decoded audio around)."""
    if g1 <= g0 or out_len <= 0:
        raise ValueError(f"stretch_span needs g1 > g0 and out_len > 0, got g0={g0} g1={g1} out_len={out_len}")
    factor = (g1 - g0) / out_len  # > 1: faster and shorter
    lead_src = int(math.ceil(lead * factor))
    if abs(factor - 1.0) < tolerance:  # a copy of out_len samples from g0: the span's end moves < tolerance
        return _slice(source, g0 - lead, g0 + out_len).astype(np.float32, copy=False)
    a = g0 - lead_src - context
    seg = np.ascontiguousarray(_slice(source, a, g1 + context), dtype=np.float32)
    out = __import__("pedalboard").time_stretch(seg, float(sr), float(factor), high_quality=high_quality)
    start = int(round((g0 - a) / factor)) - lead
    res = out[:, start : start + lead + out_len]
    if res.shape[1] < lead + out_len:
        res = np.pad(res, ((0, 0), (0, lead + out_len - res.shape[1])))
    return np.ascontiguousarray(res, dtype=np.float32)


def _slice(source: np.ndarray, a: int, b: int) -> np.ndarray:
    """source[:, a:b] with zeros outside [0, n)."""
    n = source.shape[1]
    if a >= 0 and b <= n:
        return source[:, a:b]
    out = np.zeros((source.shape[0], b - a), dtype=source.dtype)
    lo, hi = max(a, 0), min(b, n)
    if hi > lo:
        out[:, lo - a : hi - a] = source[:, lo:hi]
    return out


class BarTracker:
    """Follows the beat grid of a generated stream bar by bar and maps host beats onto it.

    `segment(a, b)` returns generated audio samples [a, b) as (channels, b - a). Host bar j (j = 0: the bar
    holding `start_beat`) maps to generated samples [G_j, G_j+1) between two generated downbeats. G_0 comes
    from a full grid estimate over the first bar and a half near `nominal_start` (the generated position meant
    for `start_beat`); each next G_j+1 is predicted one bar on and corrected to the measured beat near it
    (phase searched +-1/4 beat, tempo +-3 %). Unconfident measurements (no pulse) keep the prediction, so a
    pulse-less stream is mapped at the conditioned tempo. Deterministic: G_j depends only on the audio.

    `trust_beats` > 0 (a preset conditioned on the host's beat phase): the generated beats already sit on the
    conditioned grid (bar lines at `nominal_start`, the conditioned tempo), so that grid is the map. Only where the
    heard offset of each of the last `TRUST_BARS` bars' beats is further than `trust_beats` beats from it, on the
    same side (a preset that does not follow its conditioning), is the grid shifted by their median, until that
    median comes back within `trust_beats` (a soak's techno read 0.21 beats late over three bars of four, was
    followed for a bar and played up to 90 ms early). The grid estimator is not used for
    this: it reads generated kicks 40-80 ms early, bar to bar +-40 ms (generator.timeline.beat_grid); at 143 BPM
    that passed the threshold on 2 of 3 techno seeds, and following its chained readings walked the map a beat
    off within 16 bars (stretching by up to 9 %).

    `snap_s` > 0 (beat snap): every snap point of the map (each bar's beats and off-beats from its bar line,
    SNAP_POINTS per beat) is then moved to where its onset is heard in the generated audio (:func:`heard_offsets`,
    the strongest onset within HEARD_REACH_BEATS), by at most `snap_s` seconds; a point without a clear onset that
    rules its neighbourhood keeps the map's place. Between two points the map jumps once, at a splice where the
    audio is quietest, crossfaded (:func:`lock_piece`). So a kick or an off-beat generated early or late lands on
    the host's grid, as a DAW's audio quantise would put it; the generator's kicks and off-beats scatter apart
    (moving a beat by its kick's offset alone put its off-beat further off), so each is placed on its own.
    """

    def __init__(self, segment: Callable[[int, int], np.ndarray], sr: int, bar: float, cond_bpm: float,
                 start_beat: float, nominal_start: float, lock: bool = True, min_confidence: float = 0.3,
                 origin: float = 0.0, trust_beats: float = 0.0, snap_s: float = 0.0):
        self.segment, self.sr, self.bar, self.start_beat = segment, sr, bar, start_beat
        self.cond_bpm, self.nominal_start = cond_bpm, nominal_start
        self.lock, self.min_confidence = lock, min_confidence
        self.trust_beats = float(trust_beats)
        self.period = 60.0 / cond_bpm * sr  # samples per beat, running estimate
        self.confidence = 0.0
        self.bars: list[float] = []
        self.ref = origin + math.floor((start_beat - origin) / bar + 1e-9) * bar  # host beat of bar 0
        self.deviations: list[float] = []  # measured minus conditioned bar start, beats (trusting trackers)
        self._following = False  # a trusting tracker that found the conditioning not followed
        self.snap = float(snap_s) * sr if lock else 0.0  # samples
        self._snapped: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # bar -> (offsets, splice beats)

    def _nominal(self, j: int) -> float:
        """G_j on the conditioned grid."""
        return self.nominal_start + (j * self.bar - (self.start_beat - self.ref)) * 60.0 / self.cond_bpm * self.sr

    def _heard_deviation(self, j: int) -> float | None:
        """Median offset (beats, positive: late) of the heard onsets of the beats that end at conditioned bar
        start j (bar j - 1's beats after its downbeat, and j's downbeat: no audio past the next downbeat is
        needed) from the conditioned grid; None where fewer than half have a clear onset."""
        spb = 60.0 / self.cond_bpm * self.sr
        beats = self._nominal(j) - spb * np.arange(int(round(self.bar)))[::-1]
        reach = HEARD_WINDOW_BEATS * spb
        a = max(0, int(beats[0] - reach) - 2048)
        found = onset_offsets(self.segment(a, int(beats[-1] + reach) + 2048), self.sr, beats - a,
                              window_s=reach / self.sr, peak=1.0) * self.sr / spb
        found = found[np.isfinite(found)]
        return float(np.median(found)) if 2 * found.size >= beats.size else None

    def _trusted(self, j: int) -> float:
        """A trusting tracker's G_j: the conditioned grid, shifted by the median heard offset of the last
        TRUST_BARS bars where that median says the grid is not followed. The shift is a constant per decision
        (never a chain of measured beats, which an estimator that reads early walks off the grid)."""
        nominal = self._nominal(j)
        dev = self._heard_deviation(j)
        if dev is not None:
            self.deviations.append(dev)
        recent = self.deviations[-TRUST_BARS:]
        if dev is not None and len(recent) >= TRUST_BARS:
            median = float(np.median(recent))
            late, early = self.trust_beats, -(self.trust_beats + TRUST_EARLY_EXTRA)
            if self._following:  # followed until the median comes back
                following = median > late or median < early
            else:  # followed once every one of the bars says so (a passage misread for a bar or two does not)
                following = min(recent) > late or max(recent) < early
            if following != self._following:
                logger.info("beat lock: generated beats are %.3f beats from the conditioned grid; %s",
                            median, "following them" if following else "trusting it")
            self._following = following
        if not self._following:
            return nominal
        return nominal + float(np.median(recent)) * 60.0 / self.cond_bpm * self.sr

    def _first_bar(self) -> float:
        off = self.start_beat - self.ref
        g_e = self.nominal_start
        fallback = g_e - off * self.period
        if not self.lock:
            return fallback
        if self.trust_beats > 0:
            return self._nominal(0)
        a = int(max(0.0, g_e - self.period))
        b = int(g_e + (self.bar + 2) * self.period)
        bpb = max(1, int(round(self.bar)))
        grid = estimate_grid(self.segment(a, b), self.sr, self.cond_bpm, beats_per_bar=bpb)
        self.confidence = grid.confidence
        if grid.confidence < self.min_confidence:
            return fallback
        self.period = grid.period_s * self.sr
        down = a + grid.downbeat_time(bpb) * self.sr
        m = round((g_e - off * self.period - down) / (self.bar * self.period))
        g0 = down + m * self.bar * self.period
        while g0 + off * self.period < STRETCH_CONTEXT + 0.05 * self.sr:  # keep context before the start
            g0 += self.bar * self.period
        return g0

    def _next(self, g: float) -> float:
        pred = g + self.bar * self.period
        if not self.lock:
            return pred
        if self.trust_beats > 0:
            j = len(self.bars)
            self._measure(self._nominal(j))  # the grid's confidence gates the phase report (stream.py)
            return self._trusted(j)
        meas = self._measure(pred)
        if meas is None:
            return pred
        return meas if abs(meas - pred) < 0.25 * self.period else pred

    def _measure(self, pred: float) -> float | None:
        """The measured beat near `pred` (generated samples), or None when the measurement is not confident;
        updates the running period and the confidence."""
        g = pred - self.bar * self.period
        a = max(0, int(g - self.period))
        grid = estimate_grid(self.segment(a, int(pred + self.period)), self.sr, self.sr * 60.0 / self.period,
                             search=0.03, phase_prior_s=(pred - a) / self.sr, phase_window=0.25)
        self.confidence = grid.confidence
        if grid.confidence < self.min_confidence:
            return None
        p = grid.period_s * self.sr
        k = round((pred - a - grid.first_beat_s * self.sr) / p)
        meas = a + grid.first_beat_s * self.sr + k * p
        if self.trust_beats <= 0:
            self.period = (1 - TRACK_SMOOTH) * self.period + TRACK_SMOOTH * p
        return meas

    def bar_start(self, j: int) -> float:
        """G_j in generated samples."""
        if not self.bars:
            self.bars.append(self._first_bar())
        while len(self.bars) <= j:
            self.bars.append(self._next(self.bars[-1]))
        return self.bars[j]

    def grid_position(self, beat: float) -> float:
        """Generated sample of host `beat` on the bar map, linear in beats between bar starts (no snap)."""
        x = (beat - self.ref) / self.bar
        j = int(math.floor(x + 1e-9))
        g0 = self.bar_start(j)
        if abs(x - j) < 1e-9:
            return g0
        return g0 + (x - j) * (self.bar_start(j + 1) - g0)

    def _points_in_bar(self) -> int:
        return math.ceil(self.bar * SNAP_POINTS - 1e-9)

    def _point(self, beat: float) -> tuple[int, int]:
        """The snap point at or before host `beat`: (bar, index of the point within it)."""
        j = int(math.floor((beat - self.ref) / self.bar + 1e-9))
        i = int(math.floor((beat - self.ref - j * self.bar) * SNAP_POINTS + 1e-9))
        return j, min(i, self._points_in_bar() - 1)

    def _next_point(self, j: int, i: int) -> tuple[int, int]:
        return (j, i + 1) if i + 1 < self._points_in_bar() else (j + 1, 0)

    def _point_beat(self, j: int, i: int) -> float:
        return self.ref + j * self.bar + i / SNAP_POINTS

    def _bar_snap(self, j: int) -> tuple[np.ndarray, np.ndarray]:
        """Bar j's snap (cached): each snap point's heard offset from the bar map (samples, positive: late, within
        +-snap, 0 where no clear onset) and the host beat of the splice after it, where the offset changes to
        the next point's: the quietest 5 ms between SPLICE_RANGE of the way to the next point. One measurement per
        bar (the envelope's floor needs a bar's context), from the bar's audio and a reach after it."""
        if j not in self._snapped:
            n = self._points_in_bar()
            spb = (self.bar_start(j + 1) - self.bar_start(j)) / self.bar
            points = np.array([self.grid_position(self._point_beat(j, i)) for i in range(n)])
            reach = HEARD_REACH_BEATS * spb
            around = int(reach + self.snap + SNAP_MARGIN_S * self.sr) + 2048
            a = max(0, int(points[0]) - around)
            b = int(points[-1]) + around
            env = heard_envelope(self.segment(a, b), self.sr)
            heard = envelope_offsets(env, self.sr, points - a, reach / self.sr, peak=1.0) * self.sr
            d = np.where(np.isfinite(heard), np.clip(heard, -self.snap, self.snap), 0.0)
            for i, p in enumerate(points):  # a kick, not a hat that the move would pull into a tracker's reach
                wide = envelope_offsets(env, self.sr, np.array([p - a]), (reach + abs(d[i])) / self.sr + SNAP_MARGIN_S,
                                        peak=1.0)[0] * self.sr
                if not abs(wide - heard[i]) < 1.0:
                    d[i] = 0.0
            splices = np.empty(n)
            hop = max(1, int(0.005 * self.sr))
            for i in range(n):
                b0 = self._point_beat(j, i)
                b1 = self._point_beat(*self._next_point(j, i))
                lo, hi = b0 + SPLICE_RANGE[0] * (b1 - b0), b0 + SPLICE_RANGE[1] * (b1 - b0)
                g_lo, g_hi = (int(self.grid_position(x) + d[i]) for x in (lo, hi))
                y = np.square(self.segment(g_lo, g_hi)).mean(axis=0)
                k = y.size // hop
                quiet = int(np.argmin(y[: k * hop].reshape(k, hop).mean(axis=1))) if k else 0
                splices[i] = lo + (quiet + 0.5) * hop / max(g_hi - g_lo, 1) * (hi - lo)
            self._snapped[j] = (d, splices)
        return self._snapped[j]

    def _offset(self, beat: float, left: bool = False) -> float:
        """Snap offset (samples) in force at host `beat`; `left`: just before it (a span's end)."""
        j, i = self._point(beat)
        d, splices = self._bar_snap(j)
        past = beat > splices[i] if left else beat >= splices[i]
        if not past:
            return float(d[i])
        j1, i1 = self._next_point(j, i)
        return float(self._bar_snap(j1)[0][i1])

    def splices(self, beat0: float, beat1: float) -> list[float]:
        """Host beats strictly inside (beat0, beat1) where the snapped map jumps (none without snap)."""
        if self.snap <= 0 or beat1 <= beat0:
            return []
        out: list[float] = []
        j, i = self._point(beat0)
        while self._point_beat(j, i) < beat1:
            s = float(self._bar_snap(j)[1][i])
            if beat0 < s < beat1:
                out.append(s)
            j, i = self._next_point(j, i)
        return out

    def position(self, beat: float, left: bool = False) -> float:
        """Generated sample of host `beat` (>= start_beat): the bar map, linear in beats between bar starts, with
        snap moved by the offset in force there (`left`: the offset just before `beat`, for a span's end)."""
        g = self.grid_position(beat)
        return g + self._offset(beat, left) if self.snap > 0 else g


def lock_piece(tracker: BarTracker, beat0: float, beat1: float, out_len: int, lead: int, sr: int,
               high_quality: bool = True, tolerance: float = 1e-6) -> tuple[np.ndarray, float]:
    """Host beats [beat0, beat1) -> (audio (channels, lead + out_len) float32, stretch factor): the generated
    span the tracker maps them to, stretched to exactly `out_len` samples (unlocked trackers: 1:1 copy). Where a
    snapped map jumps inside the span (:meth:`BarTracker.splices`), each side is rendered on its own and the two
    are crossfaded over SPLICE_MS ending at the splice."""
    edges = [beat0, *tracker.splices(beat0, beat1), beat1]
    xs = int(round(SPLICE_MS * sr / 1000.0))
    cuts = [0] + [int(round(out_len * (e - beat0) / (beat1 - beat0))) for e in edges[1:-1]] + [out_len]
    out: np.ndarray | None = None
    for k in range(len(edges) - 1):
        n = cuts[k + 1] - cuts[k]
        if n <= 0:
            continue
        g0 = tracker.position(edges[k])
        g1 = tracker.position(edges[k + 1], left=True) if tracker.lock else g0 + n
        part = _render_span(tracker, g0, g1, n, lead if out is None else xs, sr, high_quality, tolerance)
        if out is None:
            out = part
            continue
        f = min(xs, out.shape[1])
        out = np.concatenate([out[:, : out.shape[1] - f], crossfade(out[:, out.shape[1] - f :], part[:, xs - f : xs]),
                              part[:, xs:]], axis=1)
    assert out is not None
    if not tracker.lock:
        return out, 1.0
    # the time-stretch is the bar map's: the snap's jumps are splices, not a stretch
    return out, (tracker.grid_position(beat1) - tracker.grid_position(beat0)) / out_len


def _render_span(tracker: BarTracker, g0: float, g1: float, out_len: int, lead: int, sr: int, high_quality: bool,
                 tolerance: float) -> np.ndarray:
    i0, i1 = int(round(g0)), int(round(g1))
    lead_src = int(math.ceil(lead * max(1.0, (i1 - i0) / out_len)))
    a = i0 - lead_src - STRETCH_CONTEXT
    seg = tracker.segment(a, i1 + STRETCH_CONTEXT + 1)
    return stretch_span(seg, i0 - a, i1 - a, out_len, lead, sr, STRETCH_CONTEXT, high_quality, tolerance)
