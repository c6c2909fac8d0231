"""``musika train preset FOLDER --name NAME``: one command from a folder of music to a playable preset.

Stages, each into one run folder and each skipped when its result is already there (so running the same command
again after a kill continues where it stopped):

1. prepare: the folder -> a dataset with automatic labels (training.data.folder); a folder that already is a
   dataset (made by ``musika prepare``) is used as it is, after the same checks;
2. encode: the dataset -> latents with the shared autoencoder's encoders (training.encode);
3. gan: the conditional latent GAN (training.loop_gan), resumed from its last checkpoint; a tempo preset also
   learns the position in the beat where its chunks have a beat grid;
4. select: the GAN is kept every ``select_every`` steps, and the snapshot that follows the condition best plays
   (training.gan_snapshots: a small GAN does not settle, and no fixed step count fits every folder);
   ``beat_steps`` more then fine-tune it with the beat-onset term (training.beat_onsets: attacks on the
   conditioned beats as strong as the recordings'), which keeps the requested tempo on more clips;
5. decoders (only with ``decoder_steps``): decoder2 fine-tuned on the folder, the encoders frozen;
6. export: a preset that ships only its generator and points at the shared autoencoder (training.finalize), or
   ships its own with fine-tuned decoders; on the phase vocoder, its loudness calibrated (generator.runtime.loudness);
7. eval: its figures and card against the held-out audio (training.eval_cli).

The defaults fit a laptop CPU (a narrow GAN of short windows, one thread); ``device`` "cuda" or "mps" trains the
GAN on a GPU.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from generator.runtime.model_config import ModelConfig
from generator.runtime.preset import REPO_PRESETS
from training.errors import TrainingError

logger = logging.getLogger(__name__)

CONDITIONS = ("tempo", "density", "none")
DEFAULT_AUTOENCODER = REPO_PRESETS / "_autoencoders" / "universal"
STAGES = ("prepare", "encode", "gan", "select", "decoders", "export", "eval")
BEAT_ONSETS_WEIGHT = 8.0  # the techno preset's fine-tune: 89 -> 98 % of clips within +-2 % in 3,500 steps


@dataclass(frozen=True)
class PresetPlan:
    """Everything `musika train preset` needs; the fields are its flags."""

    folder: str
    name: str
    condition: str = "tempo"
    autoencoder_dir: str = str(DEFAULT_AUTOENCODER)
    run: str = ""  # default: runs/preset-NAME
    out: str = str(REPO_PRESETS)
    gan_steps: int = 18000  # ~30 min on one thread
    select_every: int = 3000  # a GAN snapshot kept this often; the one that follows the condition best plays
    gan_scale: float = 0.25
    half_len: int = 64
    batch: int = 16
    lr: float = 2e-4
    device: str = "auto"
    threads: int | None = 1
    seed: int = 0
    min_minutes: float = 10.0
    decoder_steps: int = 0  # decoder2 fine-tuned on the folder; the preset then ships its own autoencoder
    beat_steps: int = 0  # GAN steps more with the beat-onset term (a tempo preset whose recordings have a beat grid)
    balance: bool = False  # draw every range of the condition equally often (LatentCrops)
    evaluate: bool = True

    def __post_init__(self) -> None:
        if self.condition not in CONDITIONS:
            raise TrainingError(f"--condition {self.condition!r}: use one of {', '.join(CONDITIONS)}")
        if self.select_every < 0:
            raise TrainingError(f"--select-every must be 0 (the last step plays) or more, got {self.select_every}")
        if self.gan_steps < 1 or self.batch < 1:
            raise TrainingError(f"--gan-steps and --batch must be at least 1, got {self.gan_steps} and {self.batch}")
        if self.decoder_steps < 0 or self.beat_steps < 0:
            raise TrainingError(f"--decoder-steps and --beat-steps must be 0 (off) or more, got "
                                f"{self.decoder_steps} and {self.beat_steps}")
        if self.balance and self.condition == "none":
            raise TrainingError("--balance draws every range of the condition equally often; --condition none has "
                                "none (leave --balance out)")
        if self.beat_steps and self.condition != "tempo":
            raise TrainingError(f"--beat-steps strengthens the beats of a tempo preset; --condition "
                                f"{self.condition} has no beat to strengthen (leave --beat-steps 0)")
        for name in ("gan_scale", "lr", "min_minutes"):
            value = getattr(self, name)
            if not (0 <= value < float("inf")) or (value == 0 and name != "min_minutes"):
                raise TrainingError(f"--{name.replace('_', '-')} must be a finite number above 0, got {value}")
        if self.half_len < 16 or self.half_len & (self.half_len - 1):
            raise TrainingError(f"--half-len must be a power of two of at least 16, got {self.half_len}")

    @property
    def run_dir(self) -> Path:
        return Path(self.run or f"runs/preset-{self.name}")

    @property
    def checkpoint(self) -> Path:
        return Path(self.autoencoder_dir) / "checkpoint.pt"


# clips per tempo in the closing eval: with 2, one clip moved "within ±2 %" by 8 points (an hour of real music
# measured 67 % on 12 clips and 78 % on 36); 6 costs about a minute more
EVAL_SEEDS = 6

HELP = {
    "folder": "folder of your audio files (wav, flac, mp3, ogg, aiff; searched recursively), or a dataset made "
              "by musika prepare (used as it is)",
    "name": "preset name (its folder under --out)",
    "condition": "what the preset is conditioned on: tempo (beat tracking), density (onsets per second) or none",
    "autoencoder_dir": "the shared autoencoder the preset plays on",
    "run": "run folder for the dataset, latents and checkpoints ('': runs/preset-NAME)",
    "out": "where the preset is written",
    "gan_steps": "GAN training steps (about 10 a second on one CPU thread)",
    "select_every": "keep the GAN every this many steps and play the snapshot that follows the condition best "
                    "(0: the last step plays)",
    "gan_scale": "GAN width factor (1.0 = the reference widths)",
    "half_len": "latents per generator half (a power of two)",
    "batch": "GAN batch size",
    "lr": "GAN learning rate",
    "device": "auto, cpu, cuda, cuda:N or mps",
    "threads": "torch CPU threads",
    "seed": "seed of the GAN run",
    "min_minutes": "the least usable audio accepted, in minutes (less is refused before any training)",
    "beat_steps": "then fine-tune the GAN this many steps with the beat-onset term, which makes attacks on the "
                  "beat as strong as in your recordings and keeps the tempo on more clips (0: off; about half "
                  "the speed of plain GAN steps)",
    "decoder_steps": "fine-tune the shared decoder2 on your audio for this many steps (0: off). Its encoders stay "
                     "as they are, so the GAN's latents stay valid; the preset then ships its own autoencoder "
                     "(~30 MB) instead of pointing at the shared one",
    "balance": "draw the GAN's training windows so every range of the condition (tempo or density) is seen equally "
               "often, not just the tempo most of your tracks have",
    "evaluate": "skip measuring the preset at the end (musika eval)",
}


def add_arguments(parser: Any) -> None:
    """One flag per PresetPlan field (folder a positional), defaults and types from the dataclass."""
    import argparse
    import dataclasses

    for f in dataclasses.fields(PresetPlan):
        if f.name == "folder":
            parser.add_argument("folder", metavar="FOLDER", help=HELP[f.name])
            continue
        flag = "--" + f.name.replace("_", "-")
        if f.name == "balance":
            parser.add_argument(flag, action="store_true", help=HELP[f.name])
        elif f.name == "evaluate":
            parser.add_argument("--no-eval", dest="evaluate", action="store_false", help=HELP[f.name])
        elif f.name == "name":
            parser.add_argument(flag, required=True, help=HELP[f.name])
        elif f.name == "condition":
            parser.add_argument(flag, choices=CONDITIONS, default=f.default, help=HELP[f.name])
        else:
            kind = type(f.default) if f.default is not None else int
            parser.add_argument(flag, type=kind, default=f.default, help=HELP[f.name])
    parser.set_defaults(plan_fields=[f.name for f in dataclasses.fields(PresetPlan)])
    del argparse


def gan_conditions(condition: str, label_names: set[str]) -> tuple[str, ...]:
    """The GAN's conditions for a user's choice: tempo adds the position in the beat (in the bar, when the data has
    bar lines) when chunks have a beat grid, so the beats land where the host's are."""
    from training.latent_data import BEAT, has_beat_grid

    if condition == "none":
        return ()
    if condition == "tempo" and has_beat_grid(label_names):
        return ("tempo", BEAT)
    return (condition,)


