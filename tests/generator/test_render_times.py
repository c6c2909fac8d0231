"""The margin of a change and the look-ahead follow the render times of the preset that plays."""

from __future__ import annotations

import pytest

from generator.timeline.render_times import MARGIN_EXTRA_S, RenderTimes


def test_a_switch_back_from_a_light_preset_keeps_the_heavy_presets_margin() -> None:
    """Techno's pieces take 0.09 s (0.14 s an epoch's first), then piano's 16 pieces take 0.02 s: with one history
    the margin after switching back was piano's (0.06 s), too short for techno's re-render on a busy machine. Per
    preset it stays techno's."""
    times = RenderTimes()
    times.add("techno", 0.14, first_of_epoch=True)
    for _ in range(20):
        times.add("techno", 0.09, first_of_epoch=False)
    times.add("piano", 0.05, first_of_epoch=True)
    for _ in range(16):
        times.add("piano", 0.02, first_of_epoch=False)
    assert times.margin("techno", new_epoch=False, fallback_s=0.3) == pytest.approx(0.18 + MARGIN_EXTRA_S)
    assert times.margin("techno", new_epoch=True, fallback_s=0.3) == pytest.approx(0.28 + MARGIN_EXTRA_S)
    assert times.margin("piano", new_epoch=False, fallback_s=0.3) == pytest.approx(0.04 + MARGIN_EXTRA_S)
    assert times.worst() == pytest.approx(0.14)  # the look-ahead: the longest of any preset played lately


def test_a_preset_not_timed_yet_takes_the_longest_render_of_any_else_the_fallback() -> None:
    times = RenderTimes()
    assert times.margin("techno", new_epoch=False, fallback_s=0.3) == pytest.approx(0.3 + MARGIN_EXTRA_S)
    assert times.worst() is None
    times.add("techno", 0.1, first_of_epoch=False)
    assert times.margin("classical", new_epoch=True, fallback_s=0.3) == pytest.approx(0.2 + MARGIN_EXTRA_S)
