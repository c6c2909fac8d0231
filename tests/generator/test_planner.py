from __future__ import annotations

import pytest

from generator.control_log import ControlRecord, SessionHeader
from generator.planner import Performance, PlanError, TempoTrack, bar_beats, pieces, quantise
from generator.telemetry import Telemetry, format_status


def test_bar_beats_and_bad_meter():
    assert bar_beats((4, 4)) == 4 and bar_beats((6, 8)) == 3 and bar_beats((7, 8)) == 3.5
    with pytest.raises(PlanError, match="meter 4/3"):
        bar_beats((4, 3))


@pytest.mark.parametrize(("arrival", "mode", "earliest", "want"), [
    (5.3, "bar", 0.0, 8.0), (8.0, "bar", 0.0, 8.0), (5.3, "bar", 8.5, 12.0),
    (5.3, "now", 6.25, 6.25), (5.3, "now", 0.0, 5.3), (5.3, "phrase", 0.0, 32.0),
])
def test_quantise(arrival, mode, earliest, want):
    assert quantise(arrival, mode, 4.0, earliest) == pytest.approx(want)


def test_quantise_refuses_unknown_mode():
    with pytest.raises(PlanError, match="'beat' is not valid"):
        quantise(1.0, "beat", 4.0, 0.0)


def test_tempo_track_maps_beats_to_samples_and_back():
    t = TempoTrack(0.0, 120.0, 44100)
    t.set(4.0, 60.0)
    assert t.sample_at(4.0) == 88200 and t.sample_at(5.0) == 88200 + 44100
    assert t.beat_at(88200 + 22050) == pytest.approx(4.5)
    assert t.bpm_at(3.9) == 120.0 and t.bpm_at(4.0) == 60.0
    with pytest.raises(PlanError, match="before the last"):
        t.set(2.0, 100.0)
    with pytest.raises(PlanError, match="20..400"):
        t.set(6.0, 1000.0)


def _perf(*records):
    p = Performance(SessionHeader("techno", 1, 128.0, (4, 4)))
    p.apply(ControlRecord(0.0, "transport", "play", 0.0))
    for r in records:
        p.apply(r)
    return p


def test_changes_start_epochs_and_pieces_cut_at_bars_epochs_and_tempo():
    p = _perf(ControlRecord(8.0, "control", "density", 8.0, "bar"),
              ControlRecord(10.0, "tempo", "bpm", 140.0),
              ControlRecord(13.5, "control", "variation", 1.0, "now"))
    run = p.runs[0]
    assert [e.start_beat for e in run.epochs] == [0.0, 8.0, 13.5]
    assert run.epochs[1].value("density") == 8.0 and run.epochs[2].value("density") == 8.0
    assert run.epochs[0].coord_step < run.epochs[1].coord_step < run.epochs[2].coord_step
    ps = list(pieces(run, 0.0, 16.0, 4.0))
    assert [x.start for x in ps] == [0.0, 4.0, 8.0, 10.0, 12.0, 13.5]
    assert all(a.s1 == b.s0 for a, b in zip(ps[:-1], ps[1:], strict=True))
    assert ps[0].first and not ps[1].first and ps[3].bpm == 140.0 and ps[5].epoch == run.epochs[2]
    beats = list(pieces(run, 0.0, 8.0, 4.0, max_beats=1.0))
    assert [x.start for x in beats] == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]


def test_short_pieces_merge():
    p = _perf(ControlRecord(4.001, "control", "density", 8.0, "now"))
    ps = list(pieces(p.runs[0], 0.0, 8.0, 4.0, min_samples=1000))
    assert [x.start for x in ps] == [0.0, 4.0]  # 4.001 is 20 samples after the bar line


def test_gain_is_not_a_new_epoch_but_a_cut():
    p = _perf(ControlRecord(6.0, "control", "gain", -6.0, "now"))
    run = p.runs[0]
    assert len(run.epochs) == 1
    ps = list(pieces(run, 4.0, 8.0, 4.0))
    assert [(x.start, x.gain_db) for x in ps] == [(4.0, 0.0), (6.0, -6.0)]


def test_transport_opens_and_closes_runs():
    p = _perf(ControlRecord(7.0, "transport", "stop"),
              ControlRecord(7.0, "transport", "continue"),
              ControlRecord(9.0, "transport", "locate", 32.0),
              ControlRecord(40.0, "control", "tempo", 150.0, "bar"))
    assert [(r.start_beat, r.end_beat) for r in p.runs] == [(0.0, 7.0), (7.0, 9.0), (32.0, None)]
    assert p.runs[2].epochs[-1].value("tempo") == 150.0
    with pytest.raises(PlanError, match="before its run"):
        p.apply(ControlRecord(20.0, "control", "density", 2.0, "now"))


def test_same_beat_changes_make_one_epoch_and_runs_keep_coordinates_by_beat():
    p = _perf(ControlRecord(8.0, "control", "density", 8.0, "bar"), ControlRecord(8.0, "seed", "seed", 9, "bar"))
    assert len(p.runs[0].epochs) == 2 and p.runs[0].epochs[1].seed == 9
    q = _perf(ControlRecord(8.0, "seed", "seed", 9, "bar"))
    assert p.runs[0].epochs[1].coord_step == q.runs[0].epochs[1].coord_step


def test_status_line():
    line = format_status(Telemetry(state="playing", bpm=128.0, bar=3, beat=2.5, rtf=0.3, preset="techno"))
    assert line.startswith("playing 128.0 bpm") and "4.3" in line and "rtf 0.30" in line and "phase --" in line
