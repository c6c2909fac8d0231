"""End to end with real processes: `musika serve` (tiny preset) plays into a JACK dummy server, a JACK client in
this process records it, a DAW stand-in process sends MIDI clock/Start/Stop through JACK MIDI, and an OSC client
on 127.0.0.1 drives tempo, density and transport and reads /musika/status.

The tiny preset's random weights make noise, so tempo and phase are judged from telemetry (/musika/status: tempo,
heard beat vs the sender's beat, underruns); the recording must be non-silent stereo while playing and silent
after a stop. Readiness comes from the daemon's "musika: serving ..." line and the sender's marks, never sleeps.
"""

from __future__ import annotations

import asyncio
import re
import signal
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.bridge.osc_client import OscClient
from tests.bridge.serve_rig import (
    ROOT,
    Daemon,
    Recorder,
    assert_stereo_sound,
    diag,
    in_phase,
    listening,
    phase_error_beats,
    settled,
    status,
    until,
)

pytestmark = pytest.mark.jack


def test_follows_midi_clock_tempo_step_and_stop_start(jack_server, tiny_preset, tmp_path) -> None:
    asyncio.run(_midi_scenario(jack_server, tiny_preset, tmp_path))


async def _midi_scenario(jack_server, preset, tmp: Path) -> None:
    daemon, recorder, client = await listening('[[midi.cc]]\ncontrol = "density"\ncc = 74\n[sync]\ntimeout_s = 1.0\n',
                                               preset, jack_server.env, tmp)
    sender = None
    try:
        st = await status(client)
        assert st["state"] == "playing" and st["sync_source"] == "internal"  # no DAW yet: the internal clock
        sender = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.bridge.serve_rig", "Musika", cwd=ROOT, env=jack_server.env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        marks: dict[str, float] = {}

        async def mark(name: str) -> float:
            while name not in marks:
                line = await asyncio.wait_for(sender.stdout.readline(), 30.0)
                assert line, (await sender.stderr.read()).decode()
                key, t, _bpm = line.decode().split()
                marks[key] = float(t)
            return marks[name]

        t_start = await mark("start")
        await until(t_start + 4.0)  # 8 beats in at 120 BPM
        st = await status(client)
        assert (st["state"], st["sync_source"]) == ("playing", "midi")
        assert st["bpm"] == pytest.approx(120.0, abs=1.0) and st["host_bpm"] == pytest.approx(120.0, abs=1.0)
        assert phase_error_beats(st, t_start, 120.0) == pytest.approx(0.0, abs=0.15), diag(st, recorder)
        t_tempo = await mark("tempo")
        await until(t_tempo + 4.5)  # the estimator settles, re-conditions at a bar line, then the look-ahead
        st = await status(client)
        assert st["host_bpm"] == pytest.approx(140.0, abs=1.0), st
        # after a step the music plays up to 6 % faster or slower for a few beats to land back on the grid
        st = await settled(client, 140.0)
        assert st["bpm"] == pytest.approx(140.0, abs=1.0), st
        t_stop = await mark("stop")
        await until(t_stop + 0.8)
        st = await status(client)
        assert (st["state"], st["sync_source"]) == ("stopped", "midi")
        t_restart = await mark("restart")
        await until(t_restart + 2.0)
        st = await settled(client, 140.0)
        assert st["state"] == "playing" and st["bpm"] == pytest.approx(140.0, abs=1.0)
        assert phase_error_beats(st, t_restart, 140.0) == pytest.approx(0.0, abs=0.15), diag(st, recorder)
        t_end = await mark("end")
        assert await asyncio.wait_for(sender.wait(), 10.0) == 0
        await until(t_end + 2.0)  # the clock went silent for longer than timeout_s: fallback to internal
        st = await status(client)
        assert st["sync_source"] == "internal" and st["sync_reason"].startswith("internal (auto")
        assert (st["underruns"], st["bad_input"]) == (0, 0), daemon.log.read_text()[-3000:]
        relocations = st["relocations"]
        assert relocations <= 1, diag(st, recorder)
    finally:
        client.close()
        if sender is not None and sender.returncode is None:
            sender.kill()
        code = await daemon.stop(signal.SIGINT)
        recorder.close()
        daemon.kill()
    assert code == 0, daemon.log.read_text()[-3000:]
    assert re.search(r"NOTICE bridge.daemon: following midi.*\n(.*\n)*.*NOTICE bridge.daemon: internal \(auto: midi "
                     r"silent", daemon.log.read_text()), daemon.log.read_text()
    assert_stereo_sound(recorder.window(t_start + 1.0, t_stop))
    assert np.abs(recorder.window(t_stop + 0.4, t_restart)).max() == 0.0  # silent after Stop
    assert_stereo_sound(recorder.window(t_restart + 1.0, t_end))
    log = (tmp / "perf.jsonl").read_text().splitlines()
    names = [r.split('"name":"')[1].split('"')[0] for r in log[1:] if '"transport"' in r]
    # play/stop pairs: the internal clock's run until the DAW is heard (stopped), the DAW's two runs, plus one per
    # re-anchoring (after the tempo step the engine, which rendered ahead at the old tempo, may lag by more than
    # relocate_beats and is re-anchored)
    assert names == ["play", "stop"] * (3 + relocations), "\n".join(log)


