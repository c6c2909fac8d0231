"""MIDI clock tempo estimation (pure logic: tick timestamps in, tempo out; no clock is read here).

MIDI Timing Clock (0xF8) arrives 24 times per quarter note (24 PPQN). Single intervals are jittery (a loopMIDI
bus at 120 BPM reads 113-131 BPM tick to tick; JACK quantises arrivals to its period), so the estimator fits a
least-squares line of tick *time* against tick *index*:

- Each tick gets an index from its interval to the previous accepted tick, relative to the running median
  interval and to the de-jittered short fit: a tick that comes less than half an interval after the last one is
  a duplicate (dropped, index unchanged); one that comes about k intervals later means k-1 ticks were lost
  (index advances by k). This repair needs 12 ticks of history and timing jitter (sd) below 12 % of the tick
  interval. Otherwise, if the intervals so far vary by less than 30 %, only unmistakable cases count (an
  interval under 1/4 of the median is a duplicate, one of 1.8-2.5 medians is one lost tick); with more jitter
  than that a duplicate cannot be told from jitter and every tick counts as one. A pause of more than
  ``gap_ratio`` intervals (8: a third of a beat) restarts the fit; a shorter one is lost ticks (a late port's burst
  puts one tick a few periods late, and a restart there read the burst's ticks as 84 BPM at 140). So duplicated
  and lost ticks do not skew the slope.
- Two windows: a short one (``short_window`` ticks, one beat) and a long one that grows up to ``max_window``
  ticks (four 4/4 bars by default). The long fit is reported.
- Two-speed follower: when the short fit differs from the long one by more than ``step_threshold`` (relative,
  raised automatically when timing jitter is large) for ``step_ticks`` consecutive ticks, the tempo stepped: the
  long window is cut to those last ticks. A steady same-sign drift (a tempo ramp) for ``drift_ticks`` ticks cuts
  the long window to two beats and keeps it there until the tempo holds still for a beat; there a parabola through
  the window gives the tempo at the latest tick and the ramp's slope (BPM per second), so a ramp is followed
  without the window's lag and the live stream can plan the beats ahead along it.
- Through an interface that scatters its ticks (a USB MIDI interface: each message 0-4 ms late) neither shows in
  time: a step is seen by the window's likeliest kink (:func:`~bridge.tempo_fit.hinge`: 7-9 ticks after a 5 % step),
  a ramp by its ticks bending away from the line before it over six beats, and a ramp is fitted over four beats.
- Confidence comes from the fit: the standard error of the BPM (from the robust residual spread) and how full
  the window is.
Tick timestamps are seconds (any monotonic clock), tempo is BPM of quarter notes.
"""

from __future__ import annotations

import math
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass, replace
from statistics import median

import numpy as np

from .tempo_fit import curvature_z, fit_line, hinge, parabola, slope_se
from .tempo_ramp import MIN_SLOPE

PPQN = 24
FAST_STEP_TICKS = 4  # ticks that show a step at once (see ClockTempoEstimator._fast_step)
FAST_STEP_S = 0.0015
# the tempo after a fast step is told once its standard error is this small (relative), or a fifth of the step
FAST_STEP_PRECISION = 0.004
HINGE_Z, HINGE_MIN, HINGE_AFTER = 6.0, 0.01, 6  # a kink this sure (steady: < 4), this big, this many ticks back
RAMP_WIDE_JITTER = 0.03  # ticks this scattered (relative sd: 0.6 ms at 126 BPM) are fitted over a wider ramp window
RAMP_Z = 5.0  # a window's curvature this many standard errors from none ...
RAMP_BENT_TICKS = 6  # ... this many ticks in a row: a ramp
RAMP_Z_SURE = 20.0  # a curvature this sure is taken as it is, a vaguer one averaged (ClockTempoEstimator._ramp_end)
RAMP_SMOOTH = 1 / 24  # weight of each tick's curvature in a ramp's running curvature


