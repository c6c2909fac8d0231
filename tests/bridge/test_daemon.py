"""The daemon core with a real LiveStream (tiny preset) and a fake clock: events reach the stream through the
sync arbiter, the stream adopts a new source's state, falls back to the internal clock when the source goes
silent, and bad input is counted without stopping anything. The control log is the observable."""

from __future__ import annotations

import asyncio
import io
import json
import logging

import numpy as np
import pytest

from bridge.audio import AudioRing
from bridge.controls import control_specs
from bridge.daemon import DaemonCore
from bridge.events import (
    BadInput,
    ControlEvent,
    LearnEvent,
    PositionEvent,
    PresetEvent,
    SyncSourceEvent,
    TempoEvent,
    TransportEvent,
)
from bridge.logs import NOTICE
from bridge.ports import DaemonPorts
from generator.runtime.engine import Engine
from generator.timeline.control_log import ControlLogWriter, SessionHeader
from generator.timeline.live import LiveStream

SR = 44100


class Rig:
    """A LiveStream on a ring with a control log, driven by a DaemonCore; time is `self.t` (seconds)."""

    def __init__(self, preset, mode: str = "auto", bpm: float = 120.0, render=None):
        engine = Engine.load(preset)
        header = SessionHeader(engine.preset.name, 0, bpm, (4, 4), SR, {})
        self.log = io.StringIO()
        self.ring = AudioRing(SR * 8)
        self.t = 100.0
        self.live = LiveStream(engine, self.ring, header, log=ControlLogWriter(self.log, header),
                               clock=lambda: self.t)
        self.sent: list[tuple] = []
        ports = DaemonPorts(broadcast=lambda *args: self.sent.append(args), render=render)
        self.core = DaemonCore(self.live, ports=ports, mode=mode, timeout_s=1.0, bpm=bpm,
                               specs=control_specs(engine.preset.conditioning, ["tiny"]),
                               presets=lambda: ["tiny"], clock=lambda: self.t)

    def handle(self, event) -> None:
        self.core.handle(event)
        self.live.step(now=self.t)  # apply the queued requests (and render at most one piece)

    def records(self) -> list[dict]:
        return [json.loads(line) for line in self.log.getvalue().splitlines()[1:]]

    def kinds(self) -> list[tuple[str, str]]:
        return [(r["type"], r["name"]) for r in self.records()]


@pytest.fixture
def rig(tiny_preset):
    return Rig(tiny_preset)


def test_midi_takes_over_plays_at_its_tempo_and_falls_back_to_internal(rig) -> None:
    assert rig.core.arbiter.current == "internal"
    rig.handle(TempoEvent(140.0, "midi", rig.t, 0.9))
    assert rig.core.arbiter.current == "midi" and rig.live.sync_source == "midi"
    assert rig.kinds() == [("tempo", "bpm")] and rig.records()[0]["value"] == 140.0
    rig.handle(TransportEvent("play", "midi", rig.t, 0.0))
    assert rig.kinds()[-1] == ("transport", "play") and rig.core.playing
    rig.t += 0.5
    rig.handle(PositionEvent(1.0, "midi", rig.t, exact=True))
    assert rig.core.arbiter.current == "midi"
    # the DAW goes silent: after timeout_s the internal clock takes over and the music keeps playing
    rig.t += 1.6
    assert rig.core.tick(rig.t)
    rig.live.step(now=rig.t)
    assert rig.core.arbiter.current == "internal" and "midi silent" in rig.core.arbiter.reason
    assert rig.core.playing and ("transport", "stop") not in rig.kinds()
    status = rig.core.status()
    assert status["sync_source"] == "internal" and status["host_playing"] == 1
    assert status["host_bpm"] == 140.0  # holds the last tempo
    assert all(isinstance(v, int | float | str) for v in status.values())


