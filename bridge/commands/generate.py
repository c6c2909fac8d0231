"""`musika generate`: N seconds of music from a preset to an audio file (a tempo preset on the grid of its tempo)."""

from __future__ import annotations

import argparse
import logging
import math
import time
from pathlib import Path

import numpy as np

from generator.errors import ConditioningError
from generator.offline.audio_file import check_writable, write_audio
from generator.runtime.engine import Engine, default_threads
from generator.runtime.model_config import PHASES
from generator.runtime.output_stage import CEILING_DBTP, TARGET_LUFS, OutputSettings
from generator.timeline.control_log import SessionHeader
from generator.timeline.stream import render_offline

logger = logging.getLogger(__name__)


def generate(
    preset: str,
    seconds: float,
    out: Path,
    bpm: float | None = None,
    density: float | None = None,
    seed: int = 0,
    truncation: float | None = None,
    threads: int | None = None,
    bits: str = "24",
    phase: str | None = None,
    gain_db: float = 0.0,
    loudness_lufs: float = TARGET_LUFS,
    ceiling_dbtp: float = CEILING_DBTP,
) -> Path:
    """Generate `seconds` of stereo 44.1 kHz audio and write it to `out` (atomically), through the output stage:
    the preset's loudness matched to `loudness_lufs`, `gain_db` on top, true peaks under `ceiling_dbtp`."""
    if not math.isfinite(seconds) or seconds <= 0 or seconds > 24 * 3600:
        raise ConditioningError(f"--seconds {seconds} is invalid; give a duration between 0 and 86400 seconds")
    if truncation is not None and not (math.isfinite(truncation) and 0 < truncation <= 10):
        raise ConditioningError(f"--truncation {truncation} is invalid; use a value in (0, 10]; default: the preset's")
    output = OutputSettings(target_lufs=loudness_lufs, ceiling_dbtp=ceiling_dbtp, gain_db=gain_db)
    check_writable(out)
    engine = Engine.load(preset, threads=threads, phase=phase, output=output)
    conditioning: dict[str, float] = {}
    for name, value, flag in (("tempo", bpm, "--bpm"), ("density", density, "--density")):
        if value is None:
            continue
        if not engine.preset.has_condition(name):
            known = ", ".join(c.name for c in engine.preset.controls) or "no conditioning"
            raise ConditioningError(f"{flag}: preset {engine.preset.name!r} is not conditioned on {name} ({known})")
        engine.preset.condition(name).check(value)
        conditioning[name] = value
    start = time.perf_counter()
    if engine.preset.has_condition("tempo"):  # the live path: each beat and off-beat snapped onto the grid
        audio = on_the_grid(engine, seconds, conditioning, seed, truncation)
    else:
        audio = engine.generate(seconds, conditioning, seed=seed, truncation=truncation)
    elapsed = time.perf_counter() - start
    write_audio(out, audio, engine.config.audio.sample_rate, bits=bits)
    logger.info("wrote %s: %.1f s of audio in %.2f s (%.1fx real time)", out, seconds, elapsed, seconds / elapsed)
    return out


def on_the_grid(engine: Engine, seconds: float, conditioning: dict[str, float], seed: int,
                truncation: float | None) -> np.ndarray:
    """`seconds` of a tempo preset as `musika serve` and `musika render` play it from a bar line: through the tempo
    lock and its beat snap (generator.timeline.stream.render_offline), so the clip's beats sit on the grid of its
    tempo from its first sample, as a DAW places it."""
    bpm = conditioning.get("tempo", engine.preset.condition("tempo").default)
    controls = {k: v for k, v in conditioning.items() if k != "tempo"}
    if truncation is not None:
        controls["variation"] = truncation
    header = SessionHeader(preset=engine.preset.name, seed=seed, bpm=bpm,
                           sample_rate=engine.config.audio.sample_rate, controls=controls)
    samples = int(round(seconds * header.sample_rate))
    audio = render_offline(engine, header, end_beat=seconds * bpm / 60.0 + 1.0)
    return audio[:, :samples]


def run(args: argparse.Namespace) -> int:
    generate(
        preset=args.preset,
        seconds=args.seconds,
        out=Path(args.out),
        bpm=args.bpm,
        density=args.density,
        seed=args.seed,
        truncation=args.truncation,
        threads=args.threads,
        bits=args.bits,
        phase=args.phase,
        gain_db=args.gain_db,
        loudness_lufs=args.loudness_lufs,
        ceiling_dbtp=args.ceiling_dbtp,
    )
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "generate",
        help="generate N seconds of music to an audio file",
        description="Generate stereo 44.1 kHz music from a preset and write it to a wav/flac/ogg file. A tempo "
                    "preset plays as musika serve plays it from a bar line: each beat and off-beat snapped onto the "
                    "grid of its tempo (sync.snap_ms, 25 ms), so the file drops onto a DAW's grid.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--preset", default="techno", help="preset name (see `musika presets`) or directory")
    p.add_argument("--seconds", type=float, default=30.0, help="length of the output")
    p.add_argument("--bpm", type=float, default=None, help="tempo for tempo-conditioned presets (default: preset's)")
    p.add_argument("--density", type=float, default=None, help="note density (onsets/s) for density presets")
    p.add_argument("--seed", type=int, default=0, help="random seed; the same seed gives the same audio")
    p.add_argument("--truncation", type=float, default=None,
                   help="variation: truncation bound (default: the preset's, see its card)")
    p.add_argument("--threads", type=int, default=default_threads(), help="ONNX Runtime threads")
    p.add_argument("--phase", choices=PHASES, default=None,
                   help="decoder: decoder1's phase; vocoder: made from the magnitudes (no 43 Hz buzz); "
                        "vocoder-joins: also restarting at attacks on decoder-window joins; default: the preset's")
    p.add_argument("--gain-db", type=float, default=0.0, help="your gain on top of the loudness match (dB)")
    p.add_argument("--loudness-lufs", type=float, default=TARGET_LUFS,
                   help="integrated loudness every calibrated preset plays at (LUFS, -36 to -9)")
    p.add_argument("--ceiling-dbtp", type=float, default=CEILING_DBTP,
                   help="no sample or inter-sample peak above this (dBTP, -12 to 0)")
    p.add_argument("--bits", choices=["16", "24", "float"], default="24", help="sample format")
    p.add_argument("--out", required=True, help="output file (.wav, .flac, .ogg)")
    p.set_defaults(func=run)