@dataclass(frozen=True)
class TempoState:
    """The estimator's view after one tick.

    bpm: reported (long-window) tempo, None until ``min_ticks`` ticks or when outside the sane range.
    fast_bpm: the short-window (one beat) estimate. bpm_error: standard error of ``bpm`` in BPM.
    confidence: 0..1 (1 = full window, negligible error). advanced: how many tick indices this tick moved
    (0 = duplicate dropped, 1 = normal, k > 1 = k-1 ticks lost). step: the long window was cut at this tick
    (tempo step or ramp). jitter_ms: robust spread of tick times around the fit. window: ticks in the long fit.
    tick_time: de-jittered time of the latest tick (from the fit). note: "", "duplicate", "lost", "gap",
    "restart", "out of range", "backwards", "not a time". slope: BPM per second while a ramp is followed (then
    ``bpm`` is the tempo at the latest tick, not the window's average), else 0.
    """

    bpm: float | None
    fast_bpm: float | None
    bpm_error: float
    confidence: float
    advanced: int
    step: bool
    jitter_ms: float
    window: int
    tick_time: float
    note: str = ""
    slope: float = 0.0


def arrival_quantum(intervals: Iterable[float], tol: float = 5e-4) -> float:
    """The period (seconds) arrivals are quantised to, or 0.0: a backend that stamps each event with the start of
    its audio period (JACK MIDI through rtmidi: 11.6 ms at -p 512) gives intervals that are whole multiples of that
    period (within ``tol``), at least two different ones three times each. Needs 12 intervals."""
    dts = sorted(intervals)
    if len(dts) < 12 or dts[0] < 4e-3:
        return 0.0
    base = float(np.median([d for d in dts if d < dts[0] + tol]))
    for m in (1, 2, 3):  # the shortest interval may span several periods (slow tempo, short period)
        q = base / m
        counts = Counter(round(d / q) for d in dts)
        if sum(1 for c in counts.values() if c >= 3) >= 2 and all(abs(d - round(d / q) * q) <= tol for d in dts):
            return float(np.mean([d / round(d / q) for d in dts]))
    return 0.0


