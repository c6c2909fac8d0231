"""Building blocks shared by the autoencoders and the GAN, faithful to the reference (TF/Keras) layers.

Inside the networks tensors are channel-first (B, C, T) as torch convolutions want; only the public
``forward`` of each network uses the ONNX layout (B, T, C) and transposes (see generator/runtime/onnx_io.py).

* :class:`ConvSame`: 1-D conv with TF "same" padding (or "valid"). For an input length divisible by the
  stride, TF pads ``max(k - s, 0)`` in total, the smaller half on the left: k3 s2 -> (0, 1), k4 s1 -> (1, 2),
  k3 s1 -> (1, 1). All our strided layers see even lengths, so the padding is static (ONNX-friendly).
* :class:`ConvUp`: transposed conv k4 s2, PyTorch ``padding=1`` == TF "same" (output 2 T).
* :class:`NoiseInjection`: x + b n with one explicit noise value per time step, b a learned scalar (init 0).
* :class:`NoiseCursor`: hands out consecutive slices of a (B, N) noise input, one per noisy layer.
* :class:`AdaIN`: the reference's variant, x / (std_time(x) + eps) * Conv1x1(pyramid level).
* :func:`pixel_shuffle_1d`: (B, C, L) -> (B, C/2, 2L), output step 2w+f, channel c <- input step w, channel 2c+f.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

SQRT_HALF = math.sqrt(0.5)


class ConvSame(nn.Conv1d):
    """Conv1d(cin -> cout, kernel k, stride s) with TF padding "same" (default) or "valid"."""

    def __init__(self, cin: int, cout: int, k: int, stride: int = 1, padding: str = "same", bias: bool = True):
        super().__init__(cin, cout, k, stride=stride, padding=0, bias=bias)
        if padding == "same":
            total = max(k - stride, 0)
            self.pads = (total // 2, total - total // 2)
        elif padding == "valid":
            self.pads = (0, 0)
        else:
            raise ValueError(f"padding must be 'same' or 'valid', got {padding!r}")

    def forward(self, x: Tensor) -> Tensor:
        if self.pads != (0, 0):
            x = F.pad(x, self.pads)
        return super().forward(x)


class ConvUp(nn.ConvTranspose1d):
    """Transposed conv k4 s2 (TF "same" == PyTorch padding 1): (B, cin, T) -> (B, cout, 2T)."""

    def __init__(self, cin: int, cout: int):
        super().__init__(cin, cout, 4, stride=2, padding=1)


class NoiseCursor:
    """Consecutive slices of one (B, N) noise tensor; ``None`` draws torch.randn (training)."""

    def __init__(self, noise: Tensor | None, batch: int, total: int, like: Tensor, owner: str):
        if noise is None:
            noise = torch.randn(batch, total, device=like.device, dtype=like.dtype)
        elif noise.dim() != 2 or noise.shape[1] != total:
            raise ValueError(
                f"{owner}: noise must have shape (batch, {total}), got {tuple(noise.shape)}; "
                f"pass {total} standard-normal values per batch item (zeros turn noise off)"
            )
        self.noise = noise
        self.offset = 0

    def take(self, length: int) -> Tensor:
        """The next (B, length) slice."""
        out = self.noise[:, self.offset : self.offset + length]
        self.offset += length
        return out


class NoiseInjection(nn.Module):
    """x + weight * n, n (B, T) broadcast over channels; weight a scalar initialised to 0."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(()))

    def forward(self, x: Tensor, cursor: NoiseCursor) -> Tensor:
        return x + self.weight * cursor.take(x.shape[-1]).unsqueeze(1)


class AdaIN(nn.Module):
    """x / (population std over time + eps) * Conv1x1(cond); no mean subtraction, no shift.

    x (B, C, T), cond (B, cond_ch, T). A 1e-12 inside the square root keeps gradients finite for a
    constant channel; it changes no output measurably.
    """

    def __init__(self, cond_ch: int, ch: int, eps: float = 1e-5):
        super().__init__()
        self.scale = nn.Conv1d(cond_ch, ch, 1)
        self.eps = eps

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        centred = x - x.mean(dim=-1, keepdim=True)
        std = torch.sqrt((centred * centred).mean(dim=-1, keepdim=True) + 1e-12)
        return x / (std + self.eps) * self.scale(cond)


def pixel_shuffle_1d(x: Tensor) -> Tensor:
    """(B, C, L) -> (B, C/2, 2L): out[b, c, 2w + f] = x[b, 2c + f, w]."""
    c, length = x.shape[1], x.shape[2]
    y = x.reshape(-1, c // 2, 2, length).transpose(2, 3)
    return y.reshape(-1, c // 2, 2 * length)


def swish(x: Tensor) -> Tensor:
    return x * torch.sigmoid(x)


def condition_channels(
    scalar: Tensor | None, curve: Tensor | None, n_scalars: int, n_curves: int, length: int, like: Tensor
) -> Tensor | None:
    """Conditioning as extra channels (B, 2 S + 2 K, length), or None when the net is unconditional.

    scalar (B, S) is broadcast over time, curve (B, length, K) is time-major. NaN (or a missing tensor)
    means "absent": the value becomes 0 and its presence flag 0; present values get flag 1. Channel order:
    S values, S flags, K curves, K flags.
    """
    if n_scalars == 0 and n_curves == 0:
        return None
    batch = like.shape[0]
    parts = []
    if n_scalars:
        if scalar is None:
            scalar = torch.full((batch, n_scalars), float("nan"), dtype=like.dtype, device=like.device)
        elif scalar.dim() != 2 or scalar.shape[1] != n_scalars:
            raise ValueError(f"cond_scalar must have shape (batch, {n_scalars}), got {tuple(scalar.shape)}")
        present = ~torch.isnan(scalar)
        values = torch.where(present, scalar, torch.zeros_like(scalar))
        both = torch.cat([values, present.to(like.dtype)], dim=1)
        parts.append(both.unsqueeze(-1).expand(-1, -1, length))
    if n_curves:
        if curve is None:
            curve = torch.full((batch, length, n_curves), float("nan"), dtype=like.dtype, device=like.device)
        elif curve.dim() != 3 or curve.shape[1] != length or curve.shape[2] != n_curves:
            raise ValueError(f"cond_curve must have shape (batch, {length}, {n_curves}), got {tuple(curve.shape)}")
        present = ~torch.isnan(curve)
        values = torch.where(present, curve, torch.zeros_like(curve))
        parts.append(torch.cat([values, present.to(like.dtype)], dim=2).transpose(1, 2))
    return torch.cat(parts, dim=1)