def train_preset(plan: PresetPlan, on_stage: Callable[[str, int], None] | None = None) -> Path:
    """Run every stage that is not done yet; returns the preset directory. Raises MusikaError subclasses with what
    to do (a missing shared autoencoder, a folder with too little usable audio, labels that cannot carry the
    condition) before any training starts."""
    from generator.runtime.preset import update_preset_json
    from training.data.dataset import Dataset
    from training.data.folder import prepare_folder
    from training.encode import LatentCache, encode_dataset
    from training.eval import TEMPO_BPMS, data_tempi
    from training.finalize import export_run
    from training.gan_snapshots import choice_note, choose_snapshot, snapshot_steps, train_with_snapshots
    from training.run_configs import GanTrainConfig
    from training.shared_autoencoder import read_autoencoder

    def stage(name: str) -> None:
        logger.info("stage %d/%d: %s", STAGES.index(name) + 1, len(STAGES), name)
        if on_stage is not None:
            on_stage(name, STAGES.index(name))

    shared = read_autoencoder(plan.autoencoder_dir)
    run = plan.run_dir
    data, latents = run / "data", run / "latents"
    stage("prepare")
    if _dataset_complete(Path(plan.folder)):
        data = _checked_dataset(plan)
    elif not _dataset_complete(data):
        prepare_folder(plan.folder, data, label=plan.condition, min_minutes=plan.min_minutes)
    stage("encode")
    encode_dataset(data, plan.checkpoint, latents, device="cpu")
    entries = LatentCache(latents).entries()
    labels = set.union(*(set(e.labels) | set(e.curves) for e in entries)) if entries else set()  # a chunk
    # without a label (no confident tempo) trains with that condition dropped
    stage("gan")
    ae = shared["architecture"]
    model = ModelConfig.from_dict({"audio": ae["audio"], "autoencoder": ae["autoencoder"]})
    gan = model.scaled(gan=plan.gan_scale, half_len=plan.half_len).gan
    cfg = GanTrainConfig(latents=str(latents), run_dir=str(run), autoencoder=str(plan.checkpoint), gan=gan,
                         conditions=gan_conditions(plan.condition, labels), steps=plan.gan_steps, batch=plan.batch,
                         lr=plan.lr, device=plan.device, threads=plan.threads, seed=plan.seed, tensorboard=False,
                         balance=plan.condition if plan.balance else "")
    snapshots = train_with_snapshots(cfg, snapshot_steps(plan.gan_steps, plan.select_every))
    stage("select")

    def export_snapshot(checkpoint: Path, out: Path, name: str) -> Path:
        return export_run(plan.checkpoint, checkpoint, out, name, autoencoder_dir=plan.autoencoder_dir,
                          phase="vocoder", int8=None)

    values = data_tempi(Dataset(data), len(TEMPO_BPMS)) if plan.condition == "tempo" else ()
    chosen, scores = choose_snapshot(snapshots, plan.condition, values, run / "select", export_snapshot,
                                     threads=plan.threads)
    ckpt = snapshots[chosen]
    if plan.beat_steps:
        ckpt = _beat_fine_tune(plan, cfg, ckpt)
    stage("decoders")
    autoencoder = _fine_tune_decoders(plan, model, data) if plan.decoder_steps else plan.checkpoint
    stage("export")
    preset = Path(plan.out) / plan.name
    own = bool(plan.decoder_steps)  # a preset with fine-tuned decoders ships its own autoencoder
    if not _exported(preset, ckpt, autoencoder, own):
        export_run(autoencoder, ckpt, plan.out, plan.name, f"Trained with musika train preset from {plan.folder}",
                   autoencoder_dir=None if own else plan.autoencoder_dir, phase="vocoder")  # no 43 Hz buzz
        from generator.runtime.loudness import calibrate_preset
        from generator.timeline.beat_calibration import calibrate_beat_offset

        update_preset_json(preset, training={"gan_snapshot": choice_note(chosen, scores)})
        calibrate_preset(preset, threads=plan.threads)  # it plays as loud as every other preset
        calibrate_beat_offset(preset, threads=plan.threads)  # its beats are heard on the host's
    stage("eval")
    if plan.evaluate and Dataset(data).split("heldout"):
        from training.eval_cli import run_eval

        run_eval(str(preset), dataset=str(data), seeds=EVAL_SEEDS, seconds=12.0, threads=plan.threads,
                 tempo_from_data=plan.condition == "tempo")  # the tempi its recordings have, not 120-160 BPM
    return preset


