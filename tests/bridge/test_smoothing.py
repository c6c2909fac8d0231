"""CC smoothing as pure logic: a synthetic knob sweep through the CC mapper, glided by the smoother, sampled where
bar-quantised changes land (bridge.smoothing)."""

from __future__ import annotations

import math

import pytest

from bridge.ccmap import CCMapper
from bridge.controls import CCMapping, control_specs
from bridge.smoothing import ControlSmoother, Glide
from generator.runtime.preset import Condition

DENSITY = Condition("density", "curve", "notes/s", 0.5, 12.0, 4.0)


def knob_sweep(smoothing_ms: float, read_at: list[float]) -> tuple[list[float], list[float], ControlSmoother]:
    """CC 74 swept 0 -> 127 in 128 messages, 4 ms apart from t = 1 s (a fast turn of the knob), each mapped and
    handed to the smoother as the daemon does; the smoothed value is read at each of ``read_at`` (ascending) as
    the messages arrive. Returns (values read, the mapper's targets, the smoother)."""
    mapper = CCMapper([CCMapping("density", 1, 74, range=(1.0, 8.0), smoothing_ms=smoothing_ms)],
                      control_specs([DENSITY]))
    smoother, values, targets = ControlSmoother(), [], []
    for t in read_at:
        while len(targets) < 128 and 1.0 + len(targets) * 0.004 <= t:
            t_cc = 1.0 + len(targets) * 0.004
            [event] = mapper.handle_cc(1, 74, len(targets), t_cc)
            assert event.smoothing_ms == smoothing_ms
            smoother.set_target("density", event.value, t_cc, event.smoothing_ms, current=4.0)
            targets.append(event.value)
        values.append(smoother.value_at("density", t))
    return values, targets, smoother


MS = [1.0 + i * 0.001 for i in range(1200)]  # every millisecond from the first message on
T_LAST = 1.0 + 127 * 0.004


def test_a_smoothed_knob_sweep_glides_behind_the_hand_and_arrives_smoothing_ms_after_it_stops() -> None:
    path, targets, smoother = knob_sweep(500, MS)
    assert (targets[0], targets[-1]) == (1.0, 8.0)
    assert path[0] == pytest.approx(4.0, abs=0.01)  # starts from the control's value, not from the knob
    assert max(abs(b - a) for a, b in zip(path, path[1:], strict=False)) < 0.03  # no jump, 1 ms apart
    assert path[300] < targets[75] - 0.5  # 0.3 s in: the glide lags behind the hand
    assert smoother.value_at("density", T_LAST + 0.499) < 8.0 == smoother.value_at("density", T_LAST + 0.5)
    assert path[-1] == 8.0


def test_without_smoothing_the_value_follows_the_knob() -> None:
    path, targets, _ = knob_sweep(0, MS)
    assert path[300] == targets[75] and path[-1] == 8.0


def test_bar_lines_sample_the_glide_where_they_are_heard() -> None:
    smoother = ControlSmoother()
    glide = smoother.set_target("density", 12.0, 10.0, smoothing_ms=4000, current=4.0)
    bar_times = [10.7 + 2.0 * k for k in range(4)]  # 120 BPM, 4/4: a bar line every 2 s
    assert [glide.value_at(t) for t in bar_times] == pytest.approx([5.4, 9.4, 12.0, 12.0])
    again = smoother.set_target("density", 6.0, 12.0, smoothing_ms=1000)  # turned back mid-glide
    assert again.start == pytest.approx(8.0) and again.value_at(12.5) == pytest.approx(7.0)


def test_due_hands_out_each_glide_until_one_change_after_its_end() -> None:
    smoother = ControlSmoother()
    smoother.set_target("density", 12.0, 0.0, smoothing_ms=1000, current=4.0)
    smoother.set_target("variation", 1.0, 0.0, smoothing_ms=200, current=2.0)
    assert smoother.due(0.1) == ["density", "variation"]
    assert smoother.due(0.5) == ["density", "variation"]  # variation ended at 0.2: handed out one last time
    assert smoother.due(0.6) == ["density"]
    assert smoother.due(1.2) == ["density"] and smoother.due(1.3) == []
    smoother.set_target("density", 5.0, 2.0, smoothing_ms=500)
    assert smoother.due(2.1) == ["density"]
    smoother.cancel("density")
    assert smoother.due(2.2) == [] and math.isnan(smoother.value_at("density", 2.2))


def test_a_glide_is_linear_and_refuses_a_bad_time() -> None:
    g = Glide(0.0, 10.0, 1.0, 2.0)
    assert (g.value_at(0.0), g.value_at(2.0), g.value_at(3.0), g.end) == (0.0, 5.0, 10.0, 3.0)
    with pytest.raises(ValueError, match="smoothing_ms"):
        ControlSmoother().set_target("gain", 0.0, 0.0, smoothing_ms=-1.0)
    with pytest.raises(ValueError, match="smoothing_ms"):
        ControlSmoother().set_target("gain", 0.0, 0.0, smoothing_ms=math.nan)