def test_osc_drives_tempo_density_transport_and_survives_garbage(jack_server, tiny_preset, tmp_path) -> None:
    asyncio.run(_osc_scenario(jack_server, tiny_preset, tmp_path))


async def _osc_scenario(jack_server, preset, tmp: Path) -> None:
    daemon = await Daemon.start(["--preset", str(preset), "--osc-port", "0", "--sync", "internal", "--bpm", "120",
                                 "--no-midi", "--output", "jack", "--control-log", "perf.jsonl"],
                                jack_server.env, tmp)
    recorder = Recorder()
    client = await OscClient.connect(daemon.osc_port)
    try:
        assert "sync internal" in daemon.ready and "MIDI" not in daemon.ready
        recorder.connect(daemon.outputs)
        t0 = time.monotonic()
        await until(t0 + 1.5)
        st = await status(client)
        assert (st["state"], st["sync_source"], st["bpm"], st["host_bpm"]) == ("playing", "internal", 120.0, 120.0)
        st = await in_phase(client)
        assert abs(st["sync_error_ms"]) < 60.0, st
        client.send("/musika/tempo", 132.0)
        assert await client.expect("/musika/tempo") == [pytest.approx(132.0)]
        client.send("/musika/param/density", 0.9)
        assert await client.expect("/musika/param/density") == [pytest.approx(0.9)]
        client.send_raw(b"this is not OSC")
        client.send("/musika/tempo", "fast")
        assert (await client.expect("/musika/error"))[0] == "/musika/tempo"
        t1 = time.monotonic()
        await until(t1 + 3.0)  # the tempo lands at the next beat rendered, within the look-ahead
        st = await status(client)
        assert st["state"] == "playing" and st["host_bpm"] == 132.0 and st["cond_bpm"] == pytest.approx(132.0)
        assert st["bpm"] == pytest.approx(132.0)
        assert st["param_density"] == pytest.approx(0.5 + 0.9 * (12.0 - 0.5))
        assert st["osc_bad"] == 2 and st["bad_input"] == 2
        client.send("/musika/transport/stop")
        await client.expect("/musika/ack")
        t_stop = time.monotonic()
        await until(t_stop + 1.0)
        assert (await status(client))["state"] == "stopped"
        client.send("/musika/transport/play")
        await client.expect("/musika/ack")
        t_play = time.monotonic()
        await until(t_play + 2.5)
        st = await status(client)
        assert st["state"] == "playing" and st["bpm"] == st["cond_bpm"] == pytest.approx(132.0)
        st = await in_phase(client)  # in phase with the transport: converged within a few more beats at most
        assert abs(st["sync_error_ms"]) < 60.0, st
        assert st["underruns"] == 0, daemon.log.read_text()[-3000:]  # the log says when, and what was rendering
    finally:
        client.close()
        code = await daemon.stop(signal.SIGTERM)
        recorder.close()
        daemon.kill()
    assert code == 0, daemon.log.read_text()[-3000:]
    assert_stereo_sound(recorder.window(t0 + 0.8, t_stop))
    assert np.abs(recorder.window(t_stop + 0.5, t_play)).max() == 0.0
    assert_stereo_sound(recorder.window(t_play + 1.0, t_play + 2.5))
    log = (tmp / "perf.jsonl").read_text()
    assert '"name":"density"' in log and '"type":"tempo"' in log and log.count('"name":"stop"') == 2
