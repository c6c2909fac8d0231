"""``musika autoencoder export|eval``: a shared autoencoder from a training checkpoint, and its per-domain figures.

torch is imported inside the handlers. Exit codes as every command: 0 done, 1 bad input (MusikaError).
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from generator.runtime.model_config import PHASES, SAMPLE_RATE

FMT = argparse.ArgumentDefaultsHelpFormatter


def dataset_summary(roots: Sequence[str], licences: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Per dataset: its kind, hours of the train split, sources and licences (from dataset.json; a
    "DATASET=TEXT" entry of ``licences`` replaces a dataset's licence lines, e.g. for recordings from a package)."""
    from training.data.dataset import Dataset
    from training.shared_autoencoder import SharedAutoencoderError

    bad = [item for item in licences if "=" not in item]
    if bad:
        raise SharedAutoencoderError(f"--data-licence {bad[0]!r}: expected DATASET=TEXT, e.g. data/mine=CC-BY-4.0")
    given = dict(item.split("=", 1) for item in licences)
    unknown = sorted(set(given) - {str(r) for r in roots})
    if unknown:
        raise SharedAutoencoderError(f"--data-licence names {unknown}, which are not among --data "
                                     f"{list(map(str, roots))}")
    out = []
    for root in roots:
        info = Dataset(root).info
        sources = info.get("sources", [])
        own = [str(s) for s in info.get("licences", [])]
        out.append({"kind": info.get("kind"), "dataset": str(root),
                    "hours_train": float(info.get("hours_by_split", {}).get("train", info.get("hours", 0.0))),
                    "sources": [str(s) for s in sources][:3] if isinstance(sources, list) else [],
                    "licences": [given[str(root)]] if str(root) in given else own})
    return out


