"""Live timing against a simulated device: when each beat is heard, measured on the audio itself.

The device reads one period per tick at the simulated time t (sample i of the recording is read at i / SR and
heard LATENCY later). Where a run's first sample lands is found in the recording and checked bit for bit against
the offline replay of the control log, whose tempo map then gives the time every beat is heard."""

from __future__ import annotations

import numpy as np
import pytest

from bridge.audio.ring import AudioRing
from generator.runtime.engine import Engine
from generator.timeline.control_log import SessionHeader, parse_lines
from generator.timeline.host_line import HostLine
from generator.timeline.planner import Performance
from generator.timeline.playout import Playout
from generator.timeline.render_times import CUT_MARGIN_MIN_S
from generator.timeline.requests import Meter
from generator.timeline.stream import render_offline
from tests.simulated_stream import PERIOD, SR, SimulatedStream

LATENCY = 0.0116  # the sink's output latency (s)


@pytest.fixture(scope="module")
def engine(tiny_preset):
    return Engine.load(tiny_preset, threads=1)


class Sim(SimulatedStream):
    """The simulated stream with the sink's latency, and what the recording says about the runs it played."""

    def __init__(self, engine, bpm=128.0, meter=(4, 4), render_s=0.02):
        super().__init__(engine, SessionHeader(engine.preset.name, 3, bpm, meter, SR, {}), t0=1000.0,
                         render_s=render_s, output_latency_s=LATENCY)
        self.engine = engine

    def heard(self, index: float) -> float:
        """Host time at which recording sample `index` is heard."""
        return self.t0 + index / SR + LATENCY

    def runs(self):
        """[(run, recording index of its sample 0)], each run verified bit for bit against the offline replay."""
        header, recs = parse_lines(self.log.getvalue().splitlines())
        perf = Performance(header)
        for r in recs:
            perf.apply(r)
        live = self.audio()
        end = perf.runs[-1].start_beat + 4 if perf.runs[-1].end_beat is None else None
        off = render_offline(self.engine, header, recs, end_beat=end)
        out, pos, at = [], 0, 0
        for run in perf.runs:
            stop = run.end_beat if run.end_beat is not None else end
            n = run.tempo.sample_at(stop)
            nz = np.flatnonzero(np.any(live[:, at:] != 0, axis=0))
            k = at + int(nz[0])
            m = min(n, live.shape[1] - k) - 2 * self.live.renderer.xfade  # the live run's end fades elsewhere
            np.testing.assert_array_equal(live[:, k : k + m], off[:, pos : pos + m])
            out.append((run, k))
            pos += n
            at = k + n
        return out


def test_a_busy_worker_does_not_shift_the_run(engine):
    sim = Sim(engine)
    sim.tick(10)
    t_play = sim.t
    sim.live.play(0.0, at_time=t_play, now=t_play)
    sim.tick(20, busy=True)  # the worker is rendering something else for 230 ms
    sim.tick(100)
    [(run, k)] = sim.runs()
    # the run's first sample is heard exactly when the host is at the run's start beat
    assert sim.heard(k) == pytest.approx(t_play + run.start_beat * 60 / 128, abs=2 / SR)
    assert sim.ring.underruns == 0


def test_the_run_is_anchored_to_the_devices_period_not_to_when_the_worker_wakes(engine):
    sim = Sim(engine)
    sim.tick(10)  # the device's last read was at sim.t - PERIOD / SR
    t_play = sim.t - PERIOD / SR + 0.004
    sim.live.play(0.0, at_time=t_play, now=t_play)
    sim.live.step(now=t_play + 0.003)  # the worker wakes up 7 ms after the read, 4.6 ms before the next
    sim.tick(100)
    [(run, k)] = sim.runs()
    assert sim.heard(k) == pytest.approx(t_play + run.start_beat * 60 / 128, abs=2 / SR)


def test_a_jump_is_heard_on_the_hosts_beat(engine):
    sim = Sim(engine)
    sim.live.play(0.0)
    sim.tick(120)
    t_jump = sim.t
    sim.live.locate(32.0, at_time=t_jump, now=t_jump)
    sim.tick(100)
    (_, _), (run, k) = sim.runs()
    assert run.start_beat > 32.0
    assert sim.heard(k) == pytest.approx(t_jump + (run.start_beat - 32.0) * 60 / 128, abs=2 / SR)
    assert sim.ring.flushed_frames > 0 and sim.ring.underruns == 0


