"""Every example in README.md and docs/examples/ runs, as a user would run it, with the shipped presets.

The examples are read from the docs, so the tests follow them:
- fenced ``sh`` blocks in README.md: one command a line (``musika ...``, ``make ...`` or ``cp FILE DEST``), run in
  order in a scratch folder that sees the repository's ``docs/`` (README paths are relative to the checkout).
  ``generate``, ``render``, ``presets`` and ``doctor`` run as written. ``serve`` runs as written plus a few flags
  that keep it short and device-free (2 s on the internal clock into a WAV file, no MIDI, any free OSC port).
  ``prepare``, ``train``, ``export``, ``eval`` and ``bench`` need data sets and hours: they are parsed by the real
  command-line parser, which refuses any flag or value that does not exist. ``make`` lines are dry-run.
- fenced ``toml`` blocks in README.md: a session (it has ``[session]``) is rendered; anything else is a
  musika.toml, loaded by the real loader, and each of its CC mappings must name a control of its preset.
- inline `musika ...` spans in README.md and docs/daw/*.md: every flag must exist for that command.
- every file in docs/examples/ must be used by a README example that runs.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from bridge.config import load_config
from bridge.controls import control_specs
from generator.offline.session import load_session
from generator.runtime.preset import load_preset
from musika.cli import build_parser, main

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
EXAMPLES = REPO / "docs" / "examples"
RUN_AS_WRITTEN = {"generate", "render", "presets", "doctor"}
PARSE_ONLY = {"prepare", "train", "export", "eval", "bench"}
SERVE_SHORT = ["--duration", "2", "--sync", "internal", "--output", "wav", "--no-midi", "--osc-port", "0"]
FENCE = re.compile(r"^```(\w+)\n(.*?)^```", re.MULTILINE | re.DOTALL)
INLINE = re.compile(r"`(musika [^`]+)`")


def fenced(text: str, language: str) -> list[str]:
    return [body for lang, body in FENCE.findall(text) if lang == language]


def command_lines(block: str) -> list[list[str]]:
    return [argv for line in block.splitlines() if (argv := shlex.split(line, comments=True))]


def sh_blocks() -> list[str]:
    return fenced(README.read_text(), "sh")


def block_id(block: str) -> str:
    return command_lines(block)[0][0] + " " + command_lines(block)[0][1]


def subcommand(parser: argparse.ArgumentParser, words: list[str]) -> tuple[argparse.ArgumentParser, list[str]]:
    """Descend `musika verb [stage]` to the parser that takes the remaining words."""
    while words:
        sub = next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)
        if sub is None or words[0] not in sub.choices:
            break
        parser, words = sub.choices[words[0]], words[1:]
    return parser, words


def parse(argv: list[str]) -> argparse.Namespace:
    """The real parser's verdict on a documented command line (argparse exits 2 on a bad flag or value)."""
    assert argv[0] == "musika"
    try:
        return build_parser().parse_args(argv[1:])
    except SystemExit as exc:
        raise AssertionError(f"`{shlex.join(argv)}` is not a valid command line (exit {exc.code})") from exc


def check_render_output(out: Path, session_file: Path | None = None) -> None:
    """Every stem and the mix exist and are equally long; the mix is not silent. For a session: the files start at
    bar 1 and are exactly bars + tail_bars long at its sample rate, and the mix meets its loudness target."""
    meta = json.loads((out / "render.json").read_text())
    if session_file is not None:
        session = load_session(session_file)
        assert (meta["bars"], meta["tail_bars"]) == (session.bars, session.output.tail_bars)
        assert meta["sample_rate"] == session.output.sample_rate
        assert len(meta["bar_starts"]) == session.total_bars + 1 and meta["bar_starts"][-1] == meta["samples"]
        if session.mix.lufs is not None:
            assert meta["master"]["lufs_out"] == pytest.approx(session.mix.lufs, abs=0.5)
    for name, stem in meta["stems"].items():
        assert sf.info(str(out / stem["file"])).frames == meta["samples"], name
    mixed = sf.info(str(out / "mix.wav"))
    assert (mixed.frames, mixed.samplerate, mixed.channels) == (meta["samples"], meta["sample_rate"], 2)
    mix = sf.read(str(out / "mix.wav"), dtype="float32")[0]
    assert np.abs(mix).max() > 1e-3


