"""`musika eval PRESET`: measure a preset and write the figures into preset.json and MODEL_CARD.md.

A thin wrapper over training.eval.evaluate / write_results; errors are MusikaError subclasses that the
`musika` entry point turns into a one-line message and exit code 1.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

from generator.runtime.model_config import PHASES

FMT = argparse.ArgumentDefaultsHelpFormatter


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "eval", help="measure a preset (tempo, density, reconstruction, realism, seams) and update its card",
        formatter_class=FMT,
        description="Generate seeded clips from a preset and measure them: tempo accuracy and beat regularity "
                    "(tempo presets), onsets/s vs requested density (density presets), autoencoder "
                    "reconstruction and realism against held-out audio (--dataset), and seams at window joins. "
                    "The figures go into preset.json \"metrics\" and MODEL_CARD.md (model hashes untouched).",
    )
    p.add_argument("preset", metavar="PRESET", help="preset name or directory")
    p.add_argument("--dataset", default=None, metavar="DIR",
                   help="prepared dataset whose held-out split is compared with the preset (default: the "
                        "preset's training data, when that directory exists)")
    p.add_argument("--quick", action="store_true", help="3 BPMs / 3 density levels, 1 seed, 6 s clips: a smoke test")
    p.add_argument("--seeds", type=int, default=4, help="seeds per BPM / density level")
    p.add_argument("--seconds", type=float, default=24.0, help="length of each generated clip")
    p.add_argument("--threads", type=int, default=None, help="ONNX Runtime threads (default: all cores)")
    p.add_argument("--phase", choices=PHASES, default=None,
                   help="the engine's phase (default: the preset's; see `musika generate --help`); the figures "
                        "record which")
    p.add_argument("--tempo-from-data", action="store_true",
                   help="ask for the tempi of the dataset's training chunks (11 quantiles) instead of 120-160 BPM: "
                        "for a preset trained on recordings that each keep one tempo")
    p.add_argument("--no-write", action="store_true", help="print the figures; leave preset.json and the card alone")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    p.set_defaults(func=run)


def run_eval(
    preset: str, dataset: str | None = None, quick: bool = False, seeds: int = 4, seconds: float = 24.0,
    threads: int | None = None, write: bool = True, phase: str | None = None, tempo_from_data: bool = False,
) -> dict[str, Any]:
    """Evaluate `preset`; with `write`, merge the figures into preset.json and rewrite MODEL_CARD.md."""
    from generator.runtime.preset import resolve_preset_dir
    from training.eval import evaluate, write_results

    directory = resolve_preset_dir(preset)
    if write and phase is not None:
        from generator.runtime.preset import load_preset
        from training.errors import TrainingError

        own = load_preset(directory).config.audio.phase
        if phase != own:
            raise TrainingError(f"--phase {phase}: this preset plays {own!r} (audio.phase), and preset.json and its "
                                "card must describe what it plays; add --no-write to measure another phase, or "
                                f"re-export with `musika export --phase {phase}`")
    results = evaluate(directory, dataset=dataset, seeds=seeds, seconds=seconds, quick=quick, threads=threads,
                       phase=phase, tempo_from_data=tempo_from_data)
    if write:
        if results.get("eval", {}).get("dataset"):
            from generator.runtime.preset import load_preset
            from training.data.dataset import Dataset
            from training.model_card import write_listening

            write_listening(load_preset(directory), Dataset(results["eval"]["dataset"]), threads=threads)
        write_results(directory, results)
    return results


def summary(results: dict[str, Any]) -> str:
    """A few lines for the terminal: each bar with pass/fail, then what was skipped."""

    def fmt(v: Any) -> str:
        return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3g}"

    lines = []
    for section, key in (("tempo", "within_tolerance"), ("tempo", "median_ibi_cv"), ("density", "spearman"),
                         ("autoencoder", "onset_f_measure"), ("autoencoder", "mr_log_spectral_distance_db"),
                         ("realism", "ratio"), ("seams", "max_ratio")):
        if results.get(section):
            bar = (results.get("bars") or {}).get(f"{section}/{key}")
            verdict = "" if bar is None else ("  PASS" if bar["pass"] else f"  FAIL (needs {bar['op']} "
                                                                          f"{bar['threshold']:g})")
            lines.append(f"{section}/{key}: {fmt(results[section].get(key))}{verdict}")
    lines += [f"{section}: skipped ({why})" for section, why in (results.get("skipped") or {}).items()]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    results = run_eval(args.preset, dataset=args.dataset, quick=args.quick, seeds=args.seeds,
                       seconds=args.seconds, threads=args.threads, write=not args.no_write, phase=args.phase,
                       tempo_from_data=args.tempo_from_data)
    print(json.dumps(results, indent=2) if args.json else summary(results))
    if not args.no_write:
        from generator.runtime.preset import resolve_preset_dir

        print(f"updated {Path(resolve_preset_dir(args.preset)) / 'preset.json'} and MODEL_CARD.md")
    return 0
