"""Torch twin of generator/runtime/spectral.py: the same STFT/iSTFT and dB scaling, batched and differentiable.

Shapes: audio (B, samples); spectra (B, frames, bins), time-major like the numpy version. No centering or
padding (frame t starts at sample hop t), periodic Hann analysis window, Hann / 1.5 synthesis window for
75 % overlap, plain overlap-add, output length (frames - 1) hop + n_fft. This is NOT ``torch.stft`` with its
defaults (center=True, reflect padding). tests/training/test_spectral_torch.py checks it against numpy.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from generator.runtime import spectral as np_spectral
from generator.runtime.model_config import AudioConfig

DEFAULT = AudioConfig()
AMIN = np_spectral.AMIN
MAG_EPS = np_spectral.MAG_EPS


def _window(values, like: Tensor) -> Tensor:
    return torch.as_tensor(values, dtype=torch.float32, device=like.device)


def stft(audio: Tensor, cfg: AudioConfig = DEFAULT) -> Tensor:
    """audio (B, samples) float -> complex64 (B, frames, bins), frames = floor((samples - n_fft) / hop) + 1."""
    if audio.dim() != 2:
        raise ValueError(f"stft expects audio of shape (batch, samples), got {tuple(audio.shape)}")
    audio = audio.float()
    if audio.shape[1] < cfg.n_fft:
        return torch.zeros(audio.shape[0], 0, cfg.bins, dtype=torch.complex64, device=audio.device)
    frames = audio.unfold(1, cfg.n_fft, cfg.hop)  # (B, T, n_fft)
    return torch.fft.rfft(frames * _window(np_spectral.hann_periodic(cfg.n_fft), audio), dim=-1)


def db_norm(spec: Tensor, cfg: AudioConfig = DEFAULT) -> Tensor:
    """Complex STFT -> normalised dB magnitude S = (10 log10(max(1e-10, |X|^2)) - mu) / sigma."""
    power = torch.clamp(spec.real**2 + spec.imag**2, min=AMIN)
    return (10.0 * torch.log10(power) - cfg.db_mu) / cfg.db_sigma


def spectrogram(audio: Tensor, cfg: AudioConfig = DEFAULT) -> Tensor:
    """audio (B, samples) -> normalised dB magnitude (B, frames, bins): what encoder1 reads."""
    return db_norm(stft(audio, cfg), cfg)


def magnitude(norm: Tensor, cfg: AudioConfig = DEFAULT) -> Tensor:
    """Normalised dB S -> linear magnitude sqrt(10^((sigma S + mu) / 10) + 1e-7)."""
    scale = math.log(10.0) * cfg.db_sigma / 10.0
    offset = math.log(10.0) * cfg.db_mu / 10.0
    return torch.sqrt(torch.exp(norm * scale + offset) + MAG_EPS)


def istft(norm: Tensor, phase: Tensor, cfg: AudioConfig = DEFAULT) -> Tensor:
    """Decoder outputs S and P (B, frames, bins) -> audio (B, (frames - 1) hop + n_fft), not clipped."""
    if norm.shape != phase.shape or norm.dim() != 3 or norm.shape[2] != cfg.bins:
        raise ValueError(
            f"istft expects two (batch, frames, {cfg.bins}) tensors, got {tuple(norm.shape)} and {tuple(phase.shape)}"
        )
    b, t = norm.shape[0], norm.shape[1]
    if t == 0:
        return norm.new_zeros(b, 0)
    mag = magnitude(norm, cfg)
    ang = phase * math.pi
    spec = torch.complex(mag * torch.cos(ang), mag * torch.sin(ang))
    frames = torch.fft.irfft(spec, n=cfg.n_fft, dim=-1) * _window(np_spectral.synthesis_window(cfg), norm)
    overlap = cfg.n_fft // cfg.hop
    parts = frames.reshape(b, t, overlap, cfg.hop)
    out = norm.new_zeros(b, t + overlap - 1, cfg.hop)
    for j in range(overlap):
        out = out + torch.nn.functional.pad(parts[:, :, j], (0, 0, j, overlap - 1 - j))
    return out.reshape(b, -1)
