"""End to end with real processes (tests/bridge/serve_rig.py): a first run with no DAW plays at once and hands over
to a DAW at its bar line; a smoothed CC glides bar by bar; an unavailable device or port exits 3."""


from __future__ import annotations

import asyncio
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from tests.bridge.osc_client import OscClient
from tests.bridge.serve_rig import (
    MUSIKA,
    READY_S,
    ROOT,
    Daemon,
    Recorder,
    diag,
    in_phase,
    listening,
    settled,
    status,
    until,
)

pytestmark = pytest.mark.jack


def first_sound(recorder: Recorder, level: float = 1e-4) -> float | None:
    """Monotonic time of the first recorded sample above `level`, or None."""
    loud = np.flatnonzero(np.abs(recorder.buf[:, : recorder.n]).max(axis=0) > level)
    if loud.size == 0:
        return None
    times, frames = np.array(recorder.marks).T
    return float(np.interp(loud[0], frames, times))


def gaps_ms(audio: np.ndarray, ms: float = 10.0) -> list[int]:
    """Indices of `ms` windows far quieter than the rest (silence in the middle of the music)."""
    n = int(44100 * ms / 1000)
    frames = audio[:, : audio.shape[1] // n * n].reshape(2, -1, n)
    level = np.sqrt(np.mean(np.square(frames, dtype=np.float64), axis=(0, 2)))
    return np.flatnonzero(level < 0.05 * np.median(level)).tolist()


def test_with_no_daw_music_starts_within_2_s_then_follows_the_daw_from_its_bar_line(jack_server, tiny_preset,
                                                                                       tmp_path) -> None:
    if shutil.which("jack_midi_clock") is None:
        pytest.skip("jack_midi_clock is not installed (apt install jack-midi-clock)")
    asyncio.run(_first_run_scenario(jack_server, tiny_preset, tmp_path))


async def _first_run_scenario(jack_server, preset, tmp: Path) -> None:
    daemon, recorder, client = await listening("", preset, jack_server.env, tmp)
    t_ready = daemon.ready_at
    daw = None
    try:
        while (t_sound := first_sound(recorder)) is None and time.monotonic() < t_ready + READY_S:
            await asyncio.sleep(0.05)
        assert t_sound is not None and t_sound - t_ready <= 2.0, f"first sound {t_sound} s, ready {t_ready} s"
        st = await status(client)
        assert (st["state"], st["sync_source"], st["bpm"]) == ("playing", "internal", 128.0)
        # the DAW: the JACK transport at 126 BPM, turned into MIDI clock + Start by jack_midi_clock
        daw = subprocess.Popen(["jack_midi_clock", "-b", "126", "-B", "musika-midi:Musika"], env=jack_server.env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while not recorder.client.get_all_connections("musika-midi:Musika"):
            assert daw.poll() is None and time.monotonic() < t_ready + READY_S, "jack_midi_clock did not connect"
            await asyncio.sleep(0.05)
        await until(t_sound + 2.5)  # the internal clock plays for a while (not on a bar line of its own)
        recorder.client.transport_frame = 0
        recorder.client.transport_start()
        t_play = time.monotonic()
        await until(t_play + 5.0)  # the join waits for the DAW's first bar line that can be rendered in time
        st = await settled(client, 126.0)  # a few beats may play slightly faster or slower to land on the grid
        assert (st["state"], st["sync_source"]) == ("playing", "midi"), st
        assert st["host_bpm"] == pytest.approx(126.0, abs=1.0) and st["bpm"] == pytest.approx(126.0, abs=1.0)
        st = await in_phase(client)
        assert abs(st["sync_error_ms"]) < 60.0, diag(st, recorder)
        assert st["relocations"] == 0 and st["underruns"] == 0, st
        t_end = time.monotonic()
    finally:
        client.close()
        if daw is not None:
            daw.terminate()
            daw.wait(10)
        code = await daemon.stop(signal.SIGTERM)
        recorder.close()
        daemon.kill()
    assert code == 0, daemon.log.read_text()[-3000:]
    assert gaps_ms(recorder.window(t_sound + 0.1, t_end)) == [], "a gap in the music"
    records = daemon.records()
    transport = [(r["name"], r["value"]) for r in records if r["type"] == "transport"]
    assert [name for name, _ in transport] == ["play", "locate", "stop"], transport
    assert transport[1][1] % 4.0 == 0.0  # the DAW's run starts on one of its bar lines
    log = daemon.log.read_text()
    assert "no sync source yet: playing on the internal clock at 128 BPM" in log and "following midi" in log, log


def test_a_smoothed_cc_from_a_midi_controller_glides_bar_by_bar(jack_server, tiny_preset, tmp_path) -> None:
    asyncio.run(_smoothing_scenario(jack_server, tiny_preset, tmp_path))


async def _smoothing_scenario(jack_server, preset, tmp: Path) -> None:
    import jack
    import mido

    daemon = await Daemon.with_config('[midi]\nbackend = "jack"\n[[midi.cc]]\ncontrol = "density"\ncc = 74\n'
                                      'smoothing_ms = 6000\n[output]\nkind = "jack"\n', preset, jack_server.env, tmp)
    client = await OscClient.connect(daemon.osc_port)
    probe = jack.Client("probe", no_start_server=True)
    try:
        backend = mido.Backend("mido.backends.rtmidi/UNIX_JACK", load=True)
        [port] = [n for n in backend.get_output_names() if "Musika" in n]  # the daemon's port, open once ready
        await until(time.monotonic() + 1.0)  # the internal clock has been playing a while
        with backend.open_output(port, client_name="controller") as knob:
            if not probe.get_all_connections(port):
                probe.connect(f"controller:{port}", port)  # rtmidi may leave its port unconnected here
            knob.send(mido.Message("control_change", channel=0, control=74, value=127))  # density 4 -> 12
            t_cc = time.monotonic()
            await until(t_cc + 2.0)
            st = await status(client)
            assert 4.0 < st["param_density"] < 12.0, st  # on its way
            await until(t_cc + 6.0 + 2 * 60 / 128 * 4)  # the glide's end, then a bar line and a margin
        st = await status(client)
        assert st["param_density"] == 12.0 and st["sync_source"] == "internal", st
    finally:
        client.close()
        probe.close()
        code = await daemon.stop(signal.SIGTERM)
        daemon.kill()
    assert code == 0, daemon.log.read_text()[-3000:]
    records = daemon.records()
    steps = [(r["beat"], r["value"]) for r in records if r["name"] == "density"]
    beats, values = zip(*steps, strict=True)
    assert all(b % 4.0 == 0.0 for b in beats) and list(beats) == sorted(set(beats)), steps  # bar lines, once
    assert values[-1] == 12.0 and len(values) >= 3 and all(4.0 < v < 12.0 for v in values[:-1]), steps

    def heard_at(beat: float) -> float:  # the internal clock's grid, which what is heard sits on
        return st["time"] + (beat - st["host_beat"]) * 60.0 / 128.0

    for beat, value in steps:  # each bar line plays the glide's value of the moment it is heard
        assert value == pytest.approx(4.0 + 8.0 * min((heard_at(beat) - t_cc) / 6.0, 1.0), abs=0.2), steps


def test_unavailable_device_or_port_exits_3(jack_server, tiny_preset, tmp_path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        env = {**jack_server.env, "PYTHONPATH": str(ROOT)}
        common = [*MUSIKA, "serve", "--preset", str(tiny_preset), "--no-midi",
                  "--control-log", ""]
        busy = subprocess.run([*common, "--output", "jack", "--osc-port", str(port)], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=120)
        assert busy.returncode == 3, busy.stderr
        assert f"127.0.0.1:{port}" in busy.stderr and "0 picks a free one" in busy.stderr
    env["JACK_DEFAULT_SERVER"] = "no-such-server"
    nojack = subprocess.run([*common, "--output", "jack", "--osc-port", "0"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    assert nojack.returncode == 3, nojack.stderr
    assert "JACK" in nojack.stderr and "--output" in nojack.stderr
    # following a JACK transport with no JACK server: the fix named, exit 3, and nothing written (no stray WAV)
    out = tmp_path / "nojack"
    out.mkdir()
    transport = subprocess.run([*common, "--sync", "jack", "--output", "wav", "--osc-port", "0"], cwd=out, env=env,
                               capture_output=True, text=True, timeout=120)
    assert transport.returncode == 3, transport.stderr
    assert "--sync jack" in transport.stderr and "start the DAW's JACK server" in transport.stderr
    assert not any(out.iterdir()), list(out.rglob("*"))