def test_midi_stop_locate_continue(rig) -> None:
    rig.handle(TransportEvent("play", "midi", rig.t, 0.0))
    rig.t += 1.0
    rig.handle(TransportEvent("stop", "midi", rig.t, 2.0))
    assert rig.kinds()[-1] == ("transport", "stop") and not rig.core.playing
    rig.handle(TransportEvent("locate", "midi", rig.t, 8.0))  # SPP while stopped: no sound yet
    assert rig.kinds()[-1] == ("transport", "stop")
    rig.handle(TransportEvent("continue", "midi", rig.t, 8.0))
    last = rig.records()[-1]
    assert (last["type"], last["name"], last["at"]) == ("transport", "continue", 8.0)
    assert rig.core.transports["midi"].beat_at(rig.t + 1.0) == pytest.approx(10.0)


def test_manual_tempo_drives_internal_only(rig) -> None:
    rig.handle(TransportEvent("play", "osc", rig.t))
    rig.handle(TempoEvent(132.0, "osc", rig.t))
    assert ("tempo", "bpm") in rig.kinds() and rig.core.bpm == 132.0
    rig.handle(TransportEvent("play", "midi", rig.t, 0.0))  # a DAW appears: it drives from now on
    n = len(rig.records())
    rig.handle(TempoEvent(90.0, "osc", rig.t))
    assert len(rig.records()) == n and rig.core.ignored["osc"] == 1
    assert rig.core.transports["internal"].bpm == 90.0  # noted for when internal drives again
    rig.handle(SyncSourceEvent("internal", "osc"))  # forced internal: the noted tempo is not applied...
    assert rig.core.arbiter.current == "internal" and rig.core.bpm == 132.0  # ...the last one is held


def test_controls_bad_input_and_echo(rig) -> None:
    rig.handle(ControlEvent("density", 8.0, "midi"))
    rec = rig.records()[-1]
    assert (rec["type"], rec["name"], rec["value"]) == ("control", "density", 8.0)
    spec = rig.core.specs["density"]
    assert rig.sent[-1] == ("/musika/param/density", pytest.approx((8.0 - spec.min) / (spec.max - spec.min)))
    n = len(rig.records())
    rig.handle(ControlEvent("nonsense", 1.0, "osc"))
    rig.handle(PresetEvent("not-installed", "osc"))
    rig.handle(LearnEvent("density", "osc"))  # no MIDI input in this rig
    rig.handle(BadInput("osc", "127.0.0.1:5", "malformed"))
    rig.handle(TransportEvent("play", "somewhere", rig.t))
    assert len(rig.records()) == n
    assert rig.core.bad_input["osc"] == 4 and rig.core.bad_input["somewhere"] == 1
    assert rig.core.status()["bad_input"] == 5
    rig.handle(ControlEvent("density", 1e9, "osc"))  # clamped to the control's range, not echoed to osc
    assert rig.records()[-1]["value"] == spec.max and rig.sent[-1][0] == "/musika/param/density"
    assert len(rig.sent) == 1
    assert {p.name for p in rig.core.params()} == {"density", "variation", "gain"}


def test_forced_source_ignores_others(tiny_preset) -> None:
    rig = Rig(tiny_preset, mode="midi")
    rig.handle(TransportEvent("play", "osc", rig.t))
    assert rig.records() == [] and not rig.core.playing
    rig.handle(TransportEvent("play", "osc/reaper", rig.t, 0.0))
    assert rig.records() == [] and rig.core.arbiter.current == "midi"
    assert "forced" in rig.core.arbiter.reason


def test_position_far_from_what_is_heard_re_anchors_once(rig) -> None:
    rig.handle(TransportEvent("play", "midi", rig.t, 0.0))
    rig.handle(PositionEvent(0.0, "midi", rig.t, exact=True))  # right after play: nothing to compare yet
    assert rig.core.relocations == 0
    rig.t += 5.0  # nobody reads the ring, so the play head is still at the start while the DAW is at beat 10
    rig.handle(PositionEvent(10.0, "midi", rig.t, exact=True))
    assert rig.core.relocations == 1 and rig.core.sync_error_beats < -9
    assert rig.kinds()[-2:] == [("transport", "stop"), ("transport", "play")]
    rig.t += 0.5
    rig.handle(PositionEvent(11.0, "midi", rig.t, exact=True))  # within relocate_every_s: left alone
    assert rig.core.relocations == 1


