"""`musika bench`: real-time factor per stage and for the whole chain, per preset and thread count.

Also measures the full-size reference configuration (random weights, exported once into runs/bench/ with the
training extra) both with the naive complex128 iSTFT of a faithful rebuild and with our float32 chain.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from generator.bench import format_table, measure_in_subprocess
from generator.errors import MusikaError
from generator.preset import list_preset_dirs, preset_search_path, resolve_preset_dir

logger = logging.getLogger(__name__)

REFERENCE_DIR = Path("runs/bench")


def reference_preset(root: Path = REFERENCE_DIR) -> Path:
    """The full-size reference configuration with random weights (built once; needs torch)."""
    target = root / "reference"
    if (target / "preset.json").is_file():
        return target
    try:
        import torch

        from generator.model_config import ModelConfig
        from training.export import export_preset
        from training.models import build_networks
    except ImportError as exc:
        raise MusikaError(f"building the reference configuration needs torch ({exc}); run `make test` once") from exc
    torch.manual_seed(0)
    nets = {k: v for k, v in build_networks(ModelConfig()).items() if k in ("generator", "decoder2", "decoder1")}
    logger.info("exporting the full-size reference configuration (random weights) to %s", target)
    return export_preset(nets, ModelConfig(), root, "reference", "full-size reference shapes, random weights")


def bench(presets: list[str], threads: list[int], seconds: float, repeats: int, reference: bool) -> list[dict]:
    rows = []
    if reference:
        ref = reference_preset()
        for n in threads:
            rows.append(measure_in_subprocess(ref, n, seconds, repeats, naive=True))
            rows.append(measure_in_subprocess(ref, n, seconds, repeats, naive=False))
    for p in presets:
        path = resolve_preset_dir(p)
        for n in threads:
            rows.append(measure_in_subprocess(path, n, seconds, repeats))
    return rows


def run(args: argparse.Namespace) -> int:
    presets = args.preset or [d.name for root in preset_search_path() for d in list_preset_dirs(root)]
    rows = bench(presets, args.threads, args.seconds, args.repeats, not args.no_reference)
    print(json.dumps(rows, indent=2) if args.json else format_table(rows))
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "bench",
        help="time each inference stage and the whole chain (real-time factors, peak memory)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--preset", action="append", help="preset to measure (default: every installed preset)")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="ONNX Runtime thread counts")
    p.add_argument("--seconds", type=float, default=23.78, help="audio per measurement")
    p.add_argument("--repeats", type=int, default=3, help="best of N runs")
    p.add_argument("--no-reference", action="store_true", help="skip the full-size reference configuration")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=run)
