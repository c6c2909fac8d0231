"""Start a GAN run from another run's weights (``musika train gan --init-from CHECKPOINT``).

The usual use: add a conditioning input to a model that already sounds right (e.g. the "beat" phase to a
tempo-conditioned GAN) instead of training from scratch. Conditioning channels are appended after the
coordinates (generator) and after the latents (critic), scalars first then curves (training.models.layers.
condition_channels), so when the old run's conditions are a prefix of the new ones and the widths agree, every
old weight keeps its place and the weights that read the new channels start at zero: the new network computes
exactly what the old one did until training teaches it to use them. Optimiser state and the R1 switch start
fresh; the step count starts at 0.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

from generator.runtime.model_config import ModelConfig
from generator.runtime.preset import Condition
from training.checkpoint import load_checkpoint
from training.errors import TrainingError

logger = logging.getLogger(__name__)

NETWORKS = ("generator", "critic", "generator_ema")


def _expand(name: str, new: Tensor, old: Tensor, old_ch: int, new_ch: int) -> Tensor:
    """Old weight placed into the new shape; only the input-channel axis (dim 1) may have grown."""
    if new.shape == old.shape:
        return old
    if new.dim() < 2 or new.shape[0] != old.shape[0] or new.shape[2:] != old.shape[2:]:
        raise TrainingError(f"{name}: shape {tuple(old.shape)} cannot grow into {tuple(new.shape)}; the widths "
                            "differ (use the same --gan-scale and --half-len as the run you start from)")
    out = torch.zeros_like(new)
    if name.endswith("stem.weight") and new.dim() == 2 and new.shape[1] == 2 * new_ch:
        # the generator stem reads two time steps flattened time-major: [t0 channels, t1 channels]
        for t in range(2):
            out[:, t * new_ch : t * new_ch + old_ch] = old[:, t * old_ch : (t + 1) * old_ch]
        return out
    out[:, : old.shape[1]] = old
    return out


def warm_start(path: str | Path, nets: Mapping[str, nn.Module], conds: Sequence[Condition],
               model: Mapping) -> int:
    """Load `path`'s GAN weights into `nets` (see module docstring); returns the step it was trained for."""
    state = load_checkpoint(path)
    if state.get("kind") != "gan":
        raise TrainingError(f"--init-from {path}: not a GAN checkpoint (kind {state.get('kind')!r})")
    old_conds = [Condition(**c) for c in state["conditioning"]]
    prefix = [(c.name, c.kind) for c in conds[: len(old_conds)]]
    if prefix != [(c.name, c.kind) for c in old_conds]:
        raise TrainingError(
            f"--init-from {path}: its conditions {[c.name for c in old_conds]} must come first, in order, in "
            f"this run's conditions {[c.name for c in conds]} (e.g. --condition tempo --condition beat)")
    old_g = ModelConfig.from_dict(state["model"]).gan.generator_inputs
    new_ch = ModelConfig.from_dict(model).gan.generator_inputs
    for net_name in NETWORKS:
        net, old = nets[net_name], state["networks"][net_name]
        fresh = net.state_dict()
        missing = sorted(set(fresh) - set(old))
        if missing:
            raise TrainingError(f"--init-from {path}: {net_name} lacks {missing[:3]}; architectures differ")
        net.load_state_dict({k: _expand(f"{net_name}.{k}", v, old[k], old_g, new_ch) for k, v in fresh.items()})
    step = int(state["step"])
    added = [c.name for c in conds[len(old_conds):]]
    logger.info("initialised from %s (step %d)%s", path, step,
                f"; new conditioning {added} starts at zero weight" if added else "")
    return step
