"""`musika doctor`: what this machine offers for audio, MIDI, JACK, Link and inference. Never crashes."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import platform
import shutil
from collections.abc import Callable
from typing import Any


def _probe(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except Exception as exc:  # doctor reports every failure instead of raising
        return {"available": False, "error": f"{type(exc).__name__}: {exc}"}


def _onnxruntime() -> dict[str, Any]:
    import onnxruntime as ort

    return {"available": True, "version": ort.__version__, "providers": ort.get_available_providers()}


def _module(name: str) -> Callable[[], dict[str, Any]]:
    def probe() -> dict[str, Any]:
        mod = importlib.import_module(name)
        return {"available": True, "version": getattr(mod, "__version__", "?")}

    return probe


def _audio() -> Any:
    from bridge.audio import describe_audio

    return describe_audio()


def _midi() -> Any:
    from bridge.midi import list_midi_backends

    return list_midi_backends()


def _torch() -> dict[str, Any]:
    spec = importlib.util.find_spec("torch")
    return {"available": spec is not None, "note": "needed only for training (musika-bridge[train])"}


def diagnose() -> dict[str, Any]:
    return {
        "system": {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count()},
        "onnxruntime": _probe(_onnxruntime),
        "audio": _probe(_audio),
        "midi": _probe(_midi),
        "link": _probe(_module("aalink")),
        "pedalboard": _probe(_module("pedalboard")),
        "jackd": {"available": shutil.which("jackd") is not None, "path": shutil.which("jackd")},
        "torch": _probe(_torch),
    }


def run(args: argparse.Namespace) -> int:
    report = diagnose()
    if args.json:
        print(json.dumps(report, indent=2, default=str))
        return 0
    for section, values in report.items():
        print(f"[{section}]")
        if isinstance(values, dict):
            for k, v in values.items():
                print(f"  {k}: {v}")
        else:
            print(f"  {values}")
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "doctor",
        help="report the audio/MIDI/JACK/Link/ONNX support of this machine",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)
