"""`musika presets`: list installed presets with their conditioning and metrics; `--calibrate NAME` measures a
preset's loudness for the output stage and, for a preset conditioned on the beat phase, where its beats are
heard against the host's (generator.timeline.beat_calibration)."""

from __future__ import annotations

import argparse
import json

from generator.errors import PresetError
from generator.runtime.preset import Condition, list_preset_dirs, load_preset, preset_search_path


def list_presets(search: tuple[str, ...] = (), verify: bool = False) -> list[dict]:
    """One dict per preset found on the search path; broken presets are listed with their error."""
    rows = []
    seen = set()
    for root in preset_search_path(search):
        for d in list_preset_dirs(root):
            if d.name in seen:
                continue
            seen.add(d.name)
            try:
                p = load_preset(d, verify=verify)
            except PresetError as exc:
                rows.append({"name": d.name, "path": str(d), "error": str(exc)})
                continue
            rows.append(
                {
                    "name": p.name,
                    "path": str(d),
                    "description": p.description,
                    "conditioning": [describe_condition(c) for c in p.conditioning],
                    "metrics": dict(p.metrics),
                }
            )
    return rows


def run(args: argparse.Namespace) -> int:
    if args.calibrate:
        from generator.runtime.loudness import calibrate_preset  # loads ONNX Runtime: only when asked
        from generator.timeline.beat_calibration import calibrate_beat_offset

        for name in args.calibrate:
            path = load_preset(name, search=tuple(args.search)).path
            report = calibrate_preset(path, threads=args.threads)
            print(f"{name}: {report['loudness_lufs']:.1f} LUFS at the decoders' level (per seed "
                  f"{', '.join(f'{v:.1f}' for v in report['per_seed'])}); written to its preset.json")
            beats = calibrate_beat_offset(path, threads=args.threads)
            if beats is not None:
                print(f"{name}: beats heard {beats['residual_ms']:+.1f} ms from the conditioned grid "
                      f"({beats['beats']} beats, p95 {beats['p95_abs_ms']:.1f} ms around that); it now plays "
                      f"{-beats['offset_ms']:+.1f} ms later, written to its preset.json")
        return 0
    rows = list_presets(tuple(args.search), verify=args.verify)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("no presets found on", ", ".join(map(str, preset_search_path(args.search))))
        return 1
    for r in rows:
        if "error" in r:
            print(f"{r['name']:<12} BROKEN: {r['error']}")
            continue
        cond = "; ".join(r["conditioning"]) or "unconditioned"
        print(f"{r['name']:<12} {cond}")
        if r["description"]:
            print(f"{'':<12} {r['description']}")
        for k, v in r["metrics"].items():
            if isinstance(v, (int, float, str)):
                print(f"{'':<12} {k}: {v}")
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "presets",
        help="list presets with conditioning and metrics",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--search", action="append", default=[], help="extra folder to search for presets")
    p.add_argument("--verify", action="store_true", help="check every model file's sha256")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--calibrate", action="append", default=[], metavar="PRESET",
                   help="measure the preset's loudness at its defaults and, for a beat-phase preset, where its "
                        "beats are heard; record both in its preset.json, so the output stage plays it at the "
                        "target loudness and its beats on the host's (repeatable)")
    p.add_argument("--threads", type=int, default=1, help="ONNX Runtime threads for --calibrate")
    p.set_defaults(func=run)


def describe_condition(c: Condition) -> str:
    """'tempo (scalar, 118-162 BPM)'; a phase says where it comes from instead of a range."""
    if c.kind == "phase":
        return f"{c.name} (phase: position in the bar, from the host's transport)"
    return f"{c.name} ({c.kind}, {c.min:g}-{c.max:g} {c.unit})"
