"""What each training stage is told: the configurations of the autoencoder, GAN and seam stages.

torch-free, so the command line builds its flags and their defaults from these fields without importing torch
(`musika --help` stays fast); the stages (training.loop_ae, loop_gan, loop_seams) run them. A checkpoint stores
its stage's configuration, and ``from_plain`` reads it back.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from generator.runtime.model_config import GanConfig, ModelConfig


def default(cls: type, name: str) -> Any:
    """The default of field `name` of configuration dataclass `cls` (for a flag's default)."""
    f = next(f for f in dataclasses.fields(cls) if f.name == name)
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    raise KeyError(f"{cls.__name__}.{name} has no default")


@dataclass(frozen=True)
class AeTrainConfig:
    dataset: str | tuple[str, ...]  # one prepared dataset, or several drawn alike (a mix of domains)
    run_dir: str
    model: ModelConfig = field(default_factory=ModelConfig)
    steps_level1: int = 6000
    steps_level2: int = 3000
    freeze_encoder2: bool = False  # level 2 trains decoder2 only (the latents, and a GAN on them, stay valid)
    init_from: str = ""  # an autoencoder checkpoint whose weights a new run starts from (fresh optimizers)
    level1_init: str = ""  # "pca": level 1 starts as the training frames' principal components (training.pca_init)
    adversarial_from: int = 3000  # level-1 step where ae1/adversarial + ae1/feature start (>= steps_level1: never)
    batch: int = 8
    lr: float = 3e-4
    critic_lr: float = 1e-4
    clip_grad: float = 1.0  # global gradient-norm ceiling per level (0: off); keeps loud material from diverging
    betas: tuple[float, float] = (0.8, 0.99)
    critic_channels: int = 64
    weights: Mapping[str, float] = field(default_factory=dict)
    seed: int = 0
    device: str = "auto"
    checkpoint_every: int = 250
    preview_every: int = 1000  # 0: never
    log_every: int = 10
    tensorboard: bool = True
    progress: bool | None = None
    threads: int | None = None

    @property
    def total_steps(self) -> int:
        return self.steps_level1 + self.steps_level2

    @property
    def stage_dir(self) -> Path:
        return Path(self.run_dir) / "ae"

    @classmethod
    def from_plain(cls, data: Mapping[str, Any]) -> AeTrainConfig:
        d = dict(data)
        d["model"] = ModelConfig.from_dict(d["model"])
        d["betas"] = tuple(d["betas"])
        if isinstance(d["dataset"], list):
            d["dataset"] = tuple(d["dataset"])
        return cls(**d)


@dataclass(frozen=True)
class GanTrainConfig:
    latents: str  # latent cache directory (musika train encode)
    run_dir: str
    autoencoder: str = ""  # autoencoder checkpoint, for previews ("" = no previews)
    gan: GanConfig = field(default_factory=GanConfig)
    conditions: tuple[str, ...] = ()  # e.g. ("tempo",) or ("density",)
    init_from: str = ""  # a GAN checkpoint to start from (training.warm_start)
    cond_dropout: float = 0.1
    balance: str = ""  # a curve condition whose rare values are drawn more often (LatentCrops)
    min_labels: tuple[str, ...] = ()  # "name=value": train only on entries whose label is at least value
    steps: int = 20000
    batch: int = 16
    lr: float = 1e-4
    betas: tuple[float, float] = (0.5, 0.999)
    weights: Mapping[str, float] = field(default_factory=dict)
    switch_step: float = 1e-4
    ema_decay: float = 0.999
    swap_prob: float = 0.5
    seed: int = 0
    device: str = "auto"
    checkpoint_every: int = 500
    preview_every: int = 2000  # 0: never
    log_every: int = 10
    tensorboard: bool = True
    progress: bool | None = None
    progress_total: int = 0  # the progress bar's total (0: steps); a run trained in stretches shows the whole ETA
    threads: int | None = None

    @property
    def stage_dir(self) -> Path:
        return Path(self.run_dir) / "gan"

    @classmethod
    def from_plain(cls, data: Mapping[str, Any]) -> GanTrainConfig:
        d = dict(data)
        d["gan"] = GanConfig(**d["gan"])
        d["betas"] = tuple(d["betas"])
        d["conditions"] = tuple(d["conditions"])
        d["min_labels"] = tuple(d.get("min_labels", ()))
        return cls(**d)


@dataclass(frozen=True)
class SeamTrainConfig:
    dataset: str | tuple[str, ...]  # one prepared dataset, or several drawn alike
    run_dir: str
    steps: int = 1500
    windows: int = 3  # adjacent decoder windows per crop (windows - 1 joins)
    batch: int = 8
    lr: float = 1e-4
    edge_frames: int = 6  # frames on each side of a join that get extra weight
    edge_weight: float = 4.0
    onset_weight: float = 0.0  # weight of ae2/seam_onsets (decoder2 judged by the onsets heard after decoder1)
    clip_grad: float = 1.0
    seed: int = 0
    threads: int | None = None
    checkpoint_every: int = 250
    log_every: int = 10
    device: str = "auto"
    progress: bool | None = None

    @property
    def stage_dir(self) -> Path:
        return Path(self.run_dir) / "seams"

    @classmethod
    def from_plain(cls, data: Mapping[str, Any]) -> SeamTrainConfig:
        d = dict(data)
        if isinstance(d["dataset"], list):
            d["dataset"] = tuple(d["dataset"])
        return cls(**d)