SESSION = """
[session]
tempo = 128.0
bars = 2
[output]
format = "wav"
spectrograms = false
[[stems]]
name = "one"
preset = "{preset}"
"""


def test_render_over_osc_replies_progress_done_and_error(tiny_preset, tmp_path) -> None:
    from bridge.render_jobs import RenderJobs
    from tests.bridge.osc_client import running

    (tmp_path / "sessions").mkdir()
    (tmp_path / "sessions" / "s.toml").write_text(SESSION.format(preset=tiny_preset))
    (tmp_path / "sessions" / "bad.toml").write_text("[session]\ntempo = 'fast'\n")
    roots = {"sessions": tmp_path / "sessions", "renders": tmp_path / "renders"}

    async def scenario() -> tuple[list, str, str]:
        jobs: list[RenderJobs] = []  # the render queue answers on the server, which needs the core's handler
        core = Rig(tiny_preset, render=lambda request: jobs[0].submit(request)).core
        async with running(on_event=core.handle, path_roots=roots) as (server, client, _events):
            jobs.append(RenderJobs(server))
            client.send("/musika/render", "s.toml", "out")
            progress = [(await client.expect("/musika/render/progress"))[0]]
            done = (await client.expect("/musika/render/done"))[0]
            client.send("/musika/render", "bad.toml")
            error = (await client.expect("/musika/render/error"))[0]
            await jobs[0].stop()
            return progress, done, error

    progress, done, error = asyncio.run(scenario())
    assert 0.0 <= progress[0] <= 1.0
    assert done == str((tmp_path / "renders" / "out").resolve())
    assert (tmp_path / "renders" / "out" / "one.wav").is_file()
    assert "bad.toml" in error and "tempo" in error


def play_device(rig: Rig, seconds: float, period: int = 512, heard: list | None = None) -> None:
    """A sound card reading the ring in periods while the fake clock runs, with the daemon's 0.1 s tick;
    `heard` collects what it played ((2, period) blocks)."""
    out = [np.zeros(period, np.float32), np.zeros(period, np.float32)]
    next_tick = rig.t
    for _ in range(int(seconds * SR / period)):
        rig.ring.read_into(out)
        if heard is not None:
            heard.append(np.stack(out))
        rig.t += period / SR
        while rig.live.step(now=rig.t):
            pass
        if rig.t >= next_tick:
            rig.core.tick(rig.t)
            next_tick = rig.t + 0.1


def test_internal_clock_pulls_audio_delayed_by_a_dropout_back_onto_its_grid(rig) -> None:
    rig.handle(TransportEvent("play", "osc", rig.t))
    play_device(rig, 5.0)
    assert abs(rig.core.status()["sync_error_ms"]) < 2.0
    rig.t += 0.06  # the device stalls for 60 ms (an xrun): everything after it is heard 60 ms late
    play_device(rig, 0.05)
    assert rig.core.status()["sync_error_ms"] == pytest.approx(-60.0, abs=3.0)
    play_device(rig, 1.0)  # nudged (at most 6 % faster, over a bar at least) back onto the clock's beats
    nudges = [r["value"] for r in rig.records() if (r["type"], r["name"]) == ("tempo", "bpm") and r["value"] != 120]
    assert nudges and all(120.0 < v <= 120.0 * 1.06 for v in nudges)
    assert rig.core.status()["bpm"] == 120.0  # telemetry shows the host's tempo, not the catching up
    play_device(rig, 3.0)
    status = rig.core.status()
    assert abs(status["sync_error_ms"]) < 2.0, status
    assert rig.core.relocations == 0


