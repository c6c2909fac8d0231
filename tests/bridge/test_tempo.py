"""ClockTempoEstimator on synthesised tick streams: jitter, drops, doubles, steps, ramps, garbage."""

from __future__ import annotations

import math
import random

import pytest

from bridge.tempo import ClockTempoEstimator, TempoHysteresis
from tests.bridge.clockstreams import double, drop, ramp, tick_times

BAR = 96  # ticks in a 4/4 bar


def run(times: list[float], est: ClockTempoEstimator | None = None) -> list:
    est = est or ClockTempoEstimator()
    return [est.feed(t) for t in times]


@pytest.mark.parametrize("bpm", [60.0, 120.0, 125.0, 174.0])
@pytest.mark.parametrize("seed", range(5))
def test_steady_tempo_with_1ms_jitter_within_0_1_bpm_after_one_bar(bpm: float, seed: int) -> None:
    states = run(tick_times([bpm] * 3 * BAR, jitter_s=0.001, seed=seed))
    for s in states[BAR:]:
        assert s.bpm == pytest.approx(bpm, abs=0.1)
        assert s.confidence > 0.9
    assert all(s.advanced == 1 for s in states)


@pytest.mark.parametrize("seed", range(5))
def test_steady_tempo_with_5ms_jitter(seed: int) -> None:
    # +-5 ms uniform jitter is sd 2.9 ms; one bar of it limits any line fit to sd 0.06 BPM at 120 (0.13 at 174),
    # so +-0.1 BPM needs a longer window: the estimator grows it to four bars while the tempo holds.
    for bpm in (120.0, 174.0):
        states = run(tick_times([bpm] * 8 * BAR, jitter_s=0.005, seed=seed))
        assert all(abs(s.bpm - bpm) < 0.35 for s in states[BAR:])
        assert all(abs(s.bpm - bpm) < 0.1 for s in states[4 * BAR:])
        assert not any(s.step for s in states[BAR:])
        assert 1.0 < states[-1].jitter_ms < 5.0


def test_perfect_clock_is_exact_and_fully_confident() -> None:
    s = run(tick_times([128.0] * BAR))[-1]
    assert s.bpm == pytest.approx(128.0, abs=1e-6)
    assert s.confidence == pytest.approx(1.0)
    assert s.bpm_error < 1e-6


@pytest.mark.parametrize("seed", range(3))
def test_dropped_ticks_do_not_bias_tempo(seed: int) -> None:
    times = drop(tick_times([120.0] * 3 * BAR, jitter_s=0.001, seed=seed), every=17)
    states = run(times)
    assert sum(s.advanced for s in states) == 3 * BAR  # every lost tick is counted back in
    assert [s.note for s in states].count("lost") == len(range(7, 3 * BAR, 17))
    for s in states[BAR:]:
        assert s.bpm == pytest.approx(120.0, abs=0.1)


@pytest.mark.parametrize("seed", range(3))
def test_doubled_ticks_are_dropped(seed: int) -> None:
    times = double(tick_times([174.0] * 3 * BAR, jitter_s=0.001, seed=seed), every=19)
    states = run(times)
    dups = [s for s in states if s.advanced == 0]
    assert len(dups) == len(range(5, 3 * BAR, 19))
    assert sum(s.advanced for s in states) == 3 * BAR
    for s in states[-2 * BAR:]:
        assert s.bpm == pytest.approx(174.0, abs=0.1)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("b0,b1", [(120.0, 174.0), (174.0, 120.0), (120.0, 128.0)])
def test_tempo_step_followed_within_one_beat(seed: int, b0: float, b1: float) -> None:
    states = run(tick_times([b0] * 2 * BAR + [b1] * 2 * BAR, jitter_s=0.001, seed=seed))
    assert any(s.step for s in states[2 * BAR: 2 * BAR + 24])
    assert states[2 * BAR + 24].bpm == pytest.approx(b1, rel=0.005)  # one beat after the step
    for s in states[3 * BAR + 24:]:  # one bar after that: back to steady precision
        assert s.bpm == pytest.approx(b1, abs=0.1)


def test_tempo_step_with_5ms_jitter() -> None:
    states = run(tick_times([120.0] * 2 * BAR + [174.0] * 2 * BAR, jitter_s=0.005, seed=3))
    assert states[2 * BAR + 24].bpm == pytest.approx(174.0, rel=0.03)
    assert states[-1].bpm == pytest.approx(174.0, abs=0.3)


@pytest.mark.parametrize("jitter", [0.0, 0.001])
def test_ramp_is_followed(jitter: float) -> None:
    bpms = [120.0] * BAR + ramp(120.0, 140.0, 16 * BAR) + [140.0] * 2 * BAR
    states = run(tick_times(bpms, jitter_s=jitter, seed=1))
    ramp_part = range(3 * BAR, 17 * BAR)
    assert max(abs(states[i].bpm - bpms[i]) for i in ramp_part) < 0.5  # the lag of a two-beat window
    assert states[-1].bpm == pytest.approx(140.0, abs=0.1)


def test_pause_restarts_and_clock_flood_reports_no_tempo() -> None:
    est = ClockTempoEstimator()
    run(tick_times([120.0] * BAR), est)
    s = est.feed(200.0)  # ~97 s later
    assert s.note == "gap" and s.bpm is None
    for i in range(200):  # 10 kHz
        s = est.feed(200.0 + i * 1e-4)
    assert s.bpm is None and s.confidence == 0.0


def test_garbage_timestamps_never_crash() -> None:
    rng = random.Random(7)
    est = ClockTempoEstimator()
    t = 0.0
    for _ in range(3000):
        t += rng.choice([0.0, 1e-6, 0.02, 0.02, 0.02, 0.5, 5.0, -0.01, rng.uniform(-1, 1)])
        s = est.feed(t)
        assert s.bpm is None or (20.0 <= s.bpm <= 300.0 and math.isfinite(s.bpm))
        assert 0.0 <= s.confidence <= 1.0


def test_hysteresis() -> None:
    h = TempoHysteresis(threshold_bpm=0.3)
    assert h.update(120.0) == 120.0
    assert h.update(120.2) is None
    assert h.update(120.2, at_bar=True) == 120.2
    assert h.update(120.45) is None
    assert h.update(120.6) == 120.6
    assert h.update(120.65, step=True) == 120.65
    assert h.update(None) is None


def test_bad_constructor_arguments() -> None:
    with pytest.raises(ValueError, match="short_window"):
        ClockTempoEstimator(short_window=2)
    with pytest.raises(ValueError, match="min_bpm"):
        ClockTempoEstimator(min_bpm=300, max_bpm=20)
