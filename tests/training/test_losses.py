"""training.losses: the onset-envelope loss that keeps decoded attacks (kicks) sharp; the long-window STFT loss."""

from __future__ import annotations

import numpy as np
import torch

from training import losses as L


def _kicks(frames: int, bins: int, every: int, attack: int) -> torch.Tensor:
    """dB-like spectrogram (1, frames, bins) at -1 with a kick every `every` frames rising over `attack` frames."""
    spec = torch.full((1, frames, bins), -1.0)
    for start in range(4, frames - every, every):
        for i in range(attack):
            spec[0, start + i, : bins // 8] = -1.0 + 1.5 * (i + 1) / attack
        spec[0, start + attack : start + attack + 6, : bins // 8] = 0.5
    return spec


def test_a_smeared_or_missing_kick_costs_more_than_the_sharp_original():
    bands = L.mel_bands(1024, 44100)
    assert bands.shape == (513, 64)
    sharp = _kicks(256, 513, 32, attack=1)
    assert float(L.onset_loss(sharp, sharp, bands)) == 0.0
    smeared = _kicks(256, 513, 32, attack=8)
    silent = torch.full_like(sharp, -1.0)
    assert abs(float(L.onset_loss(silent, sharp, bands)) - 1.0) < 0.01  # missing kicks cost their whole envelope
    assert float(L.onset_loss(smeared, sharp, bands)) > 1.0  # smearing costs the missing peak and the spread rise
    assert float(L.onset_loss(sharp, smeared, bands)) > 0.5
    env = L.onset_envelope(sharp, bands)[0]
    assert env.shape == (255,)
    assert env[3] > 10 * env[10]  # the envelope peaks where a kick starts


def test_only_the_long_windows_hear_a_phase_that_repeats_every_four_frames():
    """decoder1's phase once repeated every 4 frames (lines at multiples of 43 Hz): at the model's own STFT sizes
    such a phase costs no more than a random one, at the long windows of ae1/stft_long it costs clearly more."""
    rng = np.random.default_rng(0)
    t = np.arange(44100) / 44100
    x = 0.3 * rng.standard_normal(t.size) * np.exp(-((t % 0.5) / 0.1)) + 0.2 * np.sin(2 * np.pi * 220 * t)
    x = torch.tensor(x[None], dtype=torch.float32)
    window = torch.hann_window(1024)
    spec = torch.stft(x, 1024, 256, window=window, center=True, return_complex=True)
    frames = spec.shape[-1]
    random = torch.tensor(rng.uniform(-np.pi, np.pi, spec.shape), dtype=torch.float32)
    repeating = random[..., :4].repeat(1, 1, frames // 4 + 1)[..., :frames]

    def cost(phase, resolutions):
        y = torch.istft(torch.polar(spec.abs(), phase), 1024, 256, window=window, center=True)
        return float(L.multi_resolution_stft(y[:, 2048:40000], x[:, 2048:40000], resolutions))

    assert cost(repeating, L.STFT_RESOLUTIONS) < 1.05 * cost(random, L.STFT_RESOLUTIONS)
    assert cost(repeating, L.LONG_RESOLUTIONS) > 1.08 * cost(random, L.LONG_RESOLUTIONS)
    assert cost(torch.angle(spec), L.LONG_RESOLUTIONS) < 1e-3
