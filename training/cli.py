"""`musika train {ae,encode,gan,all}` and `musika export`: thin wrappers over the training functions.

torch is imported only inside the handlers, so `musika --help` stays fast. Flag names match the fields of
AeTrainConfig / GanTrainConfig / SeamTrainConfig (training.run_configs), and every default is the field's own;
`train all` takes the union of the stages' flags, prefixed where two stages share a name (--ae-lr, --gan-lr,
--seam-lr). Exit codes: 0 done, 1 bad input (MusikaError), 130 interrupted (a checkpoint
was written; rerun with --resume).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any

from generator.runtime.model_config import PHASES, ModelConfig
from generator.runtime.preset import REPO_PRESETS
from training.run_configs import AeTrainConfig, GanTrainConfig, SeamTrainConfig, default

EXIT_INTERRUPTED = 130
FMT = argparse.ArgumentDefaultsHelpFormatter


def _weights(items: list[str] | None) -> dict[str, float]:
    from training.errors import TrainingError

    out = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep:
            raise TrainingError(f"--weight {item!r}: expected NAME=NUMBER, e.g. ae1/stft=0.5")
    return out


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run", required=True, help="run folder (checkpoints, previews, tensorboard, latents)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--seed", type=int, default=default(AeTrainConfig, "seed"))
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (unset: torch's choice; use 1 on a busy machine)")
    p.add_argument("--resume", action="store_true", help="continue the run's checkpoint (exactly, after a kill)")
    p.add_argument("--checkpoint-every", type=int, default=None,
                   help="steps between checkpoints (unset: 250 for ae, 500 for gan)")
    p.add_argument("--preview-every", type=int, default=None,
                   help="steps between preview WAV/PNG (0: never; unset: 1000 ae, 2000 gan)")
    p.add_argument("--log-every", type=int, default=default(AeTrainConfig, "log_every"))
    p.add_argument("--no-tensorboard", action="store_true")
    p.add_argument("--weight", action="append", metavar="NAME=VALUE",
                   help="loss weight by its name in training/losses.py (repeatable)")


def _ae_flags(p: argparse.ArgumentParser, prefix: str = "") -> None:
    p.add_argument("--ae-scale", dest="ae_scale", type=float, default=1.0,
                   help="autoencoder width factor (1.0 = the 44.1 kHz reference widths)")
    p.add_argument("--latent-dim", type=int, default=ModelConfig().autoencoder.latent_dim,
                   help="floats per latent and channel (level-2 compression: 16 frames x 64 floats -> this)")
    p.add_argument("--steps-level1", type=int, default=default(AeTrainConfig, "steps_level1"))
    p.add_argument("--steps-level2", type=int, default=default(AeTrainConfig, "steps_level2"))
    p.add_argument("--adversarial-from", type=int, default=default(AeTrainConfig, "adversarial_from"),
                   help="level-1 step where the critic term starts")
    p.add_argument(f"--{prefix}init-from", dest="ae_init_from", default="", metavar="CHECKPOINT",
                   help="start a new run from another run's autoencoder weights (fresh optimizers, this run's lr "
                        "and --weight); with --steps-level1 0 only level 2 trains")
    p.add_argument("--level1-init", choices=("pca",), default=None,
                   help="start level 1 as the principal components of the training frames (harmonics kept from "
                        "the first step; training.pca_init) instead of at random")
    p.add_argument("--freeze-encoder2", action="store_true",
                   help="level 2 trains decoder2 only: latents already encoded, and a GAN trained on them, stay valid")
    p.add_argument(f"--{prefix}batch", dest="ae_batch", type=int, default=default(AeTrainConfig, "batch"))
    p.add_argument(f"--{prefix}lr", dest="ae_lr", type=float, default=default(AeTrainConfig, "lr"),
                   help="learning rate (may be lowered on --resume, e.g. after a divergence)")


def _gan_flags(p: argparse.ArgumentParser, prefix: str = "") -> None:
    p.add_argument("--gan-scale", dest="gan_scale", type=float, default=1.0, help="GAN width factor")
    p.add_argument("--half-len", type=int, default=ModelConfig().gan.half_len,
                   help="latents per generator half (power of two)")
    p.add_argument("--condition", action="append", default=None, metavar="NAME",
                   help="conditioning label, e.g. tempo (scalar), density (curve) or beat (the position in the bar, "
                        "from the tempo and downbeat labels); repeatable")
    p.add_argument("--init-from", default="", metavar="CHECKPOINT",
                   help="start from another run's GAN weights (same widths; its conditions first, new ones added)")
    p.add_argument("--cond-dropout", type=float, default=default(GanTrainConfig, "cond_dropout"),
                   help="probability a condition is dropped (NaN)")
    p.add_argument("--min-label", action="append", default=None, metavar="NAME=VALUE",
                   help="train only on chunks whose label is at least VALUE (e.g. kick_fraction=1: no breakdowns); "
                        "condition ranges still come from the whole cache; repeatable")
    p.add_argument("--balance", default="", metavar="CONDITION",
                   help="draw training windows so every range of this condition (a curve such as density, or a "
                        "chunk label such as tempo) is seen equally often, not just the common ones")
    p.add_argument(f"--{prefix}steps", dest="gan_steps", type=int, default=default(GanTrainConfig, "steps"))
    p.add_argument(f"--{prefix}batch", dest="gan_batch", type=int, default=default(GanTrainConfig, "batch"))
    p.add_argument(f"--{prefix}lr", dest="gan_lr", type=float, default=default(GanTrainConfig, "lr"))
    p.add_argument("--ema-decay", type=float, default=default(GanTrainConfig, "ema_decay"))


def _seam_flags(p: argparse.ArgumentParser, prefix: str = "") -> None:
    p.add_argument(f"--{prefix}steps", dest="seam_steps", type=int, default=default(SeamTrainConfig, "steps"),
                   help="steps of the decoder seam stage" + (" (0: skip)" if prefix else ""))
    p.add_argument(f"--{prefix}windows", dest="seam_windows", type=int, default=default(SeamTrainConfig, "windows"),
                   help="adjacent decoder windows per training crop")
    p.add_argument(f"--{prefix}onset-weight", dest="seam_onset_weight", type=float,
                   default=default(SeamTrainConfig, "onset_weight"),
                   help="weight of the onset-envelope loss on what both decoders make (ae2/seam_onsets); "
                        "> 0 also teaches decoder2 to keep transients such as kicks")
    p.add_argument(f"--{prefix}batch", dest="seam_batch", type=int, default=default(SeamTrainConfig, "batch"))
    p.add_argument(f"--{prefix}lr", dest="seam_lr", type=float, default=default(SeamTrainConfig, "lr"))


def _export_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--name", required=True, help="preset name (directory under --out)")
    p.add_argument("--out", default=str(REPO_PRESETS), help="directory that receives the preset")
    p.add_argument("--description", default="")
    p.add_argument("--license", default="unknown")
    p.add_argument("--no-encoders", action="store_true", help="ship only generator, decoder2, decoder1")
    p.add_argument("--autoencoder-dir", default=None, metavar="DIR",
                   help="a shared autoencoder (presets/_autoencoders/NAME): the preset ships only its generator and "
                        "points at DIR's encoders and decoders (default --autoencoder: DIR/checkpoint.pt)")
    p.add_argument("--guidance", type=float, default=1.0,
                   help="default conditioning guidance g: latents = u + g (c - u) from the conditioned (c) and "
                        "unconditioned (u) generator; > 1 makes the conditioning act more strongly")
    p.add_argument("--truncation", type=float, default=None,
                   help="default truncation bound of the latent coordinates (the `variation` control; default 2): "
                        "smaller plays closer to the typical output, less varied")
    p.add_argument("--phase", choices=PHASES, default=None,
                   help="how the engine makes the phase of decoded spectra by default: decoder1's, or from the "
                        "magnitudes (vocoder: no 43 Hz buzz; vocoder-joins: restarting at attacks on decoder-window "
                        "joins too; generator.runtime.phase_vocoder). Unset: vocoder on a shared autoencoder "
                        "(--autoencoder-dir, as musika train preset), decoder otherwise")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    train = subparsers.add_parser("train", help="train the autoencoder and the GAN", formatter_class=FMT,
                                  description="Train a Musika model in stages into one run folder.")
    stages = train.add_subparsers(dest="stage", metavar="STAGE", required=True)
    p = stages.add_parser("ae", help="train the two-level autoencoder", formatter_class=FMT)
    _common(p)
    p.add_argument("--data", required=True, nargs="+", metavar="DATASET",
                   help="prepared dataset(s) (musika prepare ...); several are a mix, each drawn equally often")
    _ae_flags(p)
    p.set_defaults(func=_cmd_ae)
    p = stages.add_parser("seams", help="fine-tune decoder2 so decoder-window joins do not click (encoders frozen)",
                          formatter_class=FMT)
    p.add_argument("--run", required=True, help="run folder whose ae/checkpoint.pt is fine-tuned in place")
    p.add_argument("--data", required=True, nargs="+", metavar="DATASET",
                   help="prepared dataset(s) the autoencoder was trained on (several: each drawn equally often)")
    _seam_flags(p)
    p.add_argument("--resume", action="store_true", help="continue an unfinished seam stage (exactly, after a kill)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--seed", type=int, default=default(SeamTrainConfig, "seed"))
    p.set_defaults(func=_cmd_seams)
    p = stages.add_parser("encode", help="encode a dataset into the latent cache", formatter_class=FMT)
    p.add_argument("--run", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--autoencoder", default=None, help="default: RUN/ae/checkpoint.pt")
    p.add_argument("--out", default=None, help="default: RUN/latents")
    p.add_argument("--device", default="cpu")
    p.set_defaults(func=_cmd_encode)
    p = stages.add_parser("gan", help="train the conditional latent GAN", formatter_class=FMT)
    _common(p)
    p.add_argument("--latents", default=None, help="latent cache (default: RUN/latents)")
    p.add_argument("--autoencoder", default=None, help="for previews (default: RUN/ae/checkpoint.pt if present)")
    _gan_flags(p)
    p.set_defaults(func=_cmd_gan)
    p = stages.add_parser("preset", help="one command from a folder of music to a playable preset on the shared "
                          "autoencoder (prepare, encode, gan, export, eval; run it again to resume)",
                          formatter_class=FMT)
    from training.preset_pipeline import add_arguments

    add_arguments(p)
    p.set_defaults(func=_cmd_preset)
    p = stages.add_parser("all", help="ae, seams, encode, gan and export in order into one run folder",
                          formatter_class=FMT)
    _common(p)
    p.add_argument("--data", required=True, metavar="DATASET",
                   help="the prepared dataset of the preset's music (musika prepare ...)")
    _ae_flags(p, "ae-")
    _seam_flags(p, "seam-")
    _gan_flags(p, "gan-")
    _export_flags(p)
    p.set_defaults(func=_cmd_all)
    p = subparsers.add_parser("export", help="export checkpoints into a preset (ONNX + preset.json + card)",
                              formatter_class=FMT)
    p.add_argument("--run", default=None, help="run folder: uses RUN/ae and RUN/gan checkpoints")
    p.add_argument("--autoencoder", default=None)
    p.add_argument("--gan", default=None)
    _export_flags(p)
    p.set_defaults(func=_cmd_export)


def _level1_linear(checkpoint: str) -> bool:
    """Whether an autoencoder checkpoint's level 1 has the linear paths (False for none or an unreadable one: the
    run then refuses it with the reason)."""
    if not checkpoint:
        return False
    from training.checkpoint import load_checkpoint
    from training.errors import CheckpointError

    try:
        return bool(load_checkpoint(checkpoint).get("model", {}).get("autoencoder", {}).get("level1_linear", False))
    except (CheckpointError, OSError):
        return False


def _ae_config(a: argparse.Namespace) -> Any:
    kw = _intervals(a, AeTrainConfig)
    data = _datasets(a.data)
    model = ModelConfig().scaled(ae=a.ae_scale)
    linear = bool(a.level1_init) or _level1_linear(a.ae_init_from)  # a run from a checkpoint keeps its paths
    model = dataclasses.replace(model, autoencoder=dataclasses.replace(model.autoencoder, latent_dim=a.latent_dim,
                                                                       level1_linear=linear))
    return AeTrainConfig(dataset=data, run_dir=a.run, model=model,
                         steps_level1=a.steps_level1, steps_level2=a.steps_level2,
                         adversarial_from=a.adversarial_from, freeze_encoder2=a.freeze_encoder2,
                         init_from=a.ae_init_from, level1_init=a.level1_init or "",
                         batch=a.ae_batch, lr=a.ae_lr,
                         weights={k: v for k, v in _weights(a.weight).items() if k.startswith("ae")}, **kw)


def _gan_config(a: argparse.Namespace, latents: str, autoencoder: str) -> Any:
    kw = _intervals(a, GanTrainConfig)
    gan = ModelConfig().scaled(gan=a.gan_scale, half_len=a.half_len).gan
    return GanTrainConfig(latents=latents, run_dir=a.run, autoencoder=autoencoder, gan=gan,
                          conditions=tuple(a.condition or ()), init_from=a.init_from,
                          cond_dropout=a.cond_dropout, balance=a.balance,
                          min_labels=tuple(a.min_label or ()), steps=a.gan_steps,
                          batch=a.gan_batch, lr=a.gan_lr, ema_decay=a.ema_decay,
                          weights={k: v for k, v in _weights(a.weight).items() if k.startswith("gan")}, **kw)


def _seam_config(a: argparse.Namespace) -> SeamTrainConfig:
    return SeamTrainConfig(dataset=_datasets(a.data), run_dir=a.run, steps=a.seam_steps, windows=a.seam_windows,
                           onset_weight=a.seam_onset_weight, batch=a.seam_batch, lr=a.seam_lr, threads=a.threads,
                           seed=a.seed, device=a.device)


def _datasets(data: str | list[str]) -> str | tuple[str, ...]:
    """One dataset, or several drawn alike."""
    if isinstance(data, str):
        return data
    return data[0] if len(data) == 1 else tuple(data)


def _intervals(a: argparse.Namespace, kind: type) -> dict[str, Any]:
    defaults = {f.name: f.default for f in dataclasses.fields(kind)}
    return {"seed": a.seed, "device": a.device, "threads": a.threads, "log_every": a.log_every,
            "tensorboard": not a.no_tensorboard,
            "checkpoint_every": a.checkpoint_every or defaults["checkpoint_every"],
            "preview_every": defaults["preview_every"] if a.preview_every is None else a.preview_every}


def _interruptible(fn):
    def run(a: argparse.Namespace) -> int:
        from training.errors import TrainingInterrupted

        try:
            return fn(a) or 0
        except TrainingInterrupted as exc:
            print(f"musika train: {exc}", file=sys.stderr)
            return EXIT_INTERRUPTED
    return run


@_interruptible
def _cmd_ae(a: argparse.Namespace) -> int:
    from training.loop_ae import run_autoencoder

    result = run_autoencoder(_ae_config(a), resume=a.resume)
    print(f"autoencoder: step {result.step}, checkpoint {result.checkpoint}")
    return 0


@_interruptible
def _cmd_seams(a: argparse.Namespace) -> int:
    from training.loop_seams import run_seams

    losses = run_seams(_seam_config(a), resume=a.resume)
    print("seams: " + ", ".join(f"{k} {v:.4f}" for k, v in losses.items()))
    return 0


def _cmd_encode(a: argparse.Namespace) -> int:
    from training.encode import encode_dataset

    run = Path(a.run)
    cache = encode_dataset(a.data, a.autoencoder or run / "ae" / "checkpoint.pt", a.out or run / "latents",
                           device=a.device)
    print(f"latent cache: {len(cache)} chunks in {cache.root}")
    return 0


@_interruptible
def _cmd_gan(a: argparse.Namespace) -> int:
    from training.loop_gan import run_gan

    run = Path(a.run)
    ae = a.autoencoder or (str(run / "ae" / "checkpoint.pt") if (run / "ae" / "checkpoint.pt").exists() else "")
    result = run_gan(_gan_config(a, a.latents or str(run / "latents"), ae), resume=a.resume)
    print(f"gan: step {result.step}, checkpoint {result.checkpoint}")
    return 0


@_interruptible
def _cmd_all(a: argparse.Namespace) -> int:
    from training.encode import encode_dataset
    from training.finalize import export_run
    from training.loop_ae import run_autoencoder
    from training.loop_gan import run_gan

    run = Path(a.run)
    ae_cfg = _ae_config(a)
    ae_ckpt = run / "ae" / "checkpoint.pt"
    if not (a.resume and _finished(ae_ckpt, ae_cfg.total_steps)):
        run_autoencoder(ae_cfg, resume=a.resume)
        if a.seam_steps > 0:
            from training.loop_seams import run_seams

            run_seams(_seam_config(a), resume=a.resume)
    encode_dataset(a.data, ae_ckpt, run / "latents", device="cpu" if a.device == "auto" else a.device)
    gan_cfg = _gan_config(a, str(run / "latents"), str(ae_ckpt))
    if not (a.resume and _finished(run / "gan" / "checkpoint.pt", gan_cfg.steps)):
        run_gan(gan_cfg, resume=a.resume)
    path = export_run(ae_ckpt, run / "gan" / "checkpoint.pt", a.out, a.name, a.description, a.license,
                      encoders=not a.no_encoders, guidance=a.guidance, truncation=a.truncation,
                      phase=a.phase or _default_phase(a))
    print(f"preset written to {path}")
    return 0


@_interruptible
def _cmd_preset(a: argparse.Namespace) -> int:
    from training.preset_pipeline import PresetPlan, train_preset

    plan = PresetPlan(**{k: getattr(a, k) for k in a.plan_fields})
    print(f"preset written to {train_preset(plan)}")
    return 0


def _finished(path: Path, steps: int) -> bool:
    if not path.exists():
        return False
    from training.checkpoint import load_checkpoint

    return int(load_checkpoint(path)["step"]) >= steps


def _default_phase(a: argparse.Namespace) -> str:
    """The phase vocoder on a shared autoencoder (training.encode.default_phase)."""
    from training.encode import default_phase

    shared = getattr(a, "autoencoder_dir", None)
    return default_phase(Path(shared) / "checkpoint.pt" if shared else None)


def _cmd_export(a: argparse.Namespace) -> int:
    from training.errors import TrainingError
    from training.finalize import export_run

    ae = a.autoencoder or (Path(a.autoencoder_dir) / "checkpoint.pt" if a.autoencoder_dir else None)
    ae = ae or (Path(a.run) / "ae" / "checkpoint.pt" if a.run else None)
    gan = a.gan or (Path(a.run) / "gan" / "checkpoint.pt" if a.run else None)
    if ae is None or gan is None:
        raise TrainingError("musika export needs --run RUN, or both --autoencoder and --gan checkpoints")
    path = export_run(ae, gan, a.out, a.name, a.description, a.license, encoders=not a.no_encoders,
                      guidance=a.guidance, truncation=a.truncation, phase=a.phase or _default_phase(a),
                      autoencoder_dir=a.autoencoder_dir)
    print(f"preset written to {path}")
    return 0
