from __future__ import annotations

import pytest

from generator.timeline.control_log import ControlRecord, SessionHeader
from generator.timeline.cursor import phase_nudge
from generator.timeline.planner import BarGrid, Performance, PlanError, TempoTrack, bar_beats, pieces, quantise
from generator.timeline.telemetry import Telemetry, format_status


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
    t.set(6.0, 90.0)
    t.set(2.0, 100.0)  # a later record replaces what was planned after its beat (a phase nudge re-planned)
    assert t.changes == [(0.0, 120.0), (2.0, 100.0)]
    with pytest.raises(PlanError, match="before the run's start"):
        t.set(-1.0, 100.0)
    with pytest.raises(PlanError, match="20..400"):
        t.set(6.0, 1000.0)


def test_phase_nudge_catches_up_within_the_limit():
    host = lambda b: 10.0 + b * 60 / 120  # noqa: E731 (host plays beat b at this time)
    assert phase_nudge(8.0, host(8.0), host, 120.0) == (8.0, 120.0)  # on the grid already
    c1, bpm = phase_nudge(8.0, host(8.0) + 0.01, host, 120.0)  # 10 ms late: one beat 2 % faster
    assert c1 == 9.0 and host(9.0) == pytest.approx(host(8.0) + 0.01 + 60 / bpm)
    c1, bpm = phase_nudge(8.0, host(8.0) + 0.1, host, 120.0)  # 100 ms: more beats, within 6 %
    assert c1 > 9.0 and bpm <= 120.0 * 1.06 and host(c1) == pytest.approx(host(8.0) + 0.1 + (c1 - 8) * 60 / bpm)
    c1, bpm = phase_nudge(8.0, host(8.0) + 5.0, host, 120.0, max_beats=4)  # out of reach: clamped
    assert (c1, bpm) == (12.0, pytest.approx(120.0 * 1.06))
    c1, bpm = phase_nudge(8.0, host(8.0) + 0.01, host, 120.0, min_beats=4)  # a drift: spread over a bar
    assert c1 == 12.0 and bpm == pytest.approx(120.0 * 2.0 / (2.0 - 0.01))


def test_bar_grid_with_a_meter_change():
    g = BarGrid(4.0)
    g.set(8.0, 3.5)
    assert [g.floor(x) for x in (7.9, 8.0, 11.4, 11.5)] == [4.0, 8.0, 8.0, 11.5]
    assert g.next(4.0) == 8.0 and g.next(8.0) == 11.5 and g.index(11.6) == 3
    assert g.quantise(8.1, "bar", 0.0) == 11.5 and g.quantise(5.0, "phrase", 0.0, phrase_bars=2) == 8.0
    p = _perf(ControlRecord(8.0, "tempo", "meter", [7, 8]))
    run = p.runs[0]
    assert [(e.start_beat, e.bar, e.bar_origin) for e in run.epochs] == [(0.0, 4.0, 0.0), (8.0, 3.5, 8.0)]
    assert [x.start for x in pieces(run, 4.0, 16.0, 4.0)] == [4.0, 8.0, 11.5, 15.0]
    with pytest.raises(PlanError, match="meter 4/3"):
        p.apply(ControlRecord(12.0, "tempo", "meter", [4, 3]))


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
