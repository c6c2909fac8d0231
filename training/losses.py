"""One vocabulary of loss names plus the loss functions.

Every term has one namespaced key (``ae1/stft``, ``gan/r1`` ...). The same key is the config weight
(``weights={"ae1/stft": 1.0}``), the TensorBoard/metrics.jsonl name and the model-card row. Names in
:data:`METRICS` are logged but carry no weight.

Shapes: audio (B, samples) float32 at 44.1 kHz; spectra (B, frames, bins) time-major; critic scores (B,).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from training.errors import TrainingError


@dataclass(frozen=True)
class Term:
    """One loss term: its default weight and what it measures (the model-card text)."""

    weight: float
    help: str


LOSSES: dict[str, Term] = {
    "ae1/magnitude": Term(1.0, "L1 between decoder1's normalised dB magnitude and the input spectrogram"),
    "ae1/stft": Term(1.0, "multi-resolution STFT loss (spectral convergence + log-magnitude L1) of the "
                          "decoded waveform against the input audio"),
    "ae1/stft_long": Term(0.0, "multi-resolution STFT loss at long windows (8192/1024, 4096/512) of the decoded "
                               "waveform: resolves partials 5-11 Hz apart, so a phase that repeats every few frames "
                               "(spectral lines at multiples of the frame rate) and smeared pitch cost what they do to "
                               "the sound"),
    "ae1/mel": Term(0.0, "L1 between the mel-band means (64 bands) of decoder1's normalised dB magnitude and the "
                         "input's: every band counts alike, so the bass (2-3 of 513 STFT bins, lost by 20-30 dB when "
                         "only the bins count) is paid for (opt-in: with it a 2-process run does not yet match one "
                         "process at twice the batch)"),
    "ae1/consistency": Term(1.0, "log-magnitude L1 between the re-analysed decoded waveform and the predicted "
                                 "magnitude (phase/waveform consistency)"),
    "ae1/adversarial": Term(0.1, "hinge generator term against the multi-resolution spectrogram discriminator"),
    "ae1/feature": Term(1.0, "discriminator feature matching (L1 over hidden layers, real vs decoded)"),
    "ae2/frames": Term(1.0, "L1 between decoder2's level-1 vectors and encoder1's"),
    "ae2/magnitude": Term(1.0, "L1 of the magnitude decoded through the frozen decoder1 against the input"),
    "ae2/mel": Term(0.0, "mel-band L1 (as ae1/mel) of the magnitude decoded through the frozen decoder1"),
    "ae2/stft": Term(0.5, "multi-resolution STFT loss of the waveform decoded through both decoders"),
    "ae2/stft_long": Term(0.0, "long-window multi-resolution STFT loss (as ae1/stft_long) of the waveform decoded "
                               "through both decoders"),
    "ae2/onsets": Term(0.0, "onset-envelope error (mel-band spectral flux, relative) of the magnitude decoded "
                            "through the frozen decoder1: keeps attacks such as kicks sharp"),
    "gan/generator": Term(1.0, "hinge generator loss -mean D(G(z))"),
    "gan/beat_onsets": Term(0.0, "shortfall of the generated windows' attacks on the conditioned beats (onset envelope "
                                 "of the decoded audio folded by beat phase) below the real windows' average "
                                 "(training.beat_onsets)"),
    "gan/r1": Term(10.0, "R1 penalty on reals, sum of squared critic gradients; the weight given is the maximum "
                         "of the reference's adaptive weight"),
}

METRICS: dict[str, str] = {
    "ae1/critic": "hinge loss of the autoencoder's spectrogram discriminator",
    "ae1/grad_norm": "global gradient norm of encoder1 + decoder1",
    "ae2/grad_norm": "global gradient norm of encoder2 + decoder2",
    "ae2/seam_recon": "seam stage: decoder2 level-1 L1 over adjacent windows, joins weighted up",
    "ae2/seam_jump": "seam stage: error of decoder2's frame-to-frame change across window joins",
    "ae1/seam_recon": "seam stage: decoder1 magnitude L1 over adjacent windows, joins weighted up",
    "ae1/seam_jump": "seam stage: error of decoder1's magnitude change across window joins",
    "ae2/seam_onsets": "seam stage: onset-envelope error (mel-band spectral flux, relative) of the magnitude "
                       "decoded through both decoders",
    "ae1/seam_stft": "seam stage: multi-resolution STFT loss of the waveform joined from separate windows",
    "gan/critic": "hinge critic loss 1/2 [mean relu(1 - D(x)) + mean relu(1 + D(G(z)))]",
    "gan/r1_weight": "current adaptive R1 weight (10 (-switch) in the reference)",
    "gan/margin": "mean D(x) - mean D(G(z))",
    "gan/grad_norm": "global gradient norm of the generator",
    "gan/critic_grad_norm": "global gradient norm of the critic",
}

STFT_RESOLUTIONS: tuple[tuple[int, int], ...] = ((2048, 512), (1024, 256), (512, 128), (256, 64))
LONG_RESOLUTIONS: tuple[tuple[int, int], ...] = ((8192, 1024), (4096, 512))


def default_weights(prefix: str) -> dict[str, float]:
    """Default weights of every term whose name starts with `prefix` (e.g. "ae", "gan")."""
    return {k: t.weight for k, t in LOSSES.items() if k.startswith(prefix)}


def check_weights(weights: Mapping[str, float], prefix: str) -> dict[str, float]:
    """Defaults overlaid with `weights`; unknown names and negative/non-finite weights are refused."""
    allowed = default_weights(prefix)
    unknown = sorted(set(weights) - set(allowed))
    if unknown:
        raise TrainingError(f"unknown loss weight(s) {unknown}; known names: {', '.join(sorted(allowed))}")
    out = dict(allowed)
    for k, v in weights.items():
        v = float(v)
        if not (v >= 0 and v < float("inf")):
            raise TrainingError(f"loss weight {k} = {v} must be a finite number >= 0")
        out[k] = v
    return out


def weighted_sum(terms: Mapping[str, Tensor], weights: Mapping[str, float]) -> Tensor:
    """Sum of weight x term over the terms that have a weight (metrics are skipped)."""
    total = None
    for k, v in terms.items():
        if k in weights and weights[k] != 0.0:
            total = v * weights[k] if total is None else total + v * weights[k]
    if total is None:
        raise TrainingError(f"every weighted loss is zero ({sorted(terms)}); give at least one a weight > 0")
    return total


def _hann(n: int, like: Tensor) -> Tensor:
    return torch.hann_window(n, periodic=True, dtype=like.dtype, device=like.device)


def stft_magnitude(audio: Tensor, n_fft: int, hop: int) -> Tensor:
    """|STFT| (B, frames, n_fft/2+1), no centering, periodic Hann; audio (B, samples)."""
    spec = torch.stft(audio, n_fft, hop, window=_hann(n_fft, audio), center=False, return_complex=True)
    return torch.sqrt(spec.real**2 + spec.imag**2 + 1e-9).transpose(1, 2)


def multi_resolution_stft(
    decoded: Tensor, target: Tensor, resolutions: Sequence[tuple[int, int]] = STFT_RESOLUTIONS
) -> Tensor:
    """Mean over resolutions of spectral convergence ||S-S'||_F/||S||_F plus mean |log S - log S'|."""
    total = decoded.new_zeros(())
    used = 0
    for n_fft, hop in resolutions:
        if decoded.shape[-1] < n_fft:
            continue
        a = stft_magnitude(decoded, n_fft, hop)
        b = stft_magnitude(target, n_fft, hop)
        sc = torch.linalg.vector_norm(b - a, dim=(1, 2)) / (torch.linalg.vector_norm(b, dim=(1, 2)) + 1e-7)
        total = total + sc.mean() + (torch.log(a + 1e-5) - torch.log(b + 1e-5)).abs().mean()
        used += 1
    if used == 0:
        raise TrainingError(f"audio of {decoded.shape[-1]} samples is shorter than every STFT resolution")
    return total / used


def mel_bands(n_fft: int, sample_rate: int, n_mels: int = 64) -> Tensor:
    """(bins, n_mels) averaging matrix: each column averages the STFT bins of one mel band (librosa's bands)."""
    import librosa  # heavy import, deferred

    fb = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, norm=None)  # (n_mels, bins)
    fb = fb / fb.sum(axis=1, keepdims=True).clip(1e-9)
    return torch.from_numpy(fb.T.copy()).float()


