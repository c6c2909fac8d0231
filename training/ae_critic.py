"""The autoencoder's adversary: a multi-resolution spectrogram discriminator (training only, never exported).

For each STFT resolution the log magnitude of the waveform (B, frames, bins) is read as a 1-D signal over
frames with the bins as channels: Conv k3 (bins -> c) -> two Conv k3 s2 (c -> c) -> Conv k3 (c -> 1), leaky ReLU
0.2 between them. Phase errors of the decoder smear the re-analysed magnitude, which this critic sees.
Output: per resolution the logits (B, frames') and the hidden features (for feature matching).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from training.losses import stft_magnitude

RESOLUTIONS: tuple[tuple[int, int], ...] = ((1024, 256), (2048, 512), (512, 128))


class _SpecCritic(nn.Module):
    def __init__(self, n_fft: int, hop: int, channels: int):
        super().__init__()
        self.n_fft, self.hop = n_fft, hop
        bins = n_fft // 2 + 1
        self.convs = nn.ModuleList([
            nn.Conv1d(bins, channels, 3, padding=1),
            nn.Conv1d(channels, channels, 3, stride=2, padding=1),
            nn.Conv1d(channels, channels, 3, stride=2, padding=1),
        ])
        self.out = nn.Conv1d(channels, 1, 3, padding=1)

    def forward(self, audio: Tensor) -> tuple[Tensor, list[Tensor]]:
        x = torch.log(stft_magnitude(audio, self.n_fft, self.hop) + 1e-5).transpose(1, 2)
        feats = []
        for conv in self.convs:
            x = F.leaky_relu(conv(x), 0.2)
            feats.append(x)
        return self.out(x).squeeze(1), feats


class SpectrogramCritic(nn.Module):
    """audio (B, samples) -> ([logits per resolution], [features per resolution])."""

    def __init__(self, channels: int = 64, resolutions: Sequence[tuple[int, int]] = RESOLUTIONS):
        super().__init__()
        self.critics = nn.ModuleList(_SpecCritic(n, h, channels) for n, h in resolutions)

    def forward(self, audio: Tensor) -> tuple[list[Tensor], list[Tensor]]:
        logits, feats = [], []
        for critic in self.critics:
            lo, fe = critic(audio)
            logits.append(lo)
            feats.extend(fe)
        return logits, feats
