"""The daemon core with a real LiveStream (tiny preset) and a fake clock: events reach the stream through the
sync arbiter, the stream adopts a new source's state, falls back to the internal clock when the source goes
silent, and bad input is counted without stopping anything. The control log is the observable."""

from __future__ import annotations

import asyncio
import io
import json

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
from generator.control_log import ControlLogWriter, SessionHeader
from generator.engine import Engine
from generator.live import LiveStream

SR = 44100


class Rig:
    """A LiveStream on a ring with a control log, driven by a DaemonCore; time is `self.t` (seconds)."""

    def __init__(self, preset, mode: str = "auto", bpm: float = 120.0):
        engine = Engine.load(preset)
        header = SessionHeader(engine.preset.name, 0, bpm, (4, 4), SR, {})
        self.log = io.StringIO()
        self.ring = AudioRing(SR * 8)
        self.t = 100.0
        self.live = LiveStream(engine, self.ring, header, log=ControlLogWriter(self.log, header),
                               clock=lambda: self.t)
        self.sent: list[tuple] = []
        self.core = DaemonCore(self.live, mode=mode, timeout_s=1.0, bpm=bpm,
                               specs=control_specs(engine.preset.conditioning, ["tiny"]),
                               presets=lambda: ["tiny"], clock=lambda: self.t)
        self.core.broadcast = lambda *args: self.sent.append(args)

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


def test_render_over_osc_replies_progress_done_and_error(rig, tiny_preset, tmp_path) -> None:
    from bridge.daemon import RenderJobs
    from tests.bridge.osc_client import running

    (tmp_path / "sessions").mkdir()
    (tmp_path / "sessions" / "s.toml").write_text(SESSION.format(preset=tiny_preset))
    (tmp_path / "sessions" / "bad.toml").write_text("[session]\ntempo = 'fast'\n")
    roots = {"sessions": tmp_path / "sessions", "renders": tmp_path / "renders"}

    async def scenario() -> tuple[list, str, str]:
        async with running(on_event=rig.core.handle, path_roots=roots) as (server, client, _events):
            jobs = RenderJobs(server)
            rig.core.render = jobs.submit
            client.send("/musika/render", "s.toml", "out")
            progress = [(await client.expect("/musika/render/progress"))[0]]
            done = (await client.expect("/musika/render/done"))[0]
            client.send("/musika/render", "bad.toml")
            error = (await client.expect("/musika/render/error"))[0]
            await jobs.stop()
            return progress, done, error

    progress, done, error = asyncio.run(scenario())
    assert 0.0 <= progress[0] <= 1.0
    assert done == str((tmp_path / "renders" / "out").resolve())
    assert (tmp_path / "renders" / "out" / "one.wav").is_file()
    assert "bad.toml" in error and "tempo" in error


def play_device(rig: Rig, seconds: float, period: int = 512) -> None:
    """A sound card reading the ring in periods while the fake clock runs, with the daemon's 0.1 s tick."""
    out = [np.zeros(period, np.float32), np.zeros(period, np.float32)]
    next_tick = rig.t
    for _ in range(int(seconds * SR / period)):
        rig.ring.read_into(out)
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
