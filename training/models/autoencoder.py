"""The two-level autoencoder (44.1 kHz reference release), widths from AutoencoderConfig.

Public tensors are time-major (B, T, C) as in generator/runtime/onnx_io.py:

* Encoder1: spec (B, T, bins) normalised dB -> frames (B, T, frame_dim) in [-1, 1]; a per-frame MLP.
* Decoder1: frames (B, dec1_window, frame_dim), noise (B, N) -> magnitude, phase (B, dec1_window, bins) in [-1, 1].
* Encoder2: frames (B, level2_frames k, frame_dim) -> latents (B, k, latent_dim) in [-1, 1]; windows independent.
* Decoder2: latents (B, dec2_window, latent_dim), noise (B, N) -> frames (B, dec2_window level2_frames, frame_dim).

Noisy nets have ``noise_len`` (N); ``noise=None`` draws fresh standard-normal noise (training).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from generator.runtime.model_config import AudioConfig, AutoencoderConfig
from training.models.layers import ConvSame, ConvUp, NoiseCursor, NoiseInjection, swish


class Encoder1(nn.Module):
    """1x1 convs bins -> enc1_widths... (swish) -> frame_dim (tanh)."""

    def __init__(self, ae: AutoencoderConfig, audio: AudioConfig):
        super().__init__()
        widths = (audio.bins, *ae.enc1_widths)
        self.hidden = nn.ModuleList(ConvSame(a, b, 1) for a, b in zip(widths[:-1], widths[1:], strict=True))
        self.out = ConvSame(widths[-1], ae.frame_dim, 1)
        self.linear = ConvSame(audio.bins, ae.frame_dim, 1) if ae.level1_linear else None

    def forward(self, spec: Tensor) -> Tensor:
        x = spec.transpose(1, 2)
        for conv in self.hidden:
            x = swish(conv(x))
        x = self.out(x)
        if self.linear is not None:
            x = x + self.linear(spec.transpose(1, 2))
        return torch.tanh(x).transpose(1, 2)


class _NoisyConv(nn.Module):
    """swish(noise(conv(x))) for a conv or transposed conv."""

    def __init__(self, conv: nn.Module):
        super().__init__()
        self.conv = conv
        self.noise = NoiseInjection()

    def forward(self, x: Tensor, cursor: NoiseCursor) -> Tensor:
        return swish(self.noise(self.conv(x), cursor))


class Decoder1(nn.Module):
    """U-net-like decoder predicting magnitude and phase (section 2.2 of the architecture digest)."""

    def __init__(self, ae: AutoencoderConfig, audio: AudioConfig):
        super().__init__()
        w0, w1, w2, w3 = ae.dec1_widths
        if ae.dec1_window % 8:
            raise ValueError(f"dec1_window must be a multiple of 8 (three stride-2 layers), got {ae.dec1_window}")
        self.window = ae.dec1_window
        self.e0 = _NoisyConv(ConvSame(ae.frame_dim, w0, 3))
        self.e1 = _NoisyConv(ConvSame(w0, w1, 3, 2))
        self.e2 = _NoisyConv(ConvSame(w1, w2, 3, 2))
        self.e3 = _NoisyConv(ConvSame(w2, w3, 3, 2))
        self.u2 = _NoisyConv(ConvUp(w3, w2))
        self.m1 = _NoisyConv(ConvUp(w2, w1))
        self.m0 = _NoisyConv(ConvUp(w1, w0))
        self.mag = ConvSame(w0, audio.bins, 1)
        self.p1 = _NoisyConv(ConvUp(w2, w1))
        self.p0 = _NoisyConv(ConvUp(w1, w0))
        self.phs = ConvSame(w0, audio.bins, 1)
        self.linear = ConvSame(ae.frame_dim, audio.bins, 1) if ae.level1_linear else None
        t = self.window
        self.noise_len = t + t // 2 + t // 4 + t // 8 + t // 4 + t // 2 + t + t // 2 + t

    def forward(self, frames: Tensor, noise: Tensor | None = None) -> tuple[Tensor, Tensor]:
        x = frames.transpose(1, 2)
        cur = NoiseCursor(noise, frames.shape[0], self.noise_len, frames, "decoder1")
        e0 = self.e0(x, cur)
        e1 = self.e1(e0, cur)
        e2 = self.e2(e1, cur)
        e3 = self.e3(e2, cur)
        u2 = self.u2(e3, cur)
        m1 = self.m1(u2 + e2, cur)
        m0 = self.m0(m1 + e1, cur)
        mag = self.mag(m0 + e0)
        if self.linear is not None:
            mag = mag + self.linear(x)
        mag = torch.clamp(mag, -1.0, 1.0)
        p1 = self.p1(u2, cur)
        p0 = self.p0(p1 + m1, cur)
        phs = torch.clamp(self.phs(p0 + m0), -1.0, 1.0)
        return mag.transpose(1, 2), phs.transpose(1, 2)


class Encoder2(nn.Module):
    """Squeezes each window of level2_frames level-1 vectors into one latent (section 2.3)."""

    def __init__(self, ae: AutoencoderConfig):
        super().__init__()
        w = ae.enc2_widths
        n = ae.level2_frames
        out_len = ((n - 3) // 2 + 1 - 3) // 2 + 1 - 2
        if out_len != 1:
            raise ValueError(
                f"encoder2 is built for level2_frames = 16 (got {ae.level2_frames}): its conv stack "
                f"must reduce a window to one latent, but it gives {out_len}"
            )
        self.frames = n
        self.latent_dim = ae.latent_dim
        self.hidden = nn.ModuleList(
            [
                ConvSame(ae.frame_dim, w[0], 3),
                ConvSame(w[0], w[1], 3, 2, "valid"),
                ConvSame(w[1], w[2], 3),
                ConvSame(w[2], w[3], 3, 2, "valid"),
                ConvSame(w[3], w[4], 3),
                ConvSame(w[4], w[5], 3, 1, "valid"),
                ConvSame(w[5], w[6], 1),
            ]
        )
        self.out = ConvSame(w[6], ae.latent_dim, 1)

    def forward(self, frames: Tensor) -> Tensor:
        if frames.shape[1] % self.frames:
            raise ValueError(f"encoder2: frames per item must be a multiple of {self.frames}, got {frames.shape[1]}")
        k = frames.shape[1] // self.frames
        x = frames.reshape(-1, self.frames, frames.shape[2]).transpose(1, 2)
        for conv in self.hidden:
            x = swish(conv(x))
        x = torch.tanh(self.out(x))  # (B k, latent, 1)
        return x.reshape(-1, k, self.latent_dim)


class Decoder2(nn.Module):
    """dec2_window latents -> dec2_window x 16 level-1 vectors, linear output (section 2.4)."""

    def __init__(self, ae: AutoencoderConfig):
        super().__init__()
        if ae.level2_frames != 16:
            raise ValueError(
                f"decoder2 upsamples x16 (four x2 layers); level2_frames must be 16, got {ae.level2_frames}"
            )
        w = ae.dec2_widths
        self.window = ae.dec2_window
        self.layers = nn.ModuleList(
            [
                _NoisyConv(ConvSame(ae.latent_dim, w[0], 3)),
                _NoisyConv(ConvUp(w[0], w[1])),
                _NoisyConv(ConvSame(w[1], w[2], 3)),
                _NoisyConv(ConvUp(w[2], w[3])),
                _NoisyConv(ConvSame(w[3], w[4], 3)),
                _NoisyConv(ConvUp(w[4], w[5])),
                _NoisyConv(ConvUp(w[5], w[6])),
            ]
        )
        self.out = ConvSame(w[6], ae.frame_dim, 1)
        t = self.window
        self.noise_len = t + 2 * t + 2 * t + 4 * t + 4 * t + 8 * t + 16 * t

    def forward(self, latents: Tensor, noise: Tensor | None = None) -> Tensor:
        x = latents.transpose(1, 2)
        cur = NoiseCursor(noise, latents.shape[0], self.noise_len, latents, "decoder2")
        for layer in self.layers:
            x = layer(x, cur)
        return self.out(x).transpose(1, 2)
