"""`musika bench`: real-time factor per stage and for the whole chain, per preset and thread count.

Also measures the full-size reference configuration (random weights, exported once into runs/bench/ with the
training extra) three ways side by side, from the same weights: the faithful rebuild (Conv/ConvTranspose
graphs, naive complex128 iSTFT), our exact fp32 chain (time-major MatMul decoders, blocked float32 iSTFT)
and our int8 chain (static QDQ decoders). Presets are measured as the engine runs them by default
(precision "auto") and, when that picks int8, in fp32 too.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from bench.measure import format_table, measure_in_subprocess
from generator.atomic import write_json
from generator.errors import MusikaError
from generator.runtime.preset import list_preset_dirs, load_preset, preset_search_path, resolve_preset_dir

logger = logging.getLogger(__name__)

REFERENCE_DIR = Path("runs/bench")
HOST_TOOLS = ("jackd", "jack_transport", "jack_midi_clock")  # the host-grid rig (scripts/live_phase.py)
REFERENCE_VERSION = 3  # bump when the reference build changes; older builds are rebuilt
NOISE_SCALE = 0.05  # noise-injection scalars of the random reference (0 would make decoder noise a no-op)


def _current(target: Path) -> bool:
    if not (target / "preset.json").is_file():
        return False
    try:
        return load_preset(target, verify=False).training.get("bench_reference_version") == REFERENCE_VERSION
    except MusikaError:
        return False


def reference_presets(root: Path = REFERENCE_DIR) -> dict[str, Path]:
    """{"faithful": ..., "optimised": ...}: the full-size reference with random weights exported as the
    faithful graphs and as our optimised graphs + int8 variants (built once; needs torch)."""
    targets = {"faithful": root / "reference", "optimised": root / "reference-opt"}
    if all(_current(t) for t in targets.values()):
        return targets
    try:
        import torch

        from generator.runtime.model_config import ModelConfig
        from training.export import export_preset
        from training.models import build_networks
    except ImportError as exc:
        raise MusikaError(f"building the reference configuration needs torch ({exc}); run `make test` once") from exc
    torch.manual_seed(0)
    nets = {k: v for k, v in build_networks(ModelConfig()).items() if k in ("generator", "decoder2", "decoder1")}
    with torch.no_grad():
        for net in nets.values():
            for m in net.modules():
                if m.__class__.__name__ == "NoiseInjection":
                    m.weight.fill_(NOISE_SCALE)
    training = {"bench_reference_version": REFERENCE_VERSION, "weights": "random, torch seed 0"}
    logger.info("exporting the full-size reference configuration (random weights) to %s", root)
    export_preset(nets, ModelConfig(), root, "reference", "full-size reference shapes, random weights, faithful "
                  "graphs", training=training, optimise="none")
    export_preset(nets, ModelConfig(), root, "reference-opt", "full-size reference shapes, random weights, "
                  "optimised graphs + int8", training=training, optimise="exact", int8="static")
    return targets


def bench(
    presets: list[str], threads: list[int], seconds: float, repeats: int, reference: bool, live: bool = True
) -> list[dict]:
    rows = []
    if reference:
        ref = reference_presets()
        for n in threads:
            rows.append(measure_in_subprocess(ref["faithful"], n, seconds, repeats, naive=True,
                                              label="reference, faithful rebuild"))
            rows.append(measure_in_subprocess(ref["optimised"], n, seconds, repeats, precision="fp32",
                                              label="reference, exact fp32"))
            rows.append(measure_in_subprocess(ref["optimised"], n, seconds, repeats, precision="int8",
                                              label="reference, int8"))
    for p in presets:
        path = resolve_preset_dir(p)
        for n in threads:
            row = measure_in_subprocess(path, n, seconds, repeats, live=live)
            rows.append(row)
            if row["precision"] == "int8":
                rows.append(measure_in_subprocess(path, n, seconds, repeats, precision="fp32", live=live,
                                                  label=f"{row['preset']} (fp32)"))
    return rows


def torch_vs_onnx(threads: list[int], repeats: int) -> list[dict]:
    """Eager PyTorch vs ONNX Runtime per network on the same weights (each thread count in its own process)."""
    rows = []
    for n in threads:
        cmd = [sys.executable, "-m", "training.bench_torch", "--threads", str(n), "--repeats", str(repeats)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if out.returncode != 0:
            raise MusikaError(f"torch comparison failed ({n} threads; needs the training extra): {out.stderr[-400:]}")
        rows += json.loads(out.stdout.strip().splitlines()[-1])
    return rows


def format_torch_table(rows: list[dict]) -> str:
    lines = ["| network | threads | eager PyTorch ms | ORT faithful graph ms | ORT exact rewrite ms | ORT speed-up |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {r['network']} | {r['threads']} | {r['torch_ms']} | {r['ort_faithful_ms']} | {r['ort_exact_ms']} | "
              f"{r['speedup']}x |" for r in rows]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    presets = args.preset or [d.name for root in preset_search_path() for d in list_preset_dirs(root)]
    if args.host_grid is not None:
        return _host_grid(["--jitter", f"{args.host_grid:g}", "--preset", presets[0]], args.json)
    if args.soak is not None and not (0 < args.soak <= 24 * 60):
        raise MusikaError(f"--soak must be a number of minutes between 0 and 1440, got {args.soak:g}")
    if args.flood < 0:
        raise MusikaError(f"--flood must be a number of datagrams, 0 or more, got {args.flood}")
    if args.soak and all(shutil.which(t) for t in HOST_TOOLS):
        installed = [d.name for root in preset_search_path() for d in list_preset_dirs(root)]
        other = next((p for p in [*presets[1:], *installed] if p != presets[0]), None)
        return _soak_host(args.soak, presets[0], args.flood, Path(args.soak_out), args.soak_sync, other,
                          tempo_changes=not args.soak_steady)
    if args.soak:
        from bench.soak import soak

        logger.warning("jackd, jack_transport or jack_midi_clock is missing: the soak runs in-process, without the "
                       "host's grid (make test installs them)")
        figures = soak([resolve_preset_dir(p) for p in presets], minutes=args.soak, threads=args.threads[0])
        print(json.dumps({"presets": presets, "minutes": args.soak, "threads": args.threads[0], **figures}, indent=2))
        return 0
    rows = bench(presets, args.threads, args.seconds, args.repeats, not args.no_reference, not args.no_live)
    print(json.dumps(rows, indent=2) if args.json else format_table(rows))
    if args.torch:
        trows = torch_vs_onnx(args.threads, args.repeats)
        print(json.dumps(trows, indent=2) if args.json else "\n" + format_torch_table(trows))
    return 0


def soak_plan(minutes: float, other_preset: str | None = None, measured: str = "") -> tuple[tuple, ...]:
    """What happens to the host and the daemon during a soak of `minutes` (seconds after the start, action, value):
    a new seed every 90 s, variation every 45 s, once each a clock stall, a transport stop and a locate, and with
    ``other_preset`` every 150 s from 75 s that preset for 30 s, then ``measured`` again."""
    total = minutes * 60.0
    plan: list[tuple] = [(t, "seed", k + 1) for k, t in enumerate(np.arange(90.0, total, 90.0))]
    plan += [(t, "variation", (0.3, 0.8)[k % 2]) for k, t in enumerate(np.arange(20.0, total, 45.0))]
    plan += [(0.4 * total, "stall", 1.5), (0.6 * total, "stop", 2.0), (0.8 * total, "locate", 64.0)]
    plan = [(float(t), a, float(v)) for t, a, v in plan]
    if other_preset:
        for t in np.arange(75.0, total - 35.0, 150.0):
            plan += [(float(t), "preset", other_preset), (float(t) + 30.0, "preset", measured)]
    return tuple(sorted(plan, key=lambda d: (d[0], d[1])))


def _soak_host(minutes: float, preset: str, flood: int, out: Path, sync: str = "midi", other: str | None = None,
               tempo_changes: bool = True) -> int:
    """The soak against the host's grid: scripts/live_phase.py's JACK rig (jack_transport, a recorder, and for
    ``sync`` midi jack_midi_clock) for `minutes`, with soak_plan's changes (``other``: the preset switched to and
    back), the host's tempo steps and ramps from a tempo map (link_peer.tempo_plan), and `flood` malformed OSC
    datagrams; every beat's phase goes to `out` (JSON), the daemon's log beside it (.log) with the clock's ticks
    (.ticks.npz: each tick's recorded sample and the host's beat there), the summary to stdout."""
    scripts = Path(__file__).resolve().parents[1] / "scripts"
    if not (scripts / "live_phase.py").is_file():
        raise MusikaError(f"{scripts / 'live_phase.py'} is not here: the soak against the host's grid runs from a "
                          "source checkout")
    spec = importlib.util.spec_from_file_location("live_phase", scripts / "live_phase.py")
    live_phase = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(live_phase)
    plan = soak_plan(minutes, other, preset)
    tempo = live_phase.tempo_plan(126.0, minutes * 60.0 + 8.0) if tempo_changes else None
    out.parent.mkdir(parents=True, exist_ok=True)
    figures = live_phase.measure(sync, seconds=minutes * 60.0, settle_s=8.0, preset=preset, track_bpm=False,
                                 disturb=plan, flood=flood, per_beat=True, tempo_plan=tempo,
                                 log_to=str(out.with_suffix(".log")))
    write_json(out, {**figures, "plan": plan, "tempo_plan": tempo})
    summary = {k: v for k, v in figures.items() if k not in ("beat_errors_ms", "daemon_log_tail")}
    print(json.dumps({**summary, "per_beat": str(out)}, indent=2))
    return 0


def _host_grid(args: list[str], as_json: bool) -> int:
    """Run scripts/live_phase.py (a JACK rig with a third-party MIDI clock) and print its figures."""
    script = Path(__file__).resolve().parents[1] / "scripts" / "live_phase.py"
    if not script.is_file():
        raise MusikaError(f"{script} is not here: the host-grid measurement runs from a source checkout")
    out = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True)
    if out.returncode != 0:
        raise MusikaError(f"live_phase.py exited with {out.returncode}: {out.stderr.strip()[-600:]}")
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    if as_json:
        print(json.dumps(figures, indent=2))
    else:
        print("live beats against the host grid ({sync}, jitter {jitter_percent:g} %): |phase| median "
              "{median_abs_ms:.1f} ms, p95 {p95_abs_ms:.1f} ms, signed {signed_median_ms:+.1f} ms, drift "
              "{drift_ms:+.1f} ms over {beats} beats; the daemon reported {daemon_phase_error_ms}".format(**figures))
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "bench",
        help="time each inference stage and the whole chain (real-time factors, load time, peak memory)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--preset", action="append", help="preset to measure (default: every installed preset)")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="ONNX Runtime thread counts")
    p.add_argument("--seconds", type=float, default=23.78, help="audio per measurement")
    p.add_argument("--repeats", type=int, default=3, help="best of N runs")
    p.add_argument("--no-reference", action="store_true", help="skip the full-size reference configuration")
    p.add_argument("--no-live", action="store_true", help="skip the live chain (tempo lock) measurement")
    p.add_argument("--soak", type=float, metavar="MINUTES", default=None,
                   help="instead: MINUTES of `musika serve` following jack_midi_clock (or --soak-sync jack: the "
                        "JACK transport) through JACK, recorded and beat-tracked against the host's own grid (every "
                        "beat's phase), with the host's tempo steps and ramps, seed, variation and preset changes, "
                        "a clock stall, a stop and a locate, while --flood malformed OSC datagrams arrive; without "
                        "jackd/jack_transport/jack_midi_clock: the engine in-process with tempo, control and preset "
                        "changes")
    p.add_argument("--soak-sync", choices=("midi", "jack"), default="midi",
                   help="what the daemon follows during --soak: jack_midi_clock's MIDI clock or the JACK transport")
    p.add_argument("--soak-steady", action="store_true",
                   help="--soak at one tempo (no tempo map: jack_transport is the timebase master)")
    p.add_argument("--flood", type=int, default=100_000, help="malformed OSC datagrams sent during --soak")
    p.add_argument("--soak-out", default="soak-phase.json",
                   help="where --soak writes every beat's phase (JSON; the daemon's log and clock ticks beside it)")
    p.add_argument("--host-grid", type=float, nargs="?", const=0.0, default=None, metavar="JITTER_PERCENT",
                   help="instead: 150 s of live beats against the host's grid from jack_midi_clock (with this much "
                        "jitter) into `musika serve --sync midi --output jack` (scripts/live_phase.py in this "
                        "checkout; needs jackd, jack_transport and jack_midi_clock)")
    p.add_argument("--torch", action="store_true", help="also time eager PyTorch vs ONNX Runtime on the same weights")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=run)


def reference_preset(root: Path = REFERENCE_DIR) -> Path:
    """The faithful full-size reference preset (kept for callers of the earlier API)."""
    return reference_presets(root)["faithful"]
