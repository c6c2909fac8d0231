"""The latent GAN (44.1 kHz reference release): Generator over one coordinate half, and the Critic.

Generator: coords (B, half_len, local+global), [cond_scalar (B, S)], [cond_curve (B, half_len, K)],
noise (B, N) -> latents (B, half_len, 2 latent_dim); B counts halves (two per window, run independently).
Critic: latents (B, window_len, 2 latent_dim), [cond_scalar], [cond_curve (B, window_len, K)] -> scores (B,).

Conditioning wiring: the conditioning channels from :func:`condition_channels` (values with NaN -> 0 plus
presence flags) are concatenated to the coordinates *before* the average-pooling pyramid, so they reach the
stem Dense and every AdaIN scale (a per-resolution multiplicative modulation, like a FiLM scale from a
conditioning pyramid). The critic gets the same channels concatenated to its latent input plus a projection
term <embed(scalars, flags), time-pooled last features>. With no conditioning declared the networks are
exactly the reference ones (15,499,530 and 20,786,689 parameters at the default widths).

Depth follows half_len: half_len = 128 gives the reference's four residual up-blocks (widths 7..3 x bc);
a shorter half drops the widest blocks. The critic keeps its stem at 3 x cc and ends at 7 x cc.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from generator.runtime.model_config import ModelConfig
from training.models.layers import (
    SQRT_HALF,
    AdaIN,
    ConvSame,
    ConvUp,
    NoiseCursor,
    NoiseInjection,
    condition_channels,
    pixel_shuffle_1d,
    swish,
)


class _UpBlock(nn.Module):
    """t = sqrt(.5) sw(AdaIN(nz(ConvT(x)))); t = sqrt(.5) sw(AdaIN(nz(Conv k4(t)))); out = t + 1x1(shuffle(x))."""

    def __init__(self, cin: int, cout: int, cond_ch: int):
        super().__init__()
        self.up = ConvUp(cin, cout)
        self.noise1 = NoiseInjection()
        self.norm1 = AdaIN(cond_ch, cout)
        self.conv = ConvSame(cout, cout, 4)
        self.noise2 = NoiseInjection()
        self.norm2 = AdaIN(cond_ch, cout)
        self.skip = nn.Conv1d(cin // 2, cout, 1)

    def forward(self, x: Tensor, cond: Tensor, cur: NoiseCursor) -> Tensor:
        t = SQRT_HALF * swish(self.norm1(self.noise1(self.up(x), cur), cond))
        t = SQRT_HALF * swish(self.norm2(self.noise2(self.conv(t), cur), cond))
        return t + self.skip(pixel_shuffle_1d(x))


class Generator(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        g = cfg.gan
        self.half_len = g.half_len
        self.coord_dim = g.coord_dim
        self.n_scalars, self.n_curves = g.cond_scalars, g.cond_curves
        self.out_dim = 2 * cfg.autoencoder.latent_dim
        cond_ch = g.generator_inputs
        self.levels = int(math.log2(g.half_len))  # pyramid P0 (half_len) .. P[levels-1] (2 steps)
        n_blocks = self.levels - 3
        bc = g.base_channels
        widths = [(3 + n_blocks - i) * bc for i in range(n_blocks + 1)]
        self.stem = nn.Linear(2 * cond_ch, 4 * widths[0])
        self.stem_width = widths[0]
        self.stem_noise = NoiseInjection()
        self.stem_norm = AdaIN(cond_ch, widths[0])
        self.blocks = nn.ModuleList(_UpBlock(a, b, cond_ch) for a, b in zip(widths[:-1], widths[1:], strict=True))
        self.last_up = ConvUp(widths[-1], 2 * bc)
        self.last_noise = NoiseInjection()
        self.last_norm = AdaIN(cond_ch, 2 * bc)
        self.out = ConvSame(2 * bc, self.out_dim, 4)
        self.noise_len = 4 + sum(2 * 8 * 2**i for i in range(n_blocks)) + g.half_len

    def forward(
        self,
        coords: Tensor,
        cond_scalar: Tensor | None = None,
        cond_curve: Tensor | None = None,
        noise: Tensor | None = None,
    ) -> Tensor:
        """coords (B, half_len, coord_dim) -> latents (B, half_len, 2 latent_dim); see module docstring."""
        if coords.dim() != 3 or coords.shape[1] != self.half_len or coords.shape[2] != self.coord_dim:
            raise ValueError(
                f"generator: coords must have shape (halves, {self.half_len}, {self.coord_dim}), "
                f"got {tuple(coords.shape)}"
            )
        x = coords.transpose(1, 2)
        cond = condition_channels(cond_scalar, cond_curve, self.n_scalars, self.n_curves, self.half_len, x)
        if cond is not None:
            x = torch.cat([x, cond], dim=1)
        pyramid = [x]
        for _ in range(self.levels - 1):
            pyramid.append(F.avg_pool1d(pyramid[-1], 2))
        cur = NoiseCursor(noise, coords.shape[0], self.noise_len, coords, "generator")
        top = pyramid[-1].transpose(1, 2).reshape(-1, 2 * x.shape[1])  # time-major flatten
        h = self.stem(top).reshape(-1, 4, self.stem_width).transpose(1, 2)
        h = swish(self.stem_norm(self.stem_noise(h, cur), pyramid[-2]))
        for i, block in enumerate(self.blocks):
            h = block(h, pyramid[-3 - i], cur)
        h = swish(self.last_norm(self.last_noise(self.last_up(h), cur), pyramid[0]))
        return self.out(h).transpose(1, 2)

    def generate_window(
        self,
        coords: Tensor,
        cond_scalar: Tensor | None = None,
        cond_curve: Tensor | None = None,
        noise: Tensor | None = None,
    ) -> Tensor:
        """A whole window as two independent halves: coords (B, 2 half_len, C), cond_curve (B, 2 half_len, K),
        noise (B, 2 N) -> latents (B, 2 half_len, 2 latent_dim). Half h of item b runs as batch item 2 b + h."""
        b, length = coords.shape[0], coords.shape[1]
        if length != 2 * self.half_len:
            raise ValueError(f"generate_window: coords must have {2 * self.half_len} steps, got {length}")
        halves = coords.reshape(2 * b, self.half_len, coords.shape[2])
        scal = cond_scalar.repeat_interleave(2, dim=0) if cond_scalar is not None else None
        curve = cond_curve.reshape(2 * b, self.half_len, -1) if cond_curve is not None else None
        nz = noise.reshape(2 * b, self.noise_len) if noise is not None else None
        out = self.forward(halves, scal, curve, nz)
        return out.reshape(b, length, self.out_dim)


class _DownBlock(nn.Module):
    """sqrt(.5) lrelu(conv k1st) -> sqrt(.5) lrelu(conv k4 s2), plus AvgPool2 (+ bias-free 1x1) skip."""

    def __init__(self, cin: int, cout: int, first_kernel: int):
        super().__init__()
        self.conv0 = ConvSame(cin, cin, first_kernel)
        self.conv1 = ConvSame(cin, cout, 4, 2)
        self.skip = nn.Conv1d(cin, cout, 1, bias=False) if cin != cout else None

    def forward(self, x: Tensor) -> Tensor:
        t = SQRT_HALF * F.leaky_relu(self.conv0(x), 0.2)
        t = SQRT_HALF * F.leaky_relu(self.conv1(t), 0.2)
        s = F.avg_pool1d(x, 2)
        if self.skip is not None:
            s = self.skip(s)
        return t + s


class Critic(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        g = cfg.gan
        self.window_len = g.window_len
        self.latent_ch = 2 * cfg.autoencoder.latent_dim
        self.n_scalars, self.n_curves = g.cond_scalars, g.cond_curves
        cin = self.latent_ch + g.cond_inputs
        n_blocks = int(math.log2(g.window_len)) - 3  # window -> window/2 (stem) -> ... -> 4 steps
        cc = g.critic_channels
        mult = ([4, 5, 6, 7] + [7] * n_blocks)[: n_blocks - 1] + [7]
        widths = [3 * cc] + [m * cc for m in mult]
        self.stem = ConvSame(cin, widths[0], 4, 2)
        self.blocks = nn.ModuleList(
            _DownBlock(a, b, 1 if i == n_blocks - 1 else 4)
            for i, (a, b) in enumerate(zip(widths[:-1], widths[1:], strict=True))
        )
        self.final = ConvSame(widths[-1], widths[-1], 3)
        self.head = nn.Linear(4 * widths[-1], 1)
        self.embed = nn.Linear(2 * g.cond_scalars, widths[-1], bias=False) if g.cond_scalars else None

    def forward(self, latents: Tensor, cond_scalar: Tensor | None = None, cond_curve: Tensor | None = None) -> Tensor:
        """latents (B, window_len, 2 latent_dim) -> scores (B,)."""
        if latents.dim() != 3 or latents.shape[1] != self.window_len or latents.shape[2] != self.latent_ch:
            raise ValueError(
                f"critic: latents must have shape (batch, {self.window_len}, {self.latent_ch}), "
                f"got {tuple(latents.shape)}"
            )
        x = latents.transpose(1, 2)
        cond = condition_channels(cond_scalar, cond_curve, self.n_scalars, self.n_curves, self.window_len, x)
        if cond is not None:
            x = torch.cat([x, cond], dim=1)
        h = F.leaky_relu(self.stem(x), 0.2)
        for block in self.blocks:
            h = block(h)
        h = F.leaky_relu(self.final(h), 0.2)  # (B, C, 4)
        score = self.head(h.transpose(1, 2).reshape(h.shape[0], -1)).squeeze(1)
        if self.embed is not None and cond is not None:
            scal = cond[:, : 2 * self.n_scalars, 0]  # values and flags (constant over time)
            score = score + (self.embed(scal) * h.mean(dim=2)).sum(dim=1)
        return score