class ClockTempoEstimator:
    """Tempo from MIDI clock tick times (seconds). Call :meth:`feed` once per 0xF8 with its timestamp."""

    def __init__(
        self,
        short_window: int = PPQN,
        max_window: int = 16 * PPQN,
        step_threshold: float = 0.015,
        step_ticks: int = 12,
        drift_threshold: float = 0.004,
        drift_ticks: int = PPQN,
        min_ticks: int = 6,
        min_bpm: float = 20.0,
        max_bpm: float = 300.0,
        gap_ratio: float = 8.0,
    ):
        if not 4 <= short_window <= max_window:
            raise ValueError(f"short_window must be in 4..max_window ({max_window}), got {short_window}")
        if not 2 <= step_ticks <= short_window:
            raise ValueError(f"step_ticks must be in 2..short_window ({short_window}), got {step_ticks}")
        if not 0 < min_bpm < max_bpm:
            raise ValueError(f"need 0 < min_bpm < max_bpm, got {min_bpm}, {max_bpm}")
        self.short_window, self.max_window = short_window, max_window
        self.step_threshold, self.step_ticks = step_threshold, step_ticks
        self.drift_threshold, self.drift_ticks = drift_threshold, drift_ticks
        self.min_ticks, self.min_bpm, self.max_bpm, self.gap_ratio = min_ticks, min_bpm, max_bpm, gap_ratio
        self.reset()

    def reset(self) -> None:
        """Forget everything (e.g. the clock source changed)."""
        self._xs: deque[int] = deque(maxlen=self.max_window)
        self._ys: deque[float] = deque(maxlen=self.max_window)
        self._intervals: deque[float] = deque(maxlen=12)
        self._recent: deque[int] = deque(maxlen=12)  # advanced per recent tick, to spot a > 2x tempo jump
        self._long_n = 0
        self._anchor: tuple[float, float] | None = None  # (fitted time of the last tick, short-fit period)
        self._dev_count = self._drift_count = self._drift_sign = self._bad = self._calm = 0
        self._history: deque[float] = deque(maxlen=self.short_window + 1)  # recent long-fit periods
        self._raw_dts: deque[float] = deque(maxlen=self.short_window)
        self._raw_last: float | None = None
        self._quantum = 0.0  # the arrival quantum (seconds) when stamps come on a period lattice, else 0
        self._q_miss = 0
        self._cap = self.max_window  # 2 beats (4 through a scattering interface) while a ramp is being followed
        self._jitter = 0.0  # the short fit's residual spread (s)
        self._curv: float | None = None  # a ramp's running curvature (s per tick^2)
        self._line: tuple[int, float, float] | None = None  # the last fit: (index, its fitted time, period)
        self._resid: deque[float] = deque(maxlen=FAST_STEP_TICKS)  # each tick's distance from the line before it
        self._fast = False  # a fast step cut the window since the last reset
        self._step_sigma = self._step_from = 0.0
        self._step_held = False  # a fast step whose tempo is not told yet
        self._bent, self._bent_sign = 0, 0  # ticks in a row whose window bends (one way)
        self._z = 0.0  # the last two beats' curvature z (tempo_fit.curvature_z)
        self.state = TempoState(None, None, math.inf, 0.0, 0, False, 0.0, 0, math.nan, "restart")

    @property
    def bpm(self) -> float | None:
        return self.state.bpm

    def feed(self, t: float) -> TempoState:
        """Add the tick that arrived at time ``t`` (seconds); returns the updated :class:`TempoState`."""
        if not math.isfinite(t):  # a broken stamp: the tick is not counted, nothing is lost
            return self._reject("not a time")
        if self._raw_last is not None and t > self._raw_last:
            self._raw_dts.append(t - self._raw_last)
            q = arrival_quantum(self._raw_dts)
            self._q_miss = 0 if q > 0 else self._q_miss + 1
            if q > 0 or self._q_miss >= self.short_window:  # kept until a whole window says otherwise
                self._quantum = q
        self._raw_last = t
        t += self._quantum / 2  # a period-quantised stamp is the start of its period: centre it
        if not self._ys:
            return self._accept(t, 0, "restart")
        last_t = self._ys[-1]
        dt = t - last_t
        if dt < 0:
            self._bad += 1
            if self._bad >= 4:  # the clock really went backwards (timestamps re-based): start over
                self.reset()
                return self._accept(t, 0, "restart")
            return self._reject("backwards")
        self._bad = 0
        med = median(self._intervals) if len(self._intervals) >= 3 else 0.0
        if med <= 0:  # too few intervals, or identical timestamps (a flood): nothing to compare with
            return self._accept(t, 1, "")
        r_raw = dt / med
        # the same ratio against the de-jittered short fit: robust to jitter, while r_raw follows steps at once
        if self._anchor is None:  # few ticks or much jitter: only unmistakable duplicates and losses count
            steady = max(abs(i / med - 1.0) for i in self._intervals) < 0.3  # low jitter so far
            if steady and r_raw < 0.25:
                return self._reject("duplicate")
            lost = steady and 1.8 <= r_raw < 2.5
            return self._accept(t, 2 if lost else 1, "lost" if lost else "")
        r_fit = (t - self._anchor[0]) / self._anchor[1]
        if r_raw < 0.5 and r_fit < 0.5:
            self._recent.append(0)
            # tempo more than doubled: the old grid no longer applies (not where ticks were lost among them: a late
            # port's burst, which gives ticks twice and drops others, read as a doubling and restarted the fit)
            if self._recent.count(0) >= 4 and max(self._recent) <= 1:
                self.reset()
                return self._accept(t, 0, "restart")
            return self._reject("duplicate")
        if r_raw >= self.gap_ratio and r_fit >= self.gap_ratio:
            return self._gap(t, r_fit)
        if self._quantum > 0:  # raw intervals are whole periods: a lost tick reads >= 2 intervals - 1 period
            p = self._anchor[1]
            r_raw = 1.7 if dt >= min(1.5 * p, 2 * p - self._quantum) - 5e-4 else 0.0
        # quantised, the fit puts a tick within +-quantum/2 of its place: lost ones read from 2 - quantum/(2 p) up
        lost_fit = 1.5 + self._quantum / (4 * self._anchor[1]) if self._quantum > 0 else 1.6
        advanced = max(2, round(r_fit)) if r_raw >= 1.7 and r_fit >= lost_fit else 1
        if advanced > 1 and sum(1 for a in self._recent if a > 1) >= 3 and 0 not in self._recent:  # a big
            self.reset()  # slowdown, not lost ticks (nor a late port's burst, with its ticks given twice)
            return self._accept(t, 0, "restart")
        return self._accept(t, advanced, "lost" if advanced > 1 else "")

    def _gap(self, t: float, r_fit: float) -> TempoState:
        """A pause in the clock: the fit starts again, and the position carries on as if the ticks had come at the
        tempo before it (a sender that stalled, or a port that dropped a burst, keeps its place) when the pause is
        up to ``max_window`` intervals; a longer one counts as one tick."""
        elapsed = round(r_fit) if r_fit <= self.max_window else 1
        self.reset()
        return replace(self._accept(t, 0, "gap"), advanced=max(1, elapsed))

    def _reject(self, note: str) -> TempoState:
        s = self.state
        self.state = TempoState(s.bpm, s.fast_bpm, s.bpm_error, s.confidence, 0, False, s.jitter_ms, s.window,
                                s.tick_time, note)
        return self.state

    def _accept(self, t: float, advanced: int, note: str) -> TempoState:
        if self._ys:
            self._intervals.append((t - self._ys[-1]) / max(advanced, 1))
            self._recent.append(advanced)
            index = self._xs[-1] + advanced
        else:
            index = 0
        if self._line is not None:  # how far off the line fitted so far this tick came
            x0, t0, p0 = self._line
            self._resid.append(t - (t0 + (index - x0) * p0))
        self._xs.append(index)
        self._ys.append(t)
        self._long_n = min(self._long_n + 1, len(self._xs), self._cap)
        period = median(self._intervals) if self._intervals else 0.0
        sane = period > 0 and self.min_bpm / 1.2 <= 60.0 / (PPQN * period) <= self.max_bpm * 1.2
        if self._long_n < 3 or not sane:
            self.state = TempoState(None, None, math.inf, 0.0, max(advanced, 1), False, 0.0, self._long_n, t,
                                    note or ("" if sane or not self._intervals else "out of range"))
            return self.state
        xs, ys = list(self._xs)[-self._long_n:], list(self._ys)[-self._long_n:]
        p_long, tick_time, sigma = fit_line(xs, ys)
        ns = min(self.short_window, self._long_n)
        p_short, short_last, sigma_short = fit_line(xs[-ns:], ys[-ns:])
        self._jitter = sigma_short
        # with a period quantum the spread is bounded (+-half a quantum around the line): repairable while that
        # stays well under half an interval
        bounded = 0 < self._quantum <= 0.75 * p_short and sigma_short <= 0.45 * self._quantum
        repairable = ns >= 12 and 0 < p_short and (sigma_short <= 0.12 * p_short or bounded)
        self._anchor = (short_last, p_short) if repairable else None
        self._bend(xs, ys)
        step = self._fast_step(sigma, xs, ys) or self._follow(p_short, p_long, sigma_short, max(sigma, sigma_short))
        if step:  # the long window was cut: refit it (the short fit now covers the same ticks)
            xs, ys = xs[-self._long_n:], ys[-self._long_n:]
            p_long, tick_time, sigma = fit_line(xs, ys)
            p_short = p_long
        n = self._long_n
        slope = 0.0
        if self._cap < self.max_window and n >= 2 * self.short_window and p_long > 0:  # following a ramp
            p_long, tick_time, slope = self._ramp_end(xs[-n:], ys[-n:], p_long, tick_time)
        else:
            self._curv = None
        bpm = 60.0 / (PPQN * p_long) if p_long > 0 else math.inf
        fast = 60.0 / (PPQN * p_short) if p_short > 0 else None
        err = bpm * slope_se(sigma, n) / p_long if p_long > 0 else math.inf
        ok = n >= (3 if self._fast else self.min_ticks) and self.min_bpm <= bpm <= self.max_bpm
        before = self.state.bpm
        if ok and self._fast and n < self.short_window and before is not None:
            # a few ticks after a fast step: told once they say it well enough (a big step is better told roughly
            # than not); meanwhile the tempo before stands, so the ticks still read as ordinary ones
            step_size = abs(p_long - self._step_from) / p_long
            precision = max(FAST_STEP_PRECISION, 0.2 * step_size)
            if slope_se(max(sigma, self._step_sigma), n) / p_long > precision:
                bpm, slope, self._step_held = before, 0.0, self._step_held or step
                step = False
        if self._step_held and bpm != before:  # the held step is told now
            step, self._step_held = True, False
        conf = min(1.0, n / self.short_window) / (1.0 + (err / 0.25) ** 2) if ok else 0.0
        self._line = (xs[-1], tick_time, p_long) if p_long > 0 else None
        self.state = TempoState(bpm if ok else None, fast, err, conf, max(advanced, 1), step, sigma * 1e3, n,
                                tick_time, note, slope if ok else 0.0)
        return self.state

    def _ramp_end(self, xs: list[int], ys: list[float], period: float, last: float) -> tuple[float, float, float]:
        """A ramp's window as a parabola: (the period at the last tick, its fitted time, the tempo's slope in BPM
        per second). A line through a ramp's ticks gives the window's average tempo, half a window behind the
        host (0.7 BPM in a 1.6 BPM/s ramp), and its last tick ~1 ms off. The curvature is averaged over about a
        beat of windows where jitter blurs it (``RAMP_SMOOTH``: one window's reads +-50 % with 1 ms of jitter),
        hardly at all where it is clear (exact stamps). A slope under ``MIN_SLOPE`` reads as none."""
        a, b, c, d, m = parabola(xs, ys)
        weight = max(RAMP_SMOOTH, self._z**2 / (self._z**2 + RAMP_Z_SURE**2))  # a clear bend needs no averaging
        self._curv = c if self._curv is None else self._curv + weight * (c - self._curv)
        c = self._curv
        p_end = b + 2.0 * c * d
        if not (b > 0 and p_end > 0 and math.isfinite(c)):
            return period, last, 0.0
        slope = -5.0 * c / p_end**3  # d(60 / (24 p)) / dt = -2.5 / p^2 * dp/dx / p, dp/dx = d2y/dx2 = 2 c
        if abs(slope) < MIN_SLOPE:
            return period, last, 0.0
        return p_end, a + b * d + c * (d * d - m), slope

    def _fast_step(self, sigma: float, xs: list[int], ys: list[float]) -> bool:
        """A step seen in its first ticks: each of the last ``FAST_STEP_TICKS`` came further off the line fitted
        before it than the one before, on the same side, the last more than ``FAST_STEP_S`` and 6 sd of the fit
        off (5 % faster at 126 BPM: 1 ms more per tick). The long window is cut to those ticks (a one-beat fit
        sees a step only after ~20 ticks). Through an interface that scatters its ticks (0-4 ms) no run of four
        grows; there the window's likeliest kink (tempo_fit.hinge) tells it once it is ``HINGE_Z`` standard errors
        sure and at least ``HINGE_MIN`` of the period (5 %: 7-9 ticks after it, where a one-beat fit took 20-30).
        Not while a ramp is followed (its ticks drift off any line)."""
        r = list(self._resid)[-FAST_STEP_TICKS:]
        if self._cap < self.max_window or len(r) < FAST_STEP_TICKS or self._long_n <= self.short_window:
            return False
        grows = all(abs(b) > abs(a) and a * b > 0 for a, b in zip(r, r[1:], strict=False))
        if grows and abs(r[-1]) > max(FAST_STEP_S, 6.0 * sigma):
            inc = abs(r[-1] - r[-2])  # the ticks after it: each further off by about this (the first may be before)
            after = sum(1 for v in r if abs(v) >= 0.5 * inc)
        else:  # (the best kink may be 2 ticks back: no step yet)
            w = min(self._long_n, 2 * self.short_window)
            z, change, after = hinge(xs[-w:], ys[-w:], 2, self.short_window)
            if after < HINGE_AFTER or abs(z) < HINGE_Z or self._line is None or abs(change) < HINGE_MIN * self._line[2]:
                return False
        self._long_n, self._dev_count, self._drift_count = max(3, after), 0, 0
        self._resid.clear()
        self._fast, self._step_sigma = True, sigma  # (told from these few ticks on; the jitter before the step)
        self._step_from = self._line[2] if self._line is not None else 0.0  # the period before it
        return True

    def _follow(self, p_short: float, p_long: float, sigma: float, sigma_step: float) -> bool:
        """Two-speed follower: compare short and long fits; cut the long window on a step or a ramp.

        ``sigma`` is the residual spread of the short fit, used for ramps (the long fit's includes a ramp's
        curvature); steps use the larger ``sigma_step`` so that jitter alone rarely looks like a step."""
        n, ns = self._long_n, self.short_window
        if n <= ns or p_long <= 0:
            return False
        rel = (p_short - p_long) / p_long
        sd_rel = slope_se(sigma, ns) / p_long
        sign = 1 if rel > 0 else -1
        step_sd = slope_se(sigma_step, ns) / p_long
        self._dev_count = self._dev_count + 1 if abs(rel) > max(self.step_threshold, 4 * step_sd) else 0
        if abs(rel) > max(self.drift_threshold, 3 * sd_rel) and sign == self._drift_sign:
            self._drift_count += 1
        else:
            self._drift_count = 0
        self._drift_sign = sign
        self._history.append(p_long)
        if self._cap < self.max_window and len(self._history) == self._history.maxlen:
            change = abs(p_long - self._history[0]) / p_long  # tempo change over the last beat
            calm = change < max(0.0005, 2.5 * slope_se(sigma, n) / p_long)
            self._calm = self._calm + 1 if calm else 0
            if self._calm >= self.short_window:  # steady for a beat: the ramp has ended
                self._cap, self._calm = self.max_window, 0
        if self._dev_count >= self.step_ticks:
            self._long_n = self.step_ticks
        elif self._drift_count >= self.drift_ticks or self._bent >= RAMP_BENT_TICKS:
            self._cap = self._ramp_window()
            self._long_n = min(n, self._cap)
        else:
            return False
        self._dev_count = self._drift_count = self._bent = 0
        return True

    def _ramp_window(self) -> int:
        """Ticks a ramp is fitted over: two beats, four where the ticks scatter (a two-beat parabola through 0-4 ms of
        scatter reads a 0.5 BPM/s ramp as anything from 0 to 2 BPM/s, and its end long before it ends)."""
        p = self._line[2] if self._line is not None else 0.0
        return (4 if self._jitter > RAMP_WIDE_JITTER * p else 2) * self.short_window

    def _bend(self, xs: list[int], ys: list[float]) -> None:
        """Count the ticks in a row whose last beats bend one way (two beats' curvature; where the ticks scatter, six
        beats bending away from the line before a kink): a ramp seen sooner than by the short fit drifting from the
        long one, which takes a beat of drift after the drift shows."""
        m = self._ramp_window()
        self._z = z = curvature_z(xs[-m:], ys[-m:]) if len(xs) >= m else 0.0
        if self._cap < self.max_window or len(xs) < m:
            self._bent = 0
            return
        w = 3 * m // 2
        if m > 2 * self.short_window and len(xs) >= w:  # scattered ticks: the ramp's start, over six beats
            z = hinge(xs[-w:], ys[-w:], self.short_window // 2, w - self.short_window, power=2, every=3)[0]
        sign = 1 if z > 0 else -1
        # (not while the short fit is off the long one by a step's margin: a parabola through a step's kink
        # overshoots the new tempo)
        bends = abs(z) > RAMP_Z and self._dev_count == 0 and (self._bent == 0 or sign == self._bent_sign)
        self._bent = self._bent + 1 if bends else 0
        self._bent_sign = sign
