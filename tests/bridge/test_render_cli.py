"""`musika render` end to end through musika.cli.main: exit codes, messages, files, VST3 in a session, replay."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from generator.timeline.control_log import ControlLogWriter, ControlRecord, SessionHeader
from musika.cli import EXIT_BAD_INPUT, EXIT_OK, main

ZAMCOMPX2 = Path("/usr/lib/vst3/ZamCompX2.vst3")
ZAMCOMP = Path("/usr/lib/vst3/ZamComp.vst3")


def write_session(tmp_path: Path, preset: Path, effects: str = "", extra: str = "") -> Path:
    p = tmp_path / "session.toml"
    p.write_text(f"""
[session]
tempo = 128.0
bars = 2
[output]
spectrograms = false
{extra}
[[stems]]
name = "one"
preset = "{preset}"
seed = 1
[[stems.effects]]
type = "Gain"
gain_db = 30.0
{effects}
""")
    return p


def test_render_session_writes_stems_and_mix(tiny_preset, tmp_path):
    session = write_session(tmp_path, tiny_preset)
    out = tmp_path / "out"
    assert main(["render", str(session), "--out", str(out), "--threads", "1", "--sample-rate", "48000"]) == EXIT_OK
    assert sorted(p.name for p in out.iterdir()) == ["mix.wav", "one.wav", "render.json"]
    info = sf.info(str(out / "one.wav"))
    assert info.samplerate == 48000 and info.frames == int(round(2 * 4 * 60 / 128 * 48000))
    assert info.subtype == "PCM_24"


@pytest.mark.skipif(not ZAMCOMPX2.exists(), reason="zam-plugins not installed (apt install zam-plugins)")
def test_render_with_a_vst3_plugin(tiny_preset, tmp_path):
    fx = f'[[stems.effects]]\nvst3 = "{ZAMCOMPX2}"\nparams = {{ threshold_db = -40.0, ratio = 10.0 }}\n'
    out_fx, out_dry = tmp_path / "fx", tmp_path / "dry"
    assert main(["render", str(write_session(tmp_path, tiny_preset, fx)), "--out", str(out_fx),
                 "--bits", "float", "--threads", "1"]) == EXIT_OK
    assert main(["render", str(write_session(tmp_path, tiny_preset)), "--out", str(out_dry),
                 "--bits", "float", "--threads", "1"]) == EXIT_OK
    wet, dry = (sf.read(d / "one.wav")[0] for d in (out_fx, out_dry))
    assert wet.shape == dry.shape
    assert np.sqrt(np.mean(wet**2)) < 0.7 * np.sqrt(np.mean(dry**2))  # the compressor acted


@pytest.mark.parametrize(
    ("effects", "extra", "message"),
    [
        ('[[stems.effects]]\ntype = "Reverbb"\n', "", r"unknown effect 'Reverbb'.*built-in effects: Bitcrush"),
        ('[[stems.effects]]\ntype = "Delay"\nfeedback = 2.0\n', "", r"feedback = 2\.0 is out of range; valid"),
        ("", "bits = 12", r"output\.bits \(line \d+\): value 12 is not valid; use one of 16, 24, float"),
        (f'[[stems.effects]]\nvst3 = "{ZAMCOMP}"\n', "", r"\(ZamComp\).*mono-only"),
        ('[[stems.effects]]\nvst3 = "/nope/X.vst3"\n', "", r"VST3 plugin /nope/X\.vst3 does not exist"),
    ],
)
def test_bad_input_exits_1_with_a_clear_message(tiny_preset, tmp_path, capsys, effects, extra, message):
    if "ZamComp" in effects and not ZAMCOMP.exists():
        pytest.skip("zam-plugins not installed")
    session = write_session(tmp_path, tiny_preset, effects, extra)
    out = tmp_path / "out"
    assert main(["render", str(session), "--out", str(out), "--threads", "1"]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err.startswith("musika render: ")
    assert re.search(message, err), err
    assert not out.exists() or not any(out.iterdir())


def test_invalid_toml_and_missing_arguments(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text("[session\n")
    assert main(["render", str(bad), "--out", str(tmp_path / "o")]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "bad.toml: invalid TOML" in err and "(at line 1, column" in err
    assert main(["render", "--out", str(tmp_path / "o")]) == EXIT_BAD_INPUT
    assert "give a session file" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["render", "--help"])
    assert exc.value.code == 0 and "--replay" in capsys.readouterr().out


def test_replay_a_performance_log(tiny_preset, tmp_path):
    log = tmp_path / "perf.jsonl"
    header = SessionHeader(preset="tiny", seed=2, bpm=128.0, meter=(4, 4), controls={"density": 3.0})
    with ControlLogWriter(log, header) as w:
        w.write(ControlRecord(0.0, "transport", "play", 0.0))
        w.write(ControlRecord(4.0, "control", "density", 8.0, "bar"))
    out = tmp_path / "out"
    rc = main(["render", "--replay", str(log), "--out", str(out), "--presets", str(tiny_preset.parent),
               "--replay-bars", "2", "--threads", "1", "--format", "flac"])
    assert rc == EXIT_OK
    assert sorted(p.name for p in out.iterdir()) == ["mix.flac", "mix.png", "render.json", "tiny.flac", "tiny.png"]
    assert sf.info(str(out / "tiny.flac")).frames == int(round(3 * 4 * 60 / 128 * 44100))  # bar 2 + 2 bars


def test_render_with_the_daemons_config_plays_its_phase(tiny_preset, tmp_path):
    """A render with --config musika.toml loads presets as `musika serve --config` does (here: the phase vocoder
    instead of the tiny preset's decoders' phase), so a live performance's replay sounds as it did."""
    config = tmp_path / "musika.toml"
    config.write_text('phase = "vocoder"\n')
    session = write_session(tmp_path, tiny_preset)
    plain, daemon = tmp_path / "plain", tmp_path / "daemon"
    assert main(["render", str(session), "--out", str(plain), "--bits", "float", "--threads", "1"]) == EXIT_OK
    assert main(["render", str(session), "--out", str(daemon), "--bits", "float", "--threads", "1",
                 "--config", str(config)]) == EXIT_OK
    a, b = (sf.read(d / "one.wav")[0] for d in (plain, daemon))
    assert a.shape == b.shape and not np.allclose(a, b, atol=1e-6)
    config.write_text("phase = \"decoder\"\n")
    assert main(["render", str(session), "--out", str(daemon), "--bits", "float", "--threads", "1",
                 "--config", str(config)]) == EXIT_OK
    np.testing.assert_array_equal(sf.read(daemon / "one.wav")[0], a)  # the tiny preset's own phase
    (tmp_path / "bad.toml").write_text('phase = "sideways"\n')
    assert main(["render", str(session), "--out", str(tmp_path / "x"), "--threads", "1",
                 "--config", str(tmp_path / "bad.toml")]) == EXIT_BAD_INPUT
