"""The margin of a change and the look-ahead follow the render times of the preset that plays."""

from __future__ import annotations

import pytest

from generator.timeline.render_times import CUT_MARGIN_MIN_S, MARGIN_EXTRA_S, RenderTimes


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


def test_a_cut_inside_a_piece_leaves_the_worker_at_least_the_floor() -> None:
    """A light preset whose pieces were all cheap so far (latents decoded before: 0.3 ms) would cut a host's tempo
    step in 21 ms ahead of the play head: a worker kept from its core that long on a busy machine runs the ring dry.
    A cut is never closer than CUT_MARGIN_MIN_S; a heavy preset's own margin stands where it is longer."""
    times = RenderTimes()
    for _ in range(8):
        times.add("tiny", 0.0003, first_of_epoch=False)
    assert times.margin("tiny", new_epoch=False, fallback_s=0.3) == pytest.approx(0.0006 + MARGIN_EXTRA_S)
    assert times.margin("tiny", new_epoch=False, fallback_s=0.3, cut=True) == CUT_MARGIN_MIN_S >= 0.1
    times.add("techno", 0.094, first_of_epoch=False)
    assert times.margin("techno", new_epoch=False, fallback_s=0.3, cut=True) == pytest.approx(0.188 + MARGIN_EXTRA_S)