def _dataset_complete(root: Path) -> bool:
    import json

    info = root / "dataset.json"
    return info.is_file() and bool(json.loads(info.read_text()).get("complete", True))


def _checked_dataset(plan: PresetPlan) -> Path:
    """A prepared dataset given as the folder, refused as a folder would be when it is too short or its labels
    cannot carry the condition."""
    from training.data.dataset import Dataset
    from training.data.folder_checks import MIN_LABELLED, FolderTally, refusal_reason

    root = Path(plan.folder)
    chunks = Dataset(root).chunks
    refusal = refusal_reason(root, len({c.source for c in chunks}), FolderTally(), chunks, plan.condition,
                             plan.min_minutes, MIN_LABELLED)
    if refusal:
        raise TrainingError(refusal.replace(", or lower --min-labelled", ""))
    return root


def _finished(path: Path, steps: int) -> bool:
    from training.checkpoint import load_checkpoint

    return path.is_file() and int(load_checkpoint(path)["step"]) >= steps


def _beat_fine_tune(plan: PresetPlan, cfg: Any, gan_ckpt: Path) -> Path:
    """The GAN continued from ``gan_ckpt`` with the beat-onset term into run/beat -> its checkpoint. Refused
    before it trains when the recordings have no beat grid (no beat phase to fold the attacks by)."""
    import dataclasses
    import shutil

    from training.checkpoint import load_checkpoint
    from training.latent_data import BEAT
    from training.loop_gan import run_gan

    if BEAT not in cfg.conditions:
        raise TrainingError(f"--beat-steps: the recordings in {plan.folder} have no beat grid (no chunk has a "
                            "confident beat), so there is no beat to strengthen; leave --beat-steps 0")
    beat = dataclasses.replace(cfg, run_dir=str(plan.run_dir / "beat"), init_from=str(gan_ckpt),
                               steps=plan.beat_steps, weights={"gan/beat_onsets": BEAT_ONSETS_WEIGHT})
    ckpt = beat.stage_dir / "checkpoint.pt"
    if ckpt.is_file() and load_checkpoint(ckpt)["config"].get("init_from") != str(gan_ckpt):
        logger.info("another GAN snapshot plays now (%s): the beat-onset fine-tune starts again from it", gan_ckpt)
        shutil.rmtree(beat.stage_dir)
    if not _finished(ckpt, plan.beat_steps):
        run_gan(beat, resume=ckpt.exists())
    return ckpt


