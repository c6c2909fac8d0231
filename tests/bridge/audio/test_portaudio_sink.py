"""PortAudioSink through PortAudio's JACK host API: the stream appears as JACK ports PortAudio:out_0/1.

The sink runs in a child process because PortAudio aborts a process whose JACK server went away before exit
(see bridge/audio/portaudio_sink.py); the JACK recorder runs here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.bridge.audio.recorder import (
    SR,
    JackRecorder,
    continuity_errors,
    dominant_hz,
    glitch_allowance,
    stereo_sine,
)

pytestmark = pytest.mark.jack
ROOT = Path(__file__).resolve().parents[3]


def _child(jack_server, mode: str, device: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.bridge.audio.portaudio_child", mode, device],
        cwd=ROOT,
        env=jack_server.env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def _portaudio_client(rec: JackRecorder) -> str:
    names = {p.name.split(":")[0] for p in rec.client.get_ports(is_audio=True, is_output=True)}
    candidates = sorted(n for n in names if n.startswith("PortAudio"))
    assert candidates, f"PortAudio's JACK client not found among {sorted(names)}"
    return candidates[-1]


def test_portaudio_output_reaches_jack_ports(jack_server):
    child = _child(jack_server, "play", "system")
    try:
        assert child.stdout.readline().strip() == "READY"
        with JackRecorder(SR // 2, servername=jack_server.name) as rec:
            client = _portaudio_client(rec)
            rec.connect([f"{client}:out_0", f"{client}:out_1"])
            child.stdin.write("feed\n")
            child.stdin.flush()
            assert child.stdout.readline().strip() == "FED"
            audio = rec.record()
        child.stdin.write("stop\n")
        child.stdin.flush()
        stats = json.loads(child.stdout.readline())
        assert child.wait(timeout=20) == 0
        errors = continuity_errors(audio, stereo_sine(2 * SR, start=1000), atol=1e-6)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert "system" in stats["device"] and "JACK" in stats["device"]
    assert errors <= glitch_allowance(jack_server.period, rec.xruns), f"{errors} frames differ from the signal"
    assert stats["underruns"] == 0 and stats["frames_played"] > SR // 2
    assert np.sqrt(np.mean(audio**2, axis=1)).min() > 0.1, "recording is silent on a channel"
    assert dominant_hz(audio[0]) == pytest.approx(440, abs=5), "left channel is not out_0's 440 Hz"
    assert dominant_hz(audio[1]) == pytest.approx(660, abs=5), "right channel is not out_1's 660 Hz"


def test_unknown_device_error_lists_the_devices(jack_server):
    out, _ = _child(jack_server, "bad", "no such card").communicate(timeout=30)
    assert "no output device matching 'no such card'" in out
    assert "system (JACK Audio Connection Kit)" in out and "--device" in out
