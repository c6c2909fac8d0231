"""``musika prepare techno|piano|classical|folder``: argparse registration and handlers.

``add_parser(subparsers)`` registers the ``prepare`` verb on the main ``musika`` parser; every leaf parser sets
``func``, a callable taking the parsed Namespace and returning an exit code (0 done, 1 bad input). Library
errors (MusikaError) become one line on stderr. ``python -m training.data.cli prepare ...`` works standalone.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from generator.errors import MusikaError
from training.data.folder_checks import MIN_LABELLED, MIN_MINUTES

_FMT = argparse.ArgumentDefaultsHelpFormatter


def _run(name: str, call: Callable[[], dict[str, Any]]) -> int:
    from training.data.report import format_summary

    try:
        result = call()
    except MusikaError as exc:
        print(f"musika prepare {name}: error: {exc}", file=sys.stderr)
        return 1
    print(format_summary(result))
    return 0


def _progress(ns: argparse.Namespace) -> bool | None:
    return False if ns.quiet else None


def run_techno(ns: argparse.Namespace) -> int:
    try:
        from training.data.techno import prepare_techno
    except ImportError as exc:
        print(f"musika prepare techno: error: the techno generator is not available ({exc})", file=sys.stderr)
        return 1
    return _run(
        "techno",
        lambda: prepare_techno(ns.hours, ns.seed, ns.out, chunk_seconds=ns.chunk_seconds, workers=ns.workers),
    )


def run_rendered(ns: argparse.Namespace) -> int:
    """``prepare piano`` and ``prepare classical``: scores rendered with FluidSynth (training.data.scores)."""
    from training.data.classical import prepare_classical
    from training.data.piano import prepare_piano

    prepare = prepare_piano if ns.source == "piano" else prepare_classical
    extra = {"generated_fraction": ns.generated_fraction} if ns.source == "piano" else {}
    return _run(ns.source, lambda: prepare(ns.hours, ns.seed, ns.out, chunk_seconds=ns.chunk_seconds,
                                           workers=ns.workers, soundfont=ns.soundfont,
                                           max_work_seconds=ns.max_work_seconds, progress=_progress(ns), **extra))


def run_folder(ns: argparse.Namespace) -> int:
    from training.data.folder import prepare_folder

    return _run(
        "folder",
        lambda: prepare_folder(
            ns.input,
            ns.out,
            label=ns.label,
            chunk_seconds=ns.chunk_seconds,
            min_chunk_seconds=ns.min_chunk_seconds,
            bpm_range=(ns.bpm_min, ns.bpm_max),
            min_minutes=ns.min_minutes,
            min_labelled=ns.min_labelled,
            progress=_progress(ns),
        ),
    )


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _common(p: argparse.ArgumentParser, seeded: bool) -> None:
    p.add_argument(
        "--out", type=Path, required=True, default=argparse.SUPPRESS, help="dataset directory to create or update"
    )
    p.add_argument("--chunk-seconds", type=_positive, default=30.0, help="chunk length (whole latent steps)")
    if seeded:
        p.add_argument("--hours", type=_positive, default=1.0, help="hours of audio to produce")
        p.add_argument("--seed", type=int, default=0, help="seed: the same seed gives the same dataset")
        p.add_argument("--workers", type=int, default=1, help="parallel worker processes")
    p.add_argument("--quiet", action="store_true", help="no progress bar (it is shown only on a terminal anyway)")


def add_parser(subparsers: Any) -> None:
    """Register ``prepare`` (techno, piano, classical, folder) on an argparse subparsers object."""
    prep = subparsers.add_parser(
        "prepare",
        help="build a training dataset (synthetic techno, rendered piano or classical, or your audio folder)",
        description="Build a training dataset: 44.1 kHz stereo chunks, labels, train/held-out split, DATASET.md. "
        "Re-running with the same arguments reuses the work already done.",
        formatter_class=_FMT,
    )
    sub = prep.add_subparsers(dest="source", required=True, metavar="{techno,piano,classical,folder}")

    p = sub.add_parser(
        "techno",
        help="synthetic techno with exact tempo labels",
        description="Generate synthetic techno tracks with exact tempo labels.",
        formatter_class=_FMT,
    )
    _common(p, seeded=True)
    p.set_defaults(func=run_techno)

    p = sub.add_parser(
        "piano",
        help="solo piano rendered from the music21 corpus, labelled with note density",
        description="Render scores from the music21 corpus (plus generated figuration) as solo piano with "
        "FluidSynth and a light room reverb; label: MIDI note density per latent step.",
        formatter_class=_FMT,
    )
    _common(p, seeded=True)
    p.add_argument(
        "--soundfont", type=Path, default=None, help="GM .sf2 file (None: FluidR3_GM if installed, else TimGM6mb)"
    )
    p.add_argument("--generated-fraction", type=float, default=0.2, help="share of generated figuration (0..1)")
    p.add_argument("--max-work-seconds", type=_positive, default=180.0, help="longest excerpt taken from one work")
    p.set_defaults(func=run_rendered)

    p = sub.add_parser(
        "classical",
        help="chamber and orchestral music rendered from the music21 corpus, labelled with note density",
        description="Render polyphonic works from the music21 corpus with each part on its own instrument "
        "(string quartet, string orchestra, wind quintet, chamber orchestra, strings and organ) with FluidSynth "
        "and a light room reverb; label: MIDI note density per latent step.",
        formatter_class=_FMT,
    )
    _common(p, seeded=True)
    p.add_argument(
        "--soundfont", type=Path, default=None, help="GM .sf2 file (None: FluidR3_GM if installed, else TimGM6mb)"
    )
    p.add_argument("--max-work-seconds", type=_positive, default=180.0, help="longest excerpt taken from one work")
    p.set_defaults(func=run_rendered)

    p = sub.add_parser(
        "folder",
        help="your audio files (wav, flac, mp3, ogg, aiff), labelled automatically",
        description="Turn a folder of audio files (any rate, mono or stereo, any length) into a dataset. "
        "Unreadable files are skipped and listed with the reason.",
        formatter_class=_FMT,
    )
    p.add_argument("input", type=Path, metavar="IN", help="folder of audio files (searched recursively)")
    _common(p, seeded=False)
    p.add_argument(
        "--label",
        choices=("tempo", "density", "none"),
        default="tempo",
        help="automatic label: tempo (beat tracking), density (onsets per second) or none",
    )
    p.add_argument("--min-chunk-seconds", type=float, default=5.0, help="shorter tails join the previous chunk")
    p.add_argument("--bpm-min", type=_positive, default=60.0, help="tempo labels are halved/doubled into range")
    p.add_argument("--bpm-max", type=_positive, default=200.0, help="upper end of the tempo range")
    p.add_argument(
        "--min-minutes", type=float, default=MIN_MINUTES, help="refuse a folder with less usable audio (0: off)"
    )
    p.add_argument(
        "--min-labelled",
        type=float,
        default=MIN_LABELLED,
        help="refuse --label tempo/density when a smaller share of chunks gets a confident label (0: off)",
    )
    p.set_defaults(func=run_folder)


def main(argv: Sequence[str] | None = None) -> int:
    """Standalone entry: ``python -m training.data.cli prepare SOURCE ...``."""
    parser = argparse.ArgumentParser(prog="musika", formatter_class=_FMT)
    add_parser(parser.add_subparsers(dest="command", required=True))
    ns = parser.parse_args(argv)
    return int(ns.func(ns))


if __name__ == "__main__":
    sys.exit(main())