def _fine_tune_decoders(plan: PresetPlan, model: ModelConfig, data: Path) -> Path:
    """decoder2 trained on the folder's audio from the shared weights -> its checkpoint. The encoders and decoder1
    stay frozen, so the latents, and the GAN trained on them, stay valid."""
    from training.loop_ae import run_autoencoder
    from training.run_configs import AeTrainConfig

    cfg = AeTrainConfig(dataset=str(data), run_dir=str(plan.run_dir / "decoders"), model=model, steps_level1=0,
                        steps_level2=plan.decoder_steps, freeze_encoder2=True, init_from=str(plan.checkpoint),
                        device=plan.device, threads=plan.threads, seed=plan.seed, tensorboard=False, preview_every=0)
    ckpt = cfg.stage_dir / "checkpoint.pt"
    if not _finished(ckpt, plan.decoder_steps):
        run_autoencoder(cfg, resume=ckpt.exists())
    return ckpt


def _exported(preset: Path, gan_ckpt: Path, ae_ckpt: Path, own: bool) -> bool:
    """The preset exists and was exported from these checkpoints' final steps, with its own autoencoder or not."""
    import json

    from training.checkpoint import load_checkpoint

    info = preset / "preset.json"
    if not info.is_file() or (preset / "decoder1.onnx").is_file() != own:
        return False
    training: Any = json.loads(info.read_text()).get("training", {})
    return (training.get("gan_steps") == int(load_checkpoint(gan_ckpt)["step"])
            and training.get("autoencoder_steps") == int(load_checkpoint(ae_ckpt)["step"]))
