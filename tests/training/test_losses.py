"""training.losses: the onset-envelope loss that keeps decoded attacks (kicks) sharp."""

from __future__ import annotations

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
