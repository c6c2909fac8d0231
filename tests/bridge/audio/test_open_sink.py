"""open_sink / describe_audio: lazy imports, option checking, the auto choice, the doctor report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bridge.audio import AudioSinkError, describe_audio, open_sink

ROOT = Path(__file__).resolve().parents[3]


def run_python(code: str, **env: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60, env={**os.environ, **env}
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_import_touches_no_audio_library():
    out = run_python("import sys, bridge.audio; print(sorted({'jack', 'sounddevice', 'soundfile'} & set(sys.modules)))")
    assert out.strip() == "[]"


def test_unknown_kind_and_option_are_named():
    with pytest.raises(AudioSinkError, match="unknown audio output 'alsa'; valid outputs are auto, jack"):
        open_sink("alsa")
    with pytest.raises(AudioSinkError, match=r"'reastream' does not take option\(s\) \['device'\]"):
        open_sink("reastream", device="x")


def test_explicit_kinds_build_the_right_sink(tmp_path):
    assert open_sink("wav", path=tmp_path / "a.wav").name == "wav"
    sink = open_sink("reastream", identifier="musika", port=9)
    assert sink.name == "reastream" and "127.0.0.1:9" in sink.device


def test_auto_without_jack_or_devices_records_to_a_file_and_says_so(tmp_path):
    code = (
        "import logging, sys; logging.basicConfig(level=logging.WARNING, stream=sys.stdout)\n"
        "from bridge.audio import open_sink\n"
        f"sink = open_sink('auto', path={str(tmp_path / 'live.wav')!r})\n"
        "print('SINK', sink.name, sink.device)\n"
    )
    out = run_python(code, JACK_DEFAULT_SERVER="musika-absent-server", JACK_NO_START_SERVER="1")
    assert "SINK wav file" in out and "live.wav" in out
    assert "no JACK server and no audio output device found" in out


@pytest.mark.jack
def test_auto_picks_jack_and_doctor_sees_it(jack_server):
    sink = open_sink("auto", servername=jack_server.name, path="unused.wav", block_size=256)
    assert sink.name == "jack"
    info = describe_audio(jack_server.name)
    assert info["jack"]["running"] and info["jack"]["sample_rate"] == jack_server.rate
    assert info["jack"]["block_size"] == jack_server.period
    assert any(d["name"] == "system" for d in info["portaudio"]["devices"]), json.dumps(info)
    assert info["recommended"] == "jack"


def test_doctor_without_jack_never_raises():
    info = describe_audio("musika-absent-server")
    assert info["jack"]["running"] is False and "no JACK server" in info["jack"]["error"]
    assert info["recommended"] in ("portaudio", "wav")