def onset_envelope(spec_db: Tensor, bands: Tensor) -> Tensor:
    """Onset strength (B, frames - 1) of a dB-like spectrogram (B, frames, bins): the mean over mel bands of the
    positive frame-to-frame rise, the envelope librosa's beat tracker and onset detector follow."""
    mel = spec_db @ bands
    return F.relu(mel[:, 1:] - mel[:, :-1]).mean(dim=-1)


def onset_loss(decoded_db: Tensor, target_db: Tensor, bands: Tensor) -> Tensor:
    """L1 between the onset envelopes of a decoded and a target spectrogram, relative to the target's mean
    envelope (so quiet and loud material weigh alike): a missing or smeared kick costs what its onset was."""
    target = onset_envelope(target_db, bands)
    return (onset_envelope(decoded_db, bands) - target).abs().mean() / (target.mean() + 1e-4)


def hinge_critic(real: Tensor, fake: Tensor) -> Tensor:
    """1/2 [mean relu(1 - D(x)) + mean relu(1 + D(G(z)))]."""
    return 0.5 * (F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean())


def hinge_generator(fake: Tensor) -> Tensor:
    return -fake.mean()


def r1_penalty(real_scores: Tensor, real_inputs: Tensor) -> Tensor:
    """Mean over the batch of sum (dD(x)/dx)^2 (the reference's R1, no 1/2); keeps the graph for backward."""
    (grad,) = torch.autograd.grad(real_scores.sum(), real_inputs, create_graph=True)
    return grad.pow(2).flatten(1).sum(dim=1).mean()


def feature_matching(fake_feats: Sequence[Tensor], real_feats: Sequence[Tensor]) -> Tensor:
    """Mean over layers of L1(fake, real.detach())."""
    losses = [(f - r.detach()).abs().mean() for f, r in zip(fake_feats, real_feats, strict=True)]
    return torch.stack(losses).mean()


def grad_norm(parameters) -> Tensor:
    """Global L2 norm of the gradients (0 when none)."""
    norms = [p.grad.detach().norm() for p in parameters if p.grad is not None]
    return torch.linalg.vector_norm(torch.stack(norms)) if norms else torch.zeros(())
