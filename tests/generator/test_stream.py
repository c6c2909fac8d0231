"""Scheduler mechanics on a tiny random-weight preset: bar keys, re-plans, flush, fades, live == offline."""

from __future__ import annotations

import numpy as np
import pytest

from generator.runtime.engine import Engine
from generator.timeline.control_log import ControlRecord, SessionHeader
from generator.timeline.stream import render_offline
from tests.simulated_stream import SR, SimulatedStream


@pytest.fixture(scope="module")
def engine(tiny_preset):
    return Engine.load(tiny_preset, threads=1)


@pytest.fixture(scope="module")
def plain(tiny_preset_plain):
    return Engine.load(tiny_preset_plain, threads=1)


def _header(engine, bpm=128.0):
    return SessionHeader(engine.preset.name, 3, bpm, (4, 4), SR, {})


def test_offline_is_deterministic_and_exactly_as_long_as_the_tempo_map(engine):
    recs = [ControlRecord(4.0, "control", "density", 8.0, "bar"), ControlRecord(6.0, "tempo", "bpm", 140.0)]
    a = render_offline(engine, _header(engine), recs, bars=3)
    b = render_offline(engine, _header(engine), recs, bars=3)
    assert a.dtype == np.float32 and np.array_equal(a, b)
    assert a.shape == (2, round((6 * 60 / 128 + 6 * 60 / 140) * SR))
    other = render_offline(engine, SessionHeader(engine.preset.name, 4, 128.0), recs, bars=3)
    assert not np.array_equal(a, other)
    xf = round(0.03 * SR)  # faded out over the last crossfade length
    assert np.abs(a[:, -20:]).max() < 0.05 * np.abs(a[:, -3 * xf : -xf]).max()


def test_replan_changes_audio_only_from_the_change_bar(engine):
    h = _header(engine)
    base = render_offline(engine, h, [], bars=3)
    changed = render_offline(engine, h, [ControlRecord(8.0, "control", "density", 10.0, "bar")], bars=3)
    bar2 = round(8 * 60 / 128 * SR)
    xf = round(0.03 * SR)
    np.testing.assert_array_equal(base[:, : bar2 - xf], changed[:, : bar2 - xf])
    assert not np.array_equal(base[:, bar2:], changed[:, bar2:])


def _Sim(engine, header, loader=None, **kw) -> SimulatedStream:
    return SimulatedStream(loader or engine, header, **kw)


def test_live_equals_offline_replay_of_its_log(engine):
    sim = _Sim(engine, _header(engine))
    sim.live.play(0.0)
    sim.tick(80)
    sim.live.set_control("density", 8.0)
    sim.tick(150)
    sim.live.set_control("variation", 1.0, quantise="now")
    sim.tick(100)
    sim.live.set_tempo(140.0)
    sim.tick(200)
    sim.live.stop()
    sim.tick(30)
    header, recs = sim.records()
    kinds = [(r.type, r.name) for r in recs]
    # the tempo step: a few beats slightly faster (catching up with the host, which went on at 140 from the beat
    # heard when it changed), then 140 BPM
    assert kinds == [("transport", "play"), ("control", "density"), ("control", "variation"), ("tempo", "bpm"),
                     ("tempo", "bpm"), ("control", "tempo"), ("transport", "stop")]
    density, now, nudge, tempo, cond = recs[1], recs[2], recs[3], recs[4], recs[5]
    assert density.beat % 4 == 0 and density.at < density.beat <= density.at + 4  # the next bar line
    assert now.beat - now.at <= 0.5 * 128 / 60  # "now": within half a second (mid-piece or on a beat)
    assert 140.0 < nudge.value <= 140.0 * 1.06 and tempo.value == 140.0 and tempo.beat > nudge.beat
    assert tempo.beat == int(tempo.beat) and cond.beat % 4 == 0 and cond.value == 140.0
    assert sim.live.late_ms[0] == 0.0  # the density change made its bar line
    assert sim.ring.underruns == 0
    live = sim.audio()
    off = render_offline(engine, header, recs)
    start = np.flatnonzero(np.any(live != 0, axis=0))[0]
    prep = round(sim.live.min_lookahead_s * SR)
    assert start >= prep
    np.testing.assert_array_equal(live[:, prep : prep + off.shape[1]], off)
    assert not np.any(live[:, prep + off.shape[1] :])  # silence after the stop fade
    tel = sim.live.telemetry()
    assert tel.state == "stopped" and tel.underruns == 0 and tel.rtf > 0 and tel.cond_bpm == 140.0


def test_locate_flushes_and_reanchors(engine):
    sim = _Sim(engine, _header(engine))
    sim.live.play(0.0)
    sim.tick(120)
    sim.live.locate(32.0)
    sim.tick(120)
    header, recs = sim.records()
    assert [(r.type, r.name) for r in recs] == [("transport", "play"), ("transport", "stop"), ("transport", "play")]
    assert recs[2].at == 32.0 and recs[2].beat > 32.0  # keyed to the beat at which it is heard
    assert sim.live.play_head_beat() > 32.0 and sim.live.telemetry().bar == int(sim.live.play_head_beat() // 4)
    assert sim.ring.flushed_frames > 0 and sim.ring.underruns == 0
    # the second run replays exactly
    off = render_offline(engine, header, recs, end_beat=recs[2].beat + 4)
    first = round((recs[1].beat - recs[0].beat) * 60 / 128 * SR)
    live = sim.audio()
    prep = round(sim.live.min_lookahead_s * SR)
    np.testing.assert_array_equal(live[:, prep : prep + first], off[:, :first])


def test_preset_switch_crossfades_at_the_next_bar(engine, plain):
    engines = {engine.preset.name: engine, plain.preset.name: plain}
    sim = _Sim(engine, _header(engine), loader=engines.__getitem__)
    sim.live.play(0.0)
    sim.tick(60)
    sim.live.set_preset(plain.preset.name)
    sim.tick(200)
    _, recs = sim.records()
    assert recs[1].type == "preset" and recs[1].beat % 4 == 0 and recs[1].value == "plain"
    assert sim.live.telemetry().preset == "plain" and sim.ring.underruns == 0


def test_bad_requests_are_counted_not_fatal(engine):
    sim = _Sim(engine, _header(engine))
    sim.live.play(0.0)
    sim.live.set_tempo(1000.0)
    sim.live.set_preset("no-such-preset")
    sim.tick(40)
    assert sim.live.errors == 2 and sim.live.telemetry().state == "playing"