def calibration_audio(roots: Sequence[str], per_dataset: int = 2, seconds: float = 6.0) -> list[np.ndarray]:
    """A few held-out excerpts from each dataset (train chunks when a dataset has no held-out split)."""
    from training.data.dataset import Dataset

    clips = []
    for root in roots:
        ds = Dataset(root)
        chunks = sorted(ds.split("heldout"), key=lambda c: c.id) or sorted(ds.split("train"), key=lambda c: c.id)
        for chunk in chunks[:: max(1, len(chunks) // per_dataset)][:per_dataset]:
            clips.append(ds.audio(chunk)[:, : int(seconds * SAMPLE_RATE)])
    return clips


def run_export(a: argparse.Namespace) -> int:
    from training.autoencoder_card import write_card
    from training.autoencoder_export import export_autoencoder
    from training.checkpoint import load_checkpoint
    from training.shared_autoencoder import read_autoencoder

    state = load_checkpoint(a.checkpoint)
    cfg = state.get("config", {})
    steps1 = int(cfg.get("steps_level1", 0))
    training = {"data": dataset_summary(a.data, a.data_licence or ()), "steps_level1": min(steps1, int(state["step"])),
                "steps_level2": max(0, int(state["step"]) - steps1),
                "wall_hours": float(state.get("wall_seconds", 0.0)) / 3600 + a.extra_wall_hours,
                "hardware": a.hardware or f"{platform.machine()} {platform.system()}, CPU",
                "date": datetime.date.today().isoformat(), "notes": list(a.note or [])}
    out = export_autoencoder(a.checkpoint, a.name, calibration_audio(a.data), out_root=a.out,
                             description=a.description, license=a.license, training=training,
                             int8=None if a.no_int8 else "static")
    write_card(out, read_autoencoder(out))
    print(f"wrote the shared autoencoder {out}")
    return 0


def run_eval(a: argparse.Namespace) -> int:
    """Figures of a shared autoencoder folder (written into it), or printed for a training checkpoint (.pt) or a
    preset's own encoders and decoders (a preset name or folder; both levels only)."""
    from training.ae_eval import evaluate_autoencoder, preset_codec
    from training.autoencoder_card import write_card
    from training.shared_autoencoder import CHECKPOINT, MANIFEST, SharedAutoencoderError, read_autoencoder

    if a.clips < 1 or not (0 < a.seconds < float("inf")):
        raise SharedAutoencoderError(f"--clips must be at least 1 and --seconds a positive number of seconds; got "
                                     f"{a.clips} and {a.seconds}")
    target = Path(a.autoencoder)
    progress = None if not a.quiet else False
    shared = (target / MANIFEST).is_file()
    if shared:
        manifest = read_autoencoder(target)
        figures = evaluate_autoencoder(target / CHECKPOINT, a.data, clips=a.clips, seconds=a.seconds,
                                       progress=progress)
    elif target.suffix == ".pt":
        figures = evaluate_autoencoder(target, a.data, clips=a.clips, seconds=a.seconds, progress=progress)
    else:
        codec = preset_codec(a.autoencoder, phase=a.phase)  # a preset name or folder; its errors name it
        figures = evaluate_autoencoder("", a.data, clips=a.clips, seconds=a.seconds, levels=(2,),
                                       progress=progress, codec=codec)
    metrics = {"date": datetime.date.today().isoformat(), "clips_per_domain": a.clips, "seconds": a.seconds,
               "command": f"musika autoencoder eval {target} --data {' '.join(a.data)} --clips {a.clips} "
                          f"--seconds {a.seconds:g}", "domains": figures}
    print(json.dumps(metrics, indent=2, default=float))
    if shared and not a.no_write:
        if a.picture:
            reconstruction_picture(target, a.data)
        manifest["metrics"] = json.loads(json.dumps(metrics, default=float).replace("NaN", "null"))
        from generator.atomic import write_text

        write_text(target / MANIFEST, json.dumps(manifest, indent=2) + "\n")
        write_card(target, manifest)
    return 0


def reconstruction_picture(directory: Path, roots: Sequence[str], seconds: float = 6.0) -> Path:
    """reconstructions.png: one held-out excerpt per domain above its reconstruction through both levels."""
    from generator.offline.spectrogram_png import spectrogram_png
    from training.encode import decode_latents, encode_audio, load_autoencoder
    from training.shared_autoencoder import CHECKPOINT

    cfg, nets = load_autoencoder(directory / CHECKPOINT)
    panels = []
    for root, clip in zip(roots, calibration_audio(roots, per_dataset=1, seconds=seconds), strict=True):
        recon = decode_latents(nets["decoder2"], nets["decoder1"],
                               encode_audio(nets["encoder1"], nets["encoder2"], clip, cfg), cfg)
        panels += [(f"{Path(root).name}: held-out", clip), (f"{Path(root).name}: reconstruction",
                                                            recon[:, : clip.shape[1]])]
    return spectrogram_png(directory / "reconstructions.png", panels)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    top = subparsers.add_parser("autoencoder", help="export and measure a shared autoencoder", formatter_class=FMT,
                                description="A shared autoencoder (presets/_autoencoders/NAME/) serves every preset "
                                            "that points at it; see its MODEL_CARD.md.")
    verbs = top.add_subparsers(dest="verb", metavar="VERB", required=True)
    p = verbs.add_parser("export", help="write a shared autoencoder from an autoencoder training checkpoint",
                         formatter_class=FMT)
    p.add_argument("checkpoint", help="RUN/ae/checkpoint.pt of `musika train ae`")
    p.add_argument("--name", required=True, help="folder name under --out")
    p.add_argument("--out", default=None, help="default: the repository's presets/_autoencoders")
    p.add_argument("--data", nargs="+", required=True, metavar="DATASET",
                   help="the prepared datasets it was trained on (recorded in the card; a few clips calibrate int8)")
    p.add_argument("--data-licence", action="append", metavar="DATASET=TEXT",
                   help="what a dataset's audio is and its licence, for the card (e.g. recordings from a package)")
    p.add_argument("--description", default="")
    p.add_argument("--license", default="unknown")
    p.add_argument("--hardware", default="", help="where it was trained (default: this machine, CPU)")
    p.add_argument("--extra-wall-hours", type=float, default=0.0,
                   help="training hours spent in earlier runs this checkpoint started from")
    p.add_argument("--note", action="append", metavar="TEXT", help="a line for the card's training notes")
    p.add_argument("--no-int8", action="store_true", help="no int8 decoders")
    p.set_defaults(func=_export)
    p = verbs.add_parser("eval", help="reconstruct each domain's held-out audio; figures into the card",
                         formatter_class=FMT)
    p.add_argument("autoencoder", metavar="DIR",
                   help="a shared autoencoder folder (the figures go into its card), an autoencoder training "
                        "checkpoint (.pt), or a preset whose own encoders and decoders to measure (printed only)")
    p.add_argument("--phase", choices=PHASES, default=None,
                   help="for a preset: the engine's phase (default: the preset's)")
    p.add_argument("--data", nargs="+", required=True, metavar="DATASET", help="one prepared dataset per domain")
    p.add_argument("--clips", type=int, default=12, help="held-out clips per domain")
    p.add_argument("--seconds", type=float, default=12.0, help="length of each clip")
    p.add_argument("--no-picture", dest="picture", action="store_false", help="do not redraw reconstructions.png")
    p.add_argument("--no-write", action="store_true", help="print the figures only")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run_eval)


def _export(a: argparse.Namespace) -> int:
    from training.shared_autoencoder import SHARED_ROOT

    a.out = a.out or str(SHARED_ROOT)
    return run_export(a)