@pytest.mark.parametrize("host_bpm", [120.0, 128.0])
def test_a_join_starts_the_hosts_run_on_its_bar_line_without_a_gap(engine, host_bpm):
    sim = Sim(engine)
    sim.live.play(0.0)
    sim.tick(150)
    t_host = sim.t  # another clock takes over: its beat 1.3 is now, off this run's grid
    sim.live.join(1.3, host_bpm, at_time=t_host, now=t_host)
    assert not sim.live.joining  # (a request; the worker has not seen it yet)
    sim.tick(1)
    assert sim.live.joining
    sim.tick(300)
    assert not sim.live.joining
    (first, k1), (run, k2) = sim.runs()
    assert run.joined and run.start_beat == 4.0  # the host's first bar line that could be rendered in time
    assert sim.heard(k2) == pytest.approx(t_host + (4.0 - 1.3) * 60 / host_bpm, abs=2 / SR)  # heard on it
    assert k2 == k1 + first.tempo.sample_at(first.end_beat)  # one run straight after the other
    header, recs = parse_lines(sim.log.getvalue().splitlines())
    off = render_offline(engine, header, recs, end_beat=run.start_beat + 4)
    live, n = sim.audio()[:, k1:], k2 - k1 + SR // 2
    np.testing.assert_array_equal(live[:, :n], off[:, :n])  # the crossfade too: the replay plays the join alike
    level = np.sqrt(np.mean(np.square(live[:, : n // 441 * 441].reshape(2, -1, 441)), axis=(0, 2)))
    assert level.min() > 0.05 * np.median(level)  # no gap: every 10 ms has sound
    assert sim.ring.underruns == 0


def test_a_stopped_hosts_tempo_waits_for_its_start(engine):
    """A host that takes over while stopped: the run plays on to its next bar line at its own tempo and stops there.
    The tempos the host states meanwhile (a MIDI clock's first beat read 112-123 BPM at 120) are for its Start, not
    a bend of the last bar at each reading; the run started by the Start plays at the last of them."""
    sim = Sim(engine)
    sim.live.play(0.0)
    sim.tick(60)
    sim.live.stop_at_bar(now=sim.t)
    for bpm in (122.4, 118.3, 114.8, 120.7, 117.6):
        sim.live.set_tempo(bpm, now=sim.t)
        sim.tick(2)
    sim.tick(150)
    assert sim.live.perf.current is None and sim.live.perf.bpm == 117.6
    sim.live.play(0.0, at_time=sim.t, now=sim.t)
    sim.tick(100)
    (last, _), (run, _) = sim.runs()
    assert last.tempo.changes == [(last.start_beat, 128.0)] and last.end_beat % 4 == 0
    assert run.tempo.changes == [(run.start_beat, 117.6)]
    assert sim.ring.underruns == 0


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -5.0, 0.0, 1000.0])
def test_a_tempo_out_of_range_is_refused_and_changes_nothing(engine, bad):
    """Counted and logged, playing or in a bar stop, and nothing changes: a NaN while playing stopped the render
    worker; kept for a Start, it left the stream stopped for good (every later play refused)."""
    sim = Sim(engine)
    sim.live.play(0.0)
    sim.tick(60)
    sim.live.set_tempo(bad, now=sim.t)
    sim.tick(5)
    sim.live.stop_at_bar(now=sim.t)
    sim.live.set_tempo(bad, now=sim.t)
    sim.live.join(0.0, bad, at_time=sim.t, now=sim.t)
    sim.tick(150)
    sim.live.play(0.0, at_time=sim.t, now=sim.t)
    sim.tick(100)
    assert sim.live.errors == 3 and sim.live.perf.bpm == 128.0 and sim.live.telemetry().state == "playing"
    assert len(sim.runs()) == 2 and sim.ring.underruns == 0


@pytest.mark.parametrize("ticks", [140, 170, 180])
def test_a_tempo_step_is_caught_up_from_inside_a_beat(engine, ticks):
    """A host's tempo step (5 %) is followed from the soonest point the re-render allows, not from the next piece
    boundary after it: each beat waited there plays 5 % off the host (23 ms at 126 BPM). Never closer to the play
    head than CUT_MARGIN_MIN_S, though: the re-render from the cut must be done before the reader gets there."""
    sim = Sim(engine, bpm=126.0)
    t_play = sim.t
    sim.live.play(0.0, at_time=t_play, now=t_play)
    sim.tick(ticks)
    t_step = sim.t
    margin = sim.live._margin(False, cut=True)
    boundary = sim.live.cur.earliest(sim.live._margin(False))  # where the change started before
    sim.live.set_tempo(132.3, now=t_step, beat=(t_step - t_play) * 126 / 60, at_time=t_step)
    sim.tick(250)
    [(run, k)] = sim.runs()
    first = run.tempo.changes[1][0]
    assert first < boundary - 0.05
    heard = sim.heard(k + run.tempo.sample_at(first)) - t_step
    assert CUT_MARGIN_MIN_S <= heard < margin + sim.live.renderer.xfade / SR + 0.02
    assert sim.ring.underruns == 0


@pytest.mark.parametrize("anchor", ["host", "heard"])
def test_tempo_step_follows_the_host_from_its_beat(engine, anchor):
    sim = Sim(engine)
    t_play = sim.t
    sim.live.play(0.0, at_time=t_play, now=t_play)
    sim.tick(180)
    t_step = sim.t
    host_beat = (t_step - t_play) * 128 / 60  # the host switches to 140 BPM at this beat
    if anchor == "host":
        sim.live.set_tempo(140.0, now=t_step, beat=host_beat, at_time=t_step)
    else:  # no position given: the host is taken to be at the beat heard now
        sim.live.set_tempo(140.0, now=t_step)
    sim.tick(250)
    [(run, k)] = sim.runs()
    changes = run.tempo.changes
    # back on the grid within the two bars the catch-up may take (how soon depends on the measured render time of a
    # piece, i.e. on the machine's load: typically within one)
    assert changes[-1][1] == 140.0 and changes[-1][0] - host_beat <= 8.0
    # from there on, every beat is heard when the host plays it
    beats = np.arange(np.ceil(changes[-1][0]), np.ceil(changes[-1][0]) + 8)
    heard = np.array([sim.heard(k + run.tempo.sample_at(b)) for b in beats])
    host = t_step + (beats - host_beat) * 60 / 140
    assert np.abs(heard - host).max() < 0.5e-3
    assert sim.ring.underruns == 0


def test_a_host_tempo_ramp_plays_on_what_is_rendered_and_lands_on_the_grid(engine):
    """A host gliding 128 -> 131.2 BPM in 0.4 BPM steps (as a Link peer's ramp arrives): each step starts where
    rendering is, so nothing rendered is thrown away (re-rendering the look-ahead at every step ran the daemon dry),
    and once the host holds still every beat is heard when it plays it."""
    sim = Sim(engine)
    sim.live.min_lookahead_s = 0.5
    t_play = sim.t
    sim.live.play(0.0, at_time=t_play, now=t_play)
    sim.tick(150)
    host_t, host_beat, bpm = sim.t, (sim.t - t_play) * 128 / 60, 128.0
    for _ in range(8):
        sim.tick(35)  # 0.4 s
        host_beat += (sim.t - host_t) * bpm / 60
        host_t, bpm = sim.t, bpm + 0.4
        rendered, before = sim.live.cur.beat, list(sim.live.perf.current.tempo.changes)
        sim.live.set_tempo(bpm, now=sim.t, beat=host_beat, at_time=sim.t)
        sim.tick(1)
        new = [c for c in sim.live.perf.current.tempo.changes if c not in before]
        assert new and all(b >= rendered - 1e-6 for b, _v in new)  # from where rendering was, nothing redone
    sim.tick(400)
    [(run, k)] = sim.runs()
    b1 = run.tempo.changes[-1][0]
    assert run.tempo.changes[-1][1] == pytest.approx(131.2)
    beats = np.arange(np.ceil(b1), np.ceil(b1) + 8)
    heard = np.array([sim.heard(k + run.tempo.sample_at(b)) for b in beats])
    assert np.abs(heard - (host_t + (beats - host_beat) * 60 / bpm)).max() < 0.5e-3
    assert sim.ring.underruns == 0


def _glide(engine, stated_slope: bool) -> float:
    """A host gliding 128 -> 136 BPM over 5 s, its tempo stated every 0.3 BPM and its position on every beat, as a
    MIDI clock or the JACK transport state them; -> the largest |heard - host| (ms) of the beats heard during and
    just after the ramp."""
    sim = Sim(engine)
    sim.live.min_lookahead_s = 0.5
    t_play = sim.t
    sim.live.play(0.0, at_time=t_play, now=t_play)
    sim.tick(150)
    t_r = sim.t
    host = HostLine(t_r, (t_r - t_play) * 128 / 60, 128.0, 1.6, horizon_s=5.0)  # the host's own beats
    stated, beat_stated = 128.0, np.floor(host.b0)
    for _ in range(round(7.0 * SR / PERIOD)):
        bpm, beat = host.bpm_at(sim.t), host.beat_at(sim.t)
        ramping = sim.t < t_r + 5.0
        if abs(bpm - stated) >= 0.3 or (not ramping and stated != bpm):
            stated = bpm
            sim.live.set_tempo(bpm, now=sim.t, beat=beat, at_time=sim.t, slope=1.6 if ramping and stated_slope else 0)
        elif np.floor(beat) > beat_stated:
            sim.live.sync(np.floor(beat), host.time_of(np.floor(beat)), now=sim.t)
        beat_stated = max(beat_stated, np.floor(beat))
        sim.tick(1)
    sim.tick(100)
    [(run, k)] = sim.runs()
    beats = np.arange(np.ceil(host.b0) + 2, np.floor(host.beat_at(t_r + 6.5)))
    heard = np.array([sim.heard(k + run.tempo.sample_at(b)) for b in beats])
    assert sim.ring.underruns == 0
    return float(np.abs(heard - np.array([host.time_of(b) for b in beats])).max() * 1000)


def test_beats_planned_ahead_follow_a_host_ramp_when_its_slope_is_stated(engine):
    """Audio rendered now is heard later, when a ramping host has moved on: with the ramp's slope the beats planned
    ahead land where the host plays them; at a constant tempo they drift off by the ramp's curvature."""
    with_slope, without = _glide(engine, True), _glide(engine, False)
    assert with_slope < 3.0
    assert without > 2 * with_slope  # (the scenario is one the slope matters in)


def test_phase_correction_without_a_tempo_change(engine):
    """A host position 20 ms ahead of what is heard: the stream catches up within a few beats."""
    sim = Sim(engine)
    t_play = sim.t
    sim.live.play(0.0, at_time=t_play, now=t_play)
    sim.tick(150)
    t = sim.t
    host_beat = (t - t_play) * 128 / 60 + 0.020 * 128 / 60
    sim.live.set_tempo(128.0, now=t, beat=host_beat, at_time=t)
    sim.tick(200)
    [(run, k)] = sim.runs()
    (b0, nudge), (b1, bpm) = run.tempo.changes[-2:]
    assert bpm == 128.0 and 128.0 < nudge <= 128.0 * 1.06
    beats = np.arange(b1, b1 + 4)
    heard = np.array([sim.heard(k + run.tempo.sample_at(b)) for b in beats])
    assert np.abs(heard - (t + (beats - host_beat) * 60 / 128)).max() < 0.5e-3


def test_changes_land_soon_after_the_play_head_even_with_a_deep_look_ahead(engine):
    sim = Sim(engine)
    sim.live.min_lookahead_s = 2.0  # a slow machine: two seconds rendered ahead
    sim.live.play(0.0)
    sim.tick(250)
    sim.live.set_control("density", 8.0, quantise="now")
    sim.tick(5)
    sim.live.set_control("density", 2.0)  # the next bar line after the play head, not after the render position
    sim.tick(100)
    header, recs = parse_lines(sim.log.getvalue().splitlines())
    now, bar = recs[1], recs[2]
    assert now.beat - now.at < 0.5 * 128 / 60  # within half a second, though 2 s were rendered ahead
    assert sim.live.latencies_ms[0] < 500
    assert bar.beat == np.ceil(bar.at / 4) * 4
    assert sim.live.late_ms[-1] == 0.0 and sim.ring.underruns == 0  # the bar change made its bar line
    sim.runs()  # and it still replays bit for bit


def test_changes_right_after_play_before_anything_is_heard(engine):
    sim = Sim(engine)
    sim.live.play(0.0)
    sim.tick(3)
    sim.live.set_control("density", 8.0, quantise="now")
    sim.live.set_tempo(132.0)
    sim.tick(200)
    _, recs = parse_lines(sim.log.getvalue().splitlines())
    assert [r.type for r in recs][:3] == ["transport", "control", "tempo"] and recs[1].beat == recs[0].beat
    assert sim.live.errors == 0 and sim.ring.underruns == 0
    sim.runs()


def test_meter_change_at_the_next_bar(engine):
    sim = Sim(engine)
    sim.live.play(0.0)
    sim.tick(100)
    sim.live.set_meter(7, 8)
    sim.tick(250)  # past the meter change
    sim.live.set_control("density", 8.0)
    sim.tick(200)
    header, recs = parse_lines(sim.log.getvalue().splitlines())
    meter, density = recs[1], recs[2]
    assert (meter.type, meter.name, list(meter.value)) == ("tempo", "meter", [7, 8])
    assert meter.beat % 4 == 0 and meter.at < meter.beat <= meter.at + 4
    assert (density.beat - meter.beat) % 3.5 == 0 and density.beat > density.at > meter.beat
    tel = sim.live.telemetry()
    head = sim.live.play_head_beat()
    assert tel.bar == meter.beat // 4 + int((head - meter.beat) // 3.5)
    assert tel.beat == pytest.approx((head - meter.beat) % 3.5)
    [(run, _)] = sim.runs()
    assert [e.bar for e in run.epochs] == [4.0, 3.5, 3.5]
    with pytest.raises(Exception, match="meter 4/3"):
        sim.live._meter(Meter(4, 3), now=sim.t)


class _EagerReaderRing(AudioRing):
    """A ring whose reader takes a 512-frame period before every producer step (write, flush, take back): the
    device's callback may run between any two of them."""

    def __init__(self, frames: int) -> None:
        super().__init__(frames)
        self.heard: list[np.ndarray] = []

    def _period(self) -> None:
        out = np.zeros((2, 512), np.float32)
        self.read_into(out, channels_first=True)
        self.heard.append(out[0].copy())

    def write(self, block: np.ndarray) -> int:
        self._period()
        return super().write(block)

    def flush(self) -> int:
        self._period()
        return super().flush()

    def retract(self, frames: int) -> bool:
        self._period()
        return super().retract(frames)


def test_a_rewind_never_leaves_the_reader_short():
    """A tempo change re-renders from a point ahead of the play head. Flushing the ring and writing back what
    comes before that point let the device's callback find it empty in between: one period of silence (the JACK
    soak's underruns at the host's tempo changes). What stays queued stays queued."""
    ring = _EagerReaderRing(SR)
    p = Playout(ring, SR)
    p.write(np.arange(8000, dtype=np.float32)[None].repeat(2, 0))  # the reader takes 0-511 first
    assert p.rewind(6000) == 6000
    p.write(np.full((2, 2000), -1.0, np.float32))
    while ring.depth_frames >= 512:
        ring._period()
    heard = np.concatenate(ring.heard)[512:]  # (the first period came before anything was written)
    assert ring.underruns == 0
    np.testing.assert_array_equal(heard[:6000], np.arange(6000, dtype=np.float32))
    assert (heard[6000:7680] == -1.0).all()


def test_playout_rewind_keeps_what_was_read():
    ring = AudioRing(SR)
    p = Playout(ring, SR, latency_s=0.01)
    p.write(np.ones((2, 1000), np.float32))
    p.write(np.full((2, 1000), 2.0, np.float32))
    assert p.heard_at(1000, now=5.0) == pytest.approx(5.0 + 1000 / SR + 0.01)  # no device progress noted yet
    p.observe(4.990)
    out = np.zeros((2, 600), np.float32)
    ring.read_into(out, channels_first=True)  # the device takes 600 frames right after 4.990
    # ... so it takes the next ones 600 / SR later, whenever the worker looks (the head alone would say "now")
    assert p.head() == 600 and p.heard_at(1000, now=5.0) == pytest.approx(4.990 + 1000 / SR + 0.01)
    assert p.index_heard_at(4.990 + 1000 / SR + 0.01, now=5.0) == pytest.approx(1000)
    assert p.rewind(500) == 2000  # already read: refused, nothing lost
    assert p.rewind(1500) == 1500 and p.end == 1500 and ring.depth_frames == 900
    p.write(np.full((2, 100), 3.0, np.float32))
    rest = np.zeros((2, 1000), np.float32)
    assert ring.read_into(rest, channels_first=True) == 1000
    assert rest[0, 399] == 1.0 and rest[0, 400] == 2.0 and rest[0, 899] == 2.0 and rest[0, 900] == 3.0
    assert p.slice(1400, 1600)[0, -1] == 3.0 and p.slice(0, 10) is not None and p.slice(1500, 1700) is None