def run_serve(argv: list[str], cwd: Path) -> None:
    """`musika serve` as written, plus SERVE_SHORT; it must start, play into its WAV file and stop cleanly."""
    env = {**os.environ, "JACK_DEFAULT_SERVER": "musika-docs-none", "JACK_NO_START_SERVER": "1"}
    recording = cwd / "runs" / "musika-live.wav"
    recording.unlink(missing_ok=True)
    out = subprocess.run([sys.executable, "-m", "musika", *argv[1:], *SERVE_SHORT], cwd=cwd, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "musika: serving preset " in out.stdout
    audio = sf.read(str(recording), dtype="float32")[0]
    assert np.abs(audio).max() > 1e-3, "serve played silence"


def run_command(argv: list[str], cwd: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if argv[0] == "make":
        assert argv[1:] in (["run"], ["test"]), f"unknown make target in README: {argv}"
        if shutil.which("make") is None:
            return
        dry = subprocess.run(["make", "-n", *argv[1:]], cwd=REPO, capture_output=True, text=True, timeout=60)
        assert dry.returncode == 0, dry.stderr
        assert ("musika serve --preset techno" if argv[1] == "run" else "pytest") in dry.stdout
        return
    if argv[0] == "cp":
        src, dest = argv[1:]
        shutil.copy(REPO / src, cwd / dest)
        return
    assert argv[0] == "musika", f"README example {argv} is neither musika, make nor cp: teach this test about it"
    args = parse(argv)
    if args.command in PARSE_ONLY:
        return
    if args.command == "serve":
        run_serve(argv, cwd)
        return
    assert args.command in RUN_AS_WRITTEN, f"no rule for `musika {args.command}` examples"
    rc = main(argv[1:])
    assert rc == 0, capsys.readouterr().err[-2000:]
    if args.command == "generate":
        info = sf.info(str(cwd / args.out))
        assert (info.samplerate, info.channels, info.frames) == (44100, 2, round(args.seconds * 44100))
    elif args.command == "render":
        check_render_output(cwd / args.out, cwd / args.session if args.session else None)


@pytest.fixture
def user_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A scratch working folder that sees the checkout's docs/, as a user in the repository does."""
    (tmp_path / "docs").symlink_to(REPO / "docs", target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("block", sh_blocks(), ids=block_id)
def test_readme_command_examples_run(block: str, user_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for argv in command_lines(block):
        run_command(argv, user_dir, capsys)


def test_readme_quick_start_is_two_commands() -> None:
    first = sh_blocks()[0]
    assert [argv[:2] for argv in command_lines(first)] == [["make", "run"], ["make", "test"]]


@pytest.mark.parametrize("index", range(len(fenced(README.read_text(), "toml"))))
def test_readme_toml_examples_load_and_render(index: int, user_dir: Path) -> None:
    text = fenced(README.read_text(), "toml")[index]
    path = user_dir / f"example-{index}.toml"
    path.write_text(text)
    if "[session]" in text:
        assert main(["render", str(path), "--out", "out"]) == 0
        check_render_output(user_dir / "out", path)
        return
    cfg = load_config(path)
    preset = load_preset(cfg.preset, verify=False)
    specs = control_specs(preset.controls, variation=preset.config.gan.default_truncation)
    assert cfg.midi.cc, "a musika.toml example in the README maps no knob"
    for cc in cfg.midi.cc:
        assert cc.control in specs, f"{cc.control!r} is not a control of preset {preset.name!r}: {sorted(specs)}"
        spec = specs[cc.control]
        if cc.range is not None:
            assert spec.min <= min(cc.range) and max(cc.range) <= spec.max, (cc.control, cc.range, spec)


def test_inline_commands_use_flags_that_exist() -> None:
    parser = build_parser()
    docs = [README, *sorted((REPO / "docs" / "daw").glob("*.md"))]
    checked = 0
    for doc in docs:
        for span in INLINE.findall(doc.read_text()):
            words = [w.strip("[]") for w in shlex.split(span.replace("|", " "))][1:]
            while words and words[0].startswith("-"):  # options of `musika` itself, such as -v
                assert words[0] in parser._option_string_actions, f"{doc.name}: `{span}`: musika has no {words[0]}"
                words = words[1:]
            sub, rest = subcommand(parser, words)
            assert sub is not parser, f"{doc.name}: `{span}` names no musika command"
            for word in rest:
                flag = word.split("=", 1)[0]
                if flag.startswith("--"):
                    assert flag in sub._option_string_actions, f"{doc.name}: `{span}`: {sub.prog} has no {flag}"
                    checked += 1
    assert checked > 20


def test_every_example_file_is_run_by_a_readme_example() -> None:
    run = " ".join(shlex.join(argv) for block in sh_blocks() for argv in command_lines(block))
    for example in sorted(EXAMPLES.iterdir()):
        assert f"docs/examples/{example.name}" in run, f"no README example runs docs/examples/{example.name}"
