"""Where a ramping host's beats fall (generator.timeline.host_line)."""

from __future__ import annotations

import numpy as np
import pytest

from generator.timeline.host_line import HostLine, follow


def test_a_ramps_beats_come_sooner_and_sooner_until_the_horizon_then_the_tempo_holds():
    line = HostLine(10.0, 4.0, 120.0, slope=2.0, horizon_s=2.0)
    assert line.bpm_at(9.0) == 120.0 and line.bpm_at(11.0) == 122.0 and line.bpm_at(30.0) == 124.0
    # the beat is the tempo integrated: 2 s at a mean 122 BPM, then 124 BPM
    assert line.beat_at(12.0) == pytest.approx(4.0 + 2 * 122 / 60)
    assert line.beat_at(13.0) == pytest.approx(4.0 + 2 * 122 / 60 + 124 / 60)
    for t in np.linspace(8.0, 15.0, 29):
        assert line.time_of(line.beat_at(t)) == pytest.approx(t, abs=1e-9)


def test_each_beat_is_planned_at_the_tempo_that_takes_as_long_as_the_host_does():
    line = HostLine(0.0, 0.0, 126.0, slope=-1.6)
    plan = line.beat_tempos(1.0)
    assert 3 <= len(plan) <= 6 and [b for b, _ in plan] == [1.0 + k for k in range(len(plan))]
    for b, bpm in plan:
        assert 60.0 / bpm == pytest.approx(line.time_of(b + 1) - line.time_of(b), abs=1e-6)
    assert plan[-1][1] == pytest.approx(line.bpm_at(99.0), abs=0.1)  # the horizon reached: the tempo held there
    assert HostLine(0.0, 0.0, 126.0).beat_tempos(3.0) == [(3.0, 126.0)]  # no ramp: one tempo, exactly as stated


def test_a_slope_that_would_halve_the_tempo_within_the_horizon_is_limited():
    assert HostLine(0.0, 0.0, 60.0, slope=-500.0).slope == -15.0  # 60 BPM * 0.5 / 2 s
    assert HostLine(0.0, 0.0, 120.0, slope=float("nan")).slope == 0.0  # a broken estimate: no ramp, not the limit
    assert HostLine(0.0, 0.0, 120.0, slope=float("inf")).slope == 0.0
    with pytest.raises(ValueError, match="BPM"):
        HostLine(0.0, 0.0, 0.0)


def test_a_position_alone_follows_the_last_ramp_for_what_is_left_of_its_horizon():
    ramp = HostLine(10.0, 0.0, 120.0, slope=1.0)
    later = follow(ramp, 11.5, 3.0, None, 0.0, bpm_in_force=999.0)
    assert later.bpm == 121.5 and later.slope == 1.0 and later.horizon_s == pytest.approx(0.5)
    assert not follow(ramp, 13.0, 7.0, None, 0.0, 999.0).gliding  # past the horizon: no longer trusted
    held = follow(HostLine(10.0, 0.0, 120.0), 11.0, 2.0, None, 0.0, bpm_in_force=121.0)
    assert held.bpm == 121.0 and not held.gliding  # no ramp: the tempo in force
    assert follow(ramp, 12.0, 4.0, 125.0, -0.5, 0.0) == HostLine(12.0, 4.0, 125.0, -0.5)  # a new statement wins