def test_internal_clock_counts_the_devices_time_when_its_clock_runs_slow(rig) -> None:
    """A sound card (or JACK's dummy driver under load) whose clock runs 1 % slower than the host's: the internal
    clock follows the device's frames, as a DAW's transport does, so nothing is nudged and the beats stay even in
    what is played. (Counted in host time, it would pull the music 1 % faster in every period played.)"""
    rig.handle(TransportEvent("play", "osc", rig.t))
    play_device(rig, 1.0)
    period, slow = 512, 1.01
    drift = 0.0
    out = [np.zeros(period, np.float32), np.zeros(period, np.float32)]
    next_tick = rig.t
    for _ in range(int(10.0 * SR / period)):
        rig.ring.cycle = (rig.t, rig.ring.frames_played)  # as the JACK sink states each period
        rig.ring.read_into(out)
        rig.t += period / SR * slow
        drift += period / SR * (slow - 1.0)
        rig.ring.clock_drift_s = drift
        while rig.live.step(now=rig.t):
            pass
        if rig.t >= next_tick:
            rig.core.tick(rig.t)
            next_tick = rig.t + 0.1
    assert drift == pytest.approx(0.1, rel=0.01)
    nudges = [r["value"] for r in rig.records() if (r["type"], r["name"]) == ("tempo", "bpm") and r["value"] != 120]
    assert nudges == []
    status = rig.core.status()
    assert abs(status["sync_error_ms"]) < 2.0, status
    assert rig.core.relocations == 0


