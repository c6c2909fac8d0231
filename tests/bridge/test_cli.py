"""The `musika` command line as a user meets it: generate, presets, doctor, help, and one-line errors."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from musika.cli import EXIT_BAD_INPUT, EXIT_OK, main

MUSIKA = [sys.executable, "-m", "musika"]


def test_generate_writes_stereo_44k1_of_the_requested_length(tiny_preset, tmp_path):
    out = tmp_path / "a.wav"
    rc = main(["generate", "--preset", str(tiny_preset), "--seconds", "2.5", "--bpm", "140", "--density", "3",
               "--seed", "4", "--threads", "1", "--out", str(out)])
    assert rc == EXIT_OK
    audio, sr = sf.read(out, always_2d=True)
    assert sr == 44100 and audio.shape == (int(2.5 * 44100), 2) and np.abs(audio).max() > 0
    again = tmp_path / "b.wav"
    main(["generate", "--preset", str(tiny_preset), "--seconds", "2.5", "--bpm", "140", "--density", "3",
          "--seed", "4", "--threads", "1", "--out", str(again)])
    assert np.array_equal(sf.read(again)[0], audio)


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--bpm", "-5"], "tempo: -5 BPM is outside the range this preset was trained on (118..162 BPM)"),
        (["--bpm", "nan"], "tempo: value nan is not a finite number"),
        (["--density", "99"], "density: 99 onsets/s is outside the range"),
        (["--seconds", "0"], "--seconds 0.0 is invalid"),
        (["--truncation", "-1"], "--truncation -1.0 is invalid"),
    ],
)
def test_bad_values_give_one_clear_line_and_write_nothing(tiny_preset, tmp_path, capsys, flags, message):
    out = tmp_path / "x.wav"
    rc = main(["generate", "--preset", str(tiny_preset), "--out", str(out), "--seconds", "1", *flags])
    err = capsys.readouterr().err.strip()
    assert rc == EXIT_BAD_INPUT
    assert message in err and len(err.splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_unknown_preset_unwritable_output_and_unconditioned_flag(tiny_preset, tiny_preset_plain, tmp_path, capsys):
    assert main(["generate", "--preset", "no-such-preset", "--out", str(tmp_path / "a.wav")]) == EXIT_BAD_INPUT
    assert "unknown preset 'no-such-preset'" in capsys.readouterr().err
    missing = tmp_path / "nope" / "a.wav"
    assert main(["generate", "--preset", str(tiny_preset), "--out", str(missing)]) == EXIT_BAD_INPUT
    assert "folder" in capsys.readouterr().err and not missing.parent.exists()
    if os.geteuid() != 0:  # root can write anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        assert main(["generate", "--preset", str(tiny_preset), "--out", str(locked / "a.wav")]) == EXIT_BAD_INPUT
    assert main(["generate", "--preset", str(tiny_preset_plain), "--bpm", "120",
                 "--out", str(tmp_path / "b.wav")]) == EXIT_BAD_INPUT
    assert "is not conditioned on tempo" in capsys.readouterr().err


def test_broken_preset_names_the_failing_file(tiny_preset, tmp_path, capsys):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_preset, broken)
    with open(broken / "generator.onnx", "r+b") as fh:
        fh.seek(64)
        fh.write(b"\xff\xfe")
    assert main(["generate", "--preset", str(broken), "--out", str(tmp_path / "a.wav")]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "generator.onnx fails its integrity check" in err and "musika export" in err


def test_presets_lists_conditioning_and_marks_broken_ones(tiny_preset, tmp_path, capsys):
    root = tmp_path / "presets"
    shutil.copytree(tiny_preset, root / "tiny")
    shutil.copytree(tiny_preset, root / "bad")
    (root / "bad" / "preset.json").write_text("{")
    assert main(["presets", "--search", str(root), "--json"]) == EXIT_OK
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert "tempo (scalar, 118-162 BPM)" in rows["tiny"]["conditioning"]
    assert "not valid JSON" in rows["bad"]["error"]


def test_doctor_reports_without_crashing():
    out = subprocess.run([*MUSIKA, "doctor", "--json"], capture_output=True, text=True, timeout=120, check=True)
    report = json.loads(out.stdout)
    assert report["onnxruntime"]["available"] is True
    assert "CPUExecutionProvider" in report["onnxruntime"]["providers"]
    for key in ("audio", "midi", "link", "jackd", "torch"):
        assert key in report


@pytest.mark.parametrize("command", ["serve", "generate", "render", "prepare", "train", "export", "eval", "bench",
                                     "presets", "doctor"])
def test_every_command_has_help_with_defaults(command):
    out = subprocess.run([*MUSIKA, command, "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "usage: musika" in out.stdout and "unavailable" not in out.stdout


def test_serve_without_any_audio_or_midi_device_records_to_a_file_and_says_so(tiny_preset, tmp_path):
    """The `make run` path on a machine with no JACK server, no sound card and no MIDI backend."""
    env = {**os.environ, "JACK_DEFAULT_SERVER": "musika-test-none", "JACK_NO_START_SERVER": "1"}
    out = subprocess.run([*MUSIKA, "serve", "--preset", str(tiny_preset), "--duration", "2", "--sync", "internal",
                          "--osc-port", "0", "--control-log", "", "--threads", "1"],
                         capture_output=True, text=True, timeout=180, cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "musika: serving preset tiny" in out.stdout + out.stderr
    recording = tmp_path / "runs" / "musika-live.wav"
    assert "recorded to" in out.stderr and recording.exists()
    audio, sr = sf.read(recording, always_2d=True)
    assert sr == 44100 and audio.shape[1] == 2 and np.abs(audio).max() > 0


LOG_LINE = re.compile(r"^\d\d:\d\d:\d\d (DEBUG|INFO|NOTICE|WARNING|ERROR|CRITICAL) [\w.]+: ")


@pytest.mark.parametrize(("before", "after", "shown", "hidden"), [
    ((), (), {"NOTICE", "WARNING"}, {"INFO", "DEBUG"}),
    (("-v",), (), {"NOTICE", "WARNING", "INFO"}, {"DEBUG"}),
    ((), ("-vv",), {"NOTICE", "WARNING", "INFO", "DEBUG"}, set()),
])
def test_serve_prints_only_its_own_lines_and_v_raises_the_level(tiny_preset, tmp_path, before, after, shown, hidden):
    """No JACK server and no MIDI backend: ALSA and libjack fail to open and say so on stderr; the terminal gets
    the ready line, one line about the clock and the warnings about what is missing, each a log line."""
    env = {**os.environ, "JACK_DEFAULT_SERVER": "musika-test-none", "JACK_NO_START_SERVER": "1"}
    out = subprocess.run([*MUSIKA, *before, "serve", *after, "--preset", str(tiny_preset), "--duration", "1",
                          "--osc-port", "0", "--control-log", "", "--threads", "1"],
                         capture_output=True, text=True, timeout=180, cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.splitlines()[0].startswith("musika: serving preset tiny")
    lines = out.stderr.splitlines()
    assert [line for line in lines if not LOG_LINE.match(line)] == [], out.stderr  # no C library's own lines
    levels = {LOG_LINE.match(line).group(1) for line in lines}
    assert shown <= levels and not levels & hidden, out.stderr
    notices = [line for line in lines if " NOTICE " in line]
    assert len(notices) == 1 and notices[0].endswith(
        "no sync source yet: playing on the internal clock at 128 BPM; will follow the host when it sends OSC "
        "transport (Reaper)"), notices


def test_bench_soak_refuses_impossible_settings(capsys):
    assert main(["bench", "--soak", "-1"]) == EXIT_BAD_INPUT
    assert "--soak must be a number of minutes between 0 and 1440, got -1" in capsys.readouterr().err
    assert main(["bench", "--soak", "1", "--flood", "-3"]) == EXIT_BAD_INPUT
    assert "--flood must be a number of datagrams, 0 or more, got -3" in capsys.readouterr().err
