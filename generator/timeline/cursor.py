"""Where the live worker stands in the current run, and how it goes back to render part of it again.

A :class:`RunCursor` keeps the stream index of the run's sample 0, the render position (beat), the joiner, and
every piece boundary rendered from just before the play head on, each with the joiner's held-back tail there.
With those it can restart rendering from any boundary (:meth:`RunCursor.rollback`) or cut a rendered piece short
inside (the piece's own audio up to there stays, its next crossfade length is the new tail), and the stream it
writes stays identical to the offline replay of the same control log (generator.timeline.stream.render_offline).
Pure bookkeeping over a :class:`~generator.timeline.playout.Playout`; positions in samples, beats are host quarter
notes.
:func:`phase_nudge` plans how a tempo change (or a phase error) is caught up with from such a re-render point.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable

import numpy as np

from generator.timeline.crossfade import Joiner
from generator.timeline.planner import EPS, Piece, Run
from generator.timeline.playout import Playout

MAX_NUDGE = 0.06  # largest relative tempo offset used to pull the audio back onto the host's beat


def phase_nudge(c0: float, heard_c0: float, host_time: Callable[[float], float], bpm: float, max_beats: int = 8,
                max_nudge: float = MAX_NUDGE, min_beats: int = 1) -> tuple[float, float]:
    """Catch up with the host after a tempo change: the audio reaches beat `c0` at time `heard_c0` (seconds), the
    host plays beat b at `host_time(b)` at `bpm`. Returns (c1, bpm_x): beats [c0, c1) play at bpm_x so that beat
    c1 (a whole beat) is heard on the host's beat, over the fewest beats (at least `min_beats`, at most max_beats) that
    keep bpm_x within `max_nudge` (relative) of bpm; (c0, bpm) when c0 is already within 0.2 ms. Out of reach:
    the clamped nudge over max_beats (the rest of the error remains). A larger `min_beats` spreads a small drift
    correction thinly (10 ms over a bar at 120 BPM: 0.5 % faster) instead of rushing one beat."""
    if abs(host_time(c0) - heard_c0) < 2e-4:
        return c0, bpm
    base = math.floor(c0 + 1e-9)  # (a c0 inside a beat: the catch-up still ends on a whole beat)
    for k in range(max(1, min(min_beats, max_beats)), max_beats + 1):
        span = base + k - c0
        dt = host_time(base + k) - heard_c0
        if dt > 0 and abs(span * 60.0 / dt / bpm - 1.0) <= max_nudge:
            return base + k, span * 60.0 / dt
    span = base + max_beats - c0
    dt = host_time(base + max_beats) - heard_c0
    x = span * 60.0 / dt if dt > 0 else math.inf
    return base + max_beats, min(max(x, bpm * (1 - max_nudge)), bpm * (1 + max_nudge))


def host_bpm_at(nudges: list[tuple[float, float, float]], beat: float, played_bpm: float) -> float:
    """The host's tempo at `beat`: a beat in a nudged span (from, to, host bpm) reports the tempo it catches up
    with, any other the tempo it plays at (`played_bpm`)."""
    return next((bpm for a, b, bpm in nudges if a <= beat < b), played_bpm)


class RunCursor:
    """Render position of `run` in `playout`. xfade: the crossfade (samples); min_piece: the shortest piece;
    ceiling_dbtp: the output stage's ceiling, held at joins too (see generator.timeline.crossfade.Joiner)."""

    def __init__(self, playout: Playout, xfade: int, min_piece: int, ceiling_dbtp: float | None = None):
        self.playout, self.xfade, self.min_piece = playout, xfade, min_piece
        self.joiner = Joiner(xfade, ceiling_dbtp=ceiling_dbtp)
        self.run: Run | None = None
        self.frame0 = 0  # stream index of run sample 0
        self.beat = 0.0  # render position: everything before it is written (up to the joiner's tail)
        # piece boundaries rendered: (beat, the joiner's tail there, hard: not a piece cut short by a change)
        self.ends: deque[tuple[float, np.ndarray | None, bool]] = deque()

    def start(self, run: Run, tail: np.ndarray | None = None) -> None:
        """A new run whose sample 0 is the next sample written; with `tail` (the previous run's last samples,
        held back as the joiner holds a piece's tail) its first piece's lead-in crossfades with them and its
        sample 0 follows them."""
        self.run, self.beat = run, run.start_beat
        self.frame0 = self.playout.end + (0 if tail is None else tail.shape[1])
        self.joiner.restore(tail)
        self.ends = deque([(run.start_beat, tail, True)])

    def index(self, beat: float, tail: np.ndarray | None = None, lead: bool = False) -> int:
        """Stream index of `beat` (minus the crossfade lead-in when `lead` or `tail` is given)."""
        back = self.xfade if (lead or tail is not None) else 0
        return self.frame0 + self.run.tempo.sample_at(beat) - back

    def heard(self, beat: float, now: float) -> float:
        """Host time at which `beat` is heard (its audio written or not)."""
        return self.playout.heard_at(self.index(beat), now)

    def beat_at(self, index: float) -> float:
        return self.run.tempo.beat_at(index - self.frame0)

    def push(self, piece: Piece, audio: np.ndarray) -> None:
        """Join and write a rendered piece (the next one after the render position)."""
        self.playout.write(self.joiner.push(audio))
        self.beat = piece.end
        self.ends.append((piece.end, self.joiner.tail, not piece.cut_short))
        head = self.playout.head()
        while len(self.ends) > 2 and self.index(*self.ends[1][:2]) < head:
            self.ends.popleft()

    # ------------------------------------------------------------------------------------------ going back
    def earliest(self, margin_s: float) -> float:
        """The first hard piece boundary (bar line, beat, tempo change) whose audio starts at least `margin_s`
        after the play head (else the render position): the earliest beat a bar-bound change can start at."""
        lim = self.playout.head() + margin_s * self.playout.sr
        for beat, tail, hard in self.ends:
            if hard and self.index(beat, tail) >= lim:
                return beat
        return self.beat

    def soonest(self, margin_s: float) -> float:
        """The earliest beat a "now" change can start at: its crossfade begins `margin_s` after the play head. It
        cuts the piece it falls in short, at least a minimum piece away from that piece's ends."""
        tempo, mn = self.run.tempo, self.min_piece
        c = round(self.beat_at(self.playout.head() + margin_s * self.playout.sr + self.xfade), 6)
        if c >= self.beat - EPS:
            return self.beat
        b = [e[0] for e in self.ends if e[0] <= c + EPS][-1] if c > self.ends[0][0] + EPS else self.ends[0][0]
        if c <= b + EPS:  # still in the run's lead-in silence: its start
            return b
        e = [e[0] for e in self.ends if e[0] > c + EPS][0]
        if tempo.sample_at(c) - tempo.sample_at(b) < mn:
            c = round(tempo.beat_at(tempo.sample_at(b) + mn + 1), 6)
        return e if tempo.sample_at(e) - tempo.sample_at(c) < mn else c

    def rollback(self, beat: float) -> bool:
        """Render again from `beat` on (if it is before the render position): from that piece boundary, or by
        cutting the piece it falls in short there. False when the reader got there first (nothing changed)."""
        if beat >= self.beat - EPS:
            return True
        keep = [e for e in self.ends if e[0] <= beat + EPS]
        if not keep:
            return False
        b, tail, hard = keep[-1]
        x = self.index(b, tail)
        if abs(b - beat) > EPS:  # inside the piece [b, ...): its audio up to `beat` stays, its tail is the join
            b, hard = beat, False
            x = self.index(beat, lead=True)
            tail = self.playout.slice(x, x + self.xfade)
            if tail is None:
                return False
        if self.playout.rewind(x) != x:
            return False
        while self.ends and self.ends[-1][0] > b - EPS:
            self.ends.pop()
        self.ends.append((b, tail, hard))
        self.joiner.restore(tail)
        self.beat = b
        return True
