"""ClockTempoEstimator on tick streams stamped as JACK MIDI stamps them (each at the start of its period): the
count of ticks, and so the beat position, stays exact through lost ticks, the tempo steady, the phase centred."""

from __future__ import annotations

import numpy as np
import pytest

from bridge.tempo import PPQN, ClockTempoEstimator, arrival_quantum
from tests.bridge.clockstreams import jack_quantised, tick_times

BAR = 96


def index_errors(true_times: list[float], kept: list[int], stamps: list[float]) -> tuple[list[int], list]:
    """Feed stamps of the kept ticks; returns (estimated index - true index per tick, states)."""
    est = ClockTempoEstimator()
    idx, errs, states = -1, [], []
    for k, t in zip(kept, stamps, strict=True):
        s = est.feed(t)
        idx += s.advanced if idx >= 0 else 1
        errs.append(idx - k)
        states.append(s)
    return errs, states


@pytest.mark.parametrize("bpm", [96.0, 126.0, 140.0])
@pytest.mark.parametrize("seed", range(3))
def test_lost_ticks_are_counted_through_period_quantisation(bpm: float, seed: int) -> None:
    times = tick_times([bpm] * 24 * BAR, seed=seed)
    kept = [i for i in range(len(times)) if (i - 37) % 150]  # one tick in 150 lost
    stamps = jack_quantised([times[i] for i in kept], seed=seed)
    errs, states = index_errors(times, kept, stamps)
    assert errs[-1] == errs[3 * BAR]  # every tick lost after the first bars is counted (the position holds)
    assert max(abs(s.bpm - bpm) for s in states[2 * BAR:]) < 0.1


def test_xrun_late_periods_do_not_shift_the_count() -> None:
    times = tick_times([126.0] * 16 * BAR, seed=4)
    kept = list(range(len(times)))
    errs, states = index_errors(times, kept, jack_quantised(times, late_every=97, seed=4))
    assert abs(errs[-1] - errs[2 * BAR]) <= 1  # a late period may cost one tick, not one per xrun
    assert np.median([abs(s.bpm - 126.0) for s in states[2 * BAR:]]) < 0.1


def test_quantised_stamps_are_centred_on_the_tick() -> None:
    """A stamp is the start of its period, on average half a period early; the fitted tick times are not."""
    times = tick_times([126.0] * 8 * BAR, start=10.0)
    est = ClockTempoEstimator()
    fitted = [est.feed(t).tick_time for t in jack_quantised(times)]
    err_ms = (np.array(fitted[4 * BAR:]) - np.array(times[4 * BAR:])) * 1000
    assert abs(float(np.median(err_ms))) < 0.5 and float(np.percentile(np.abs(err_ms), 95)) < 1.5


def test_arrival_quantum_is_found_only_on_a_period_lattice() -> None:
    period = 512 / 44100
    stamps = jack_quantised(tick_times([126.0] * 48), period)
    assert arrival_quantum(np.diff(stamps)) == pytest.approx(period, abs=2e-4)
    jittered = tick_times([174.0] * 48, jitter_s=0.005, seed=3)
    assert arrival_quantum(np.diff(jittered)) == 0.0
    assert arrival_quantum(np.diff(tick_times([126.0] * 48))) == 0.0  # one interval value: nothing to tell


def test_a_tempo_step_is_still_followed_with_quantised_stamps() -> None:
    times = tick_times([120.0] * 4 * BAR + [140.0] * 4 * BAR)
    states = [ClockTempoEstimator()]
    est = states.pop()
    out = [est.feed(t) for t in jack_quantised(times)]
    assert out[-1].bpm == pytest.approx(140.0, abs=0.1)
    assert out[4 * BAR + 2 * PPQN].bpm == pytest.approx(140.0, rel=0.01)