# ---------------------------------------------------------------------------------------- start and handover
def windowed_rms(blocks: list[np.ndarray], ms: float = 10.0) -> np.ndarray:
    audio = np.concatenate(blocks, axis=1)
    n = int(SR * ms / 1000)
    frames = audio[:, : audio.shape[1] // n * n].reshape(2, -1, n)
    return np.sqrt(np.mean(np.square(frames, dtype=np.float64), axis=(0, 2)))


def test_with_no_sync_source_the_internal_clock_plays_at_once_with_one_notice(rig, caplog) -> None:
    with caplog.at_level(logging.DEBUG):
        rig.core.start("MIDI clock to 'Musika'")
    rig.live.step(now=rig.t)
    notices = [r.getMessage() for r in caplog.records if r.levelno == NOTICE]
    assert notices == ["no sync source yet: playing on the internal clock at 120 BPM; will follow the host when "
                       "it sends MIDI clock to 'Musika'"]
    assert rig.core.playing and rig.kinds() == [("transport", "play")]
    heard: list[np.ndarray] = []
    play_device(rig, 1.0, heard=heard)
    assert windowed_rms(heard)[-50:].min() > 1e-4  # sound, from within the look-ahead on


def test_a_forced_source_waits_for_the_host(tiny_preset, caplog) -> None:
    rig = Rig(tiny_preset, mode="midi")
    with caplog.at_level(logging.DEBUG):
        rig.core.start()
    assert not rig.core.playing and rig.records() == []
    assert [r.getMessage() for r in caplog.records if r.levelno == NOTICE] == ["sync midi: waiting for the host "
                                                                                "to start"]


def test_a_playing_host_is_joined_at_its_next_bar_line_without_a_gap(rig, caplog) -> None:
    rig.core.start()
    heard: list[np.ndarray] = []
    play_device(rig, 3.0, heard=heard)
    # the DAW starts at 126 BPM, its beat 0 now (off the internal clock's grid); its tempo is known a moment later
    t_host, bpm = rig.t, 126.0
    with caplog.at_level(logging.DEBUG):
        rig.handle(TransportEvent("play", "midi", t_host, 0.0))
    assert rig.core.arbiter.current == "midi" and rig.live.joining
    rig.t += 0.1
    rig.handle(TempoEvent(bpm, "midi", rig.t, 0.9))
    for beat in range(1, 17):  # the DAW's clock states each beat
        play_device(rig, t_host + beat * 60 / bpm - rig.t, heard=heard)
        rig.handle(PositionEvent(float(beat), "midi", rig.t, exact=True))
    assert not rig.live.joining
    kinds = rig.kinds()
    assert ("transport", "stop") not in kinds  # one run handed to the next, nothing stopped
    [join] = [r for r in rig.records() if (r["type"], r["name"]) == ("transport", "locate")]
    assert join["value"] in (4.0, 8.0)  # the DAW's first bar line that could still be rendered in time
    tempo = [r for r in rig.records() if r["type"] == "tempo" and r["beat"] == join["beat"]]
    assert [r["value"] for r in tempo] == [bpm]
    status = rig.core.status()
    assert status["bpm"] == bpm and abs(status["sync_error_ms"]) < 3.0, status  # on the DAW's grid
    assert rig.core.relocations == 0
    rms = windowed_rms(heard)
    assert rms[100:].min() > 0.05 * np.median(rms), "a gap in the sound across the handover"
    assert any("following midi" in r.getMessage() and r.levelno == NOTICE for r in caplog.records)


def test_a_stopped_host_stops_the_music_at_the_next_bar_line(rig) -> None:
    rig.core.start()
    play_device(rig, 2.3)
    rig.handle(TempoEvent(124.0, "midi", rig.t, 0.9))  # clock without Start: the DAW is there, stopped
    assert rig.core.arbiter.current == "midi" and not rig.core.playing
    heard: list[np.ndarray] = []
    n = len(rig.records())
    play_device(rig, 3.0, heard=heard)
    stop, tempo = rig.records()[-2:]
    assert (stop["type"], stop["name"]) == ("transport", "stop") and stop["beat"] % 4.0 == 0.0
    assert len(rig.records()) == n + 2  # the last bar at its own tempo: the host's tempo is for its Start
    assert (tempo["type"], tempo["name"], tempo["value"]) == ("tempo", "bpm", 124.0)
    rms = windowed_rms(heard)
    assert rms[:10].min() > 1e-4 and rms[-20:].max() == 0.0  # played on to the bar line, then silence
    rig.handle(TransportEvent("play", "midi", rig.t, 0.0))  # the DAW's Start
    assert rig.core.playing and rig.kinds()[-1] == ("transport", "play")


# ---------------------------------------------------------------------------------------- CC smoothing
def test_a_smoothed_cc_change_steps_to_its_target_bar_by_bar(rig) -> None:
    rig.core.start()
    play_device(rig, 2.0)
    t0 = rig.t
    rig.handle(ControlEvent("density", 12.0, "midi", smoothing_ms=5000))  # from the default, 4.0
    play_device(rig, 9.0)
    steps = [(r["beat"], r["value"]) for r in rig.records() if r["name"] == "density"]
    beats, values = zip(*steps, strict=True)
    assert all(b % 4.0 == 0.0 for b in beats) and list(beats) == sorted(set(beats))  # one per bar line
    assert values[-1] == 12.0 and all(4.0 < v < 12.0 for v in values[:-1]) and len(values) >= 3
    clock = rig.core.transports["internal"]  # what is heard sits on its grid (checked twice a second)
    for beat, value in steps:
        expected = 4.0 + 8.0 * min(max((clock.time_at_beat(beat) - t0) / 5.0, 0.0), 1.0)
        assert value == pytest.approx(expected, abs=0.1)  # the glide's value when that bar line is heard
    assert rig.core.status()["param_density"] == 12.0


def test_an_unsmoothed_cc_change_is_one_change_at_the_next_bar_line(rig) -> None:
    rig.core.start()
    play_device(rig, 2.0)
    rig.handle(ControlEvent("density", 12.0, "midi"))
    play_device(rig, 5.0)
    assert [r["value"] for r in rig.records() if r["name"] == "density"] == [12.0]
