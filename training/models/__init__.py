"""PyTorch networks of Musika Bridge (training side only; inference runs their ONNX exports).

``build_networks(cfg)`` is the one place that turns a :class:`ModelConfig` into modules.
"""

from __future__ import annotations

from torch import nn

from generator.runtime.model_config import ModelConfig
from training.models.autoencoder import Decoder1, Decoder2, Encoder1, Encoder2
from training.models.gan import Critic, Generator

__all__ = ["Critic", "Decoder1", "Decoder2", "Encoder1", "Encoder2", "Generator", "build_networks", "count_params"]


def build_networks(cfg: ModelConfig) -> dict[str, nn.Module]:
    """All six networks, keyed by the names of generator.runtime.onnx_io (plus "critic")."""
    ae, audio = cfg.autoencoder, cfg.audio
    return {
        "generator": Generator(cfg),
        "critic": Critic(cfg),
        "decoder2": Decoder2(ae),
        "decoder1": Decoder1(ae, audio),
        "encoder1": Encoder1(ae, audio),
        "encoder2": Encoder2(ae),
    }


def count_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
