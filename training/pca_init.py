"""Level 1 started as a principal-component analysis of the training frames (`musika train ae --level1-init pca`).

A trained level 1 of the shared autoencoder smeared every harmonic into a spectral envelope, while a linear
projection onto the 64 leading principal components of the same normalised dB frames keeps them (held-out piano
through the phase vocoder: 2.95 dB log-spectral distance against the trained level 1's 6.68 dB; docs/BENCHMARKS.md).
Networks learn smooth functions first; a comb of harmonics is the last thing they learn. So level 1 gets a linear
path beside each network (`level1_linear`: spectrum -> frame beside encoder1's MLP, frame -> magnitude beside
decoder1's U-net) that starts as the projection onto the components and back, each component scaled to a spread of
`SPREAD` before the encoder's tanh (nearly linear there), while the networks' last layers start at zero. Training
then adds what the linear answer lacks (the phase, and what 64 components miss). Pure tensor code: the frames come
in, the networks are changed in place.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

SPREAD = 0.3  # each component's spread before the tanh: one spread is within 3 % of linear there, three 20 %


@dataclass(frozen=True)
class Principal:
    """The training frames' mean (bins,), leading components (k, bins, orthonormal rows) and their spreads (k,)."""

    mean: np.ndarray
    components: np.ndarray
    spread: np.ndarray


def principal_frames(frames: np.ndarray, k: int) -> Principal:
    """The `k` leading principal components of normalised dB frames (n, bins); raises ValueError when there are
    fewer frames than components or the frames hold no variation."""
    x = np.asarray(frames, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < k or x.shape[1] < k:
        raise ValueError(f"a principal-component start needs at least {k} frames of at least {k} bins, got {x.shape}")
    mean = x.mean(axis=0)
    _, s, vt = np.linalg.svd(x - mean, full_matrices=False)
    spread = s[:k] / np.sqrt(max(1, x.shape[0] - 1))
    if not np.all(spread > 1e-6):
        raise ValueError(f"the frames vary along fewer than {k} directions: no principal-component start")
    return Principal(mean, vt[:k], spread)


@torch.no_grad()
def start_level1(encoder1: nn.Module, decoder1: nn.Module, pca: Principal) -> None:
    """Set level 1's linear paths to the projection onto `pca` and back and silence the networks' own outputs (see
    the module docstring); raises ValueError when level 1 has no linear paths or other sizes than `pca`."""
    k, bins = pca.components.shape
    if getattr(encoder1, "linear", None) is None or getattr(decoder1, "linear", None) is None:
        raise ValueError("level 1 has no linear paths to start: build it with level1_linear (musika train ae "
                         "--level1-init pca does)")
    if encoder1.linear.weight.shape[:2] != (k, bins) or decoder1.linear.weight.shape[:2] != (bins, k):
        raise ValueError(f"{k} components of {bins} bins do not fit level 1's linear paths "
                         f"{tuple(encoder1.linear.weight.shape[:2])} and {tuple(decoder1.linear.weight.shape[:2])}")
    scale = SPREAD / pca.spread  # component -> its value before the tanh
    encoder1.linear.weight[:, :, 0] = torch.from_numpy((pca.components * scale[:, None]).astype(np.float32))
    encoder1.linear.bias.copy_(torch.from_numpy((-scale * (pca.components @ pca.mean)).astype(np.float32)))
    decoder1.linear.weight[:, :, 0] = torch.from_numpy((pca.components.T / scale[None, :]).astype(np.float32))
    decoder1.linear.bias.copy_(torch.from_numpy(pca.mean.astype(np.float32)))
    for head in (encoder1.out, decoder1.mag):  # the networks start silent and learn what the projection misses
        head.weight.zero_()
        head.bias.zero_()
