"""The GAN's beat-onset term (``gan/beat_onsets``): generated windows, decoded through the frozen autoencoder,
must put their attacks on the beats their ``beat`` phase condition asks for, at least as strongly as the real
music does on average.

Why: the critic sees latents, and a latent GAN can match their statistics while the decoded kick on the beat is
weaker than in the data (measured on the techno preset: the onset envelope folded by beat phase peaks at 2.2x its
mean for generated windows, 3.9x for real ones), and a beat tracker then follows the off-beat figures.

How, per step: the first half-window of up to ``ITEMS`` generated items whose phase condition is given is decoded
through decoder2 and decoder1 (frozen, gradients flow to the generator); its onset envelope
(:func:`training.losses.onset_envelope`) is folded by the position in the beat into ``BINS`` bins and normalised
to mean 1 (a profile). The real data's mean profile, measured once when training starts on ``TEMPLATE_WINDOWS``
real windows (a private RNG, so a resumed run computes the same), weights the bins above its mean (the beat
and whatever else the music stresses); an item's beat strength is its profile under those weights. The term is
the mean shortfall of the items' strength below the real windows' mean strength, relative to it (0 when every
item is at least as strong as the average real window).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from generator.runtime.model_config import ModelConfig
from generator.runtime.preset import Condition
from training import losses as L
from training.errors import TrainingError

logger = logging.getLogger(__name__)

BINS = 32  # beat-phase bins of a profile
ITEMS = 4  # generated items decoded per step
TEMPLATE_WINDOWS = 64  # real windows the template is measured on


def beat_channels(conds: Sequence[Condition]) -> int:
    """Index in cond_curve of the sin channel of the one-beat period of the first phase condition (cos follows)."""
    offset = 0
    for c in conds:
        if c.kind == "scalar":
            continue
        if c.kind == "phase":
            if 1.0 not in c.periods:
                raise TrainingError(f"gan/beat_onsets needs a phase condition with a one-beat period; {c.name!r} "
                                    f"has periods {list(c.periods)}")
            return offset + 2 * list(c.periods).index(1.0)
        offset += c.channels
    names = ", ".join(c.name for c in conds) or "none"
    raise TrainingError(f"gan/beat_onsets needs the beat phase condition (--condition beat); this run has: {names}")


def frame_positions(sin_cos: np.ndarray, frames_per_latent: int) -> np.ndarray:
    """Position in the beat (turns, [0, 1)) of every frame, (B, steps * frames_per_latent), from the per-latent
    sin/cos of the one-beat phase (B, steps, 2): linear between steps (a step advances less than half a beat)."""
    turns = np.arctan2(sin_cos[..., 0], sin_cos[..., 1]) / (2.0 * np.pi)
    step = np.mod(np.diff(turns, axis=1), 1.0)
    step = np.concatenate([step, step[:, -1:]], axis=1)  # the last step advances like the one before
    frac = np.arange(frames_per_latent) / frames_per_latent
    pos = turns[:, :, None] + step[:, :, None] * frac[None, None, :]
    return np.mod(pos.reshape(sin_cos.shape[0], -1), 1.0)


def phase_profile(envelope: Tensor, positions: np.ndarray, bins: int = BINS) -> Tensor:
    """Mean onset envelope per beat-phase bin, normalised to mean 1: envelope (B, T), positions (B, T) turns
    (finite: a window without a beat phase has no profile)."""
    if not np.all(np.isfinite(positions)):
        raise ValueError("phase_profile: positions must be finite (a window without a beat phase has no profile)")
    idx = torch.from_numpy((positions * bins).astype(np.int64) % bins).to(envelope.device)
    onehot = torch.nn.functional.one_hot(idx, bins).to(envelope.dtype)  # (B, T, bins)
    sums = torch.einsum("bt,btk->bk", envelope, onehot)
    means = sums / onehot.sum(dim=1).clamp(min=1.0)
    return means / (means.mean(dim=1, keepdim=True) + 1e-4)


class BeatOnsetTerm:
    """gan/beat_onsets for one run: the frozen decoders, the bands, and the real template (see module doc)."""

    def __init__(self, decoders: tuple[nn.Module, nn.Module], model: ModelConfig, conds: Sequence[Condition]):
        self.dec2, self.dec1 = decoders
        for net in decoders:
            net.eval()
            for p in net.parameters():
                p.requires_grad_(False)
        self.model = model
        self.channel = beat_channels(conds)
        self.bands = L.mel_bands(model.audio.n_fft, model.audio.sample_rate).to(next(self.dec1.parameters()).device)
        self.weights: Tensor | None = None
        self.target = 1.0

    def measure_template(self, sample_real) -> None:
        """`sample_real(rng, n)` -> (latents (n, W, 2 dim), curves (n, W, K)) unconditioned by dropout."""
        rng = np.random.default_rng(0)
        gen = torch.Generator().manual_seed(0)
        with torch.no_grad():
            profiles = []
            for _ in range(TEMPLATE_WINDOWS // ITEMS):
                real, curve = sample_real(rng, ITEMS)
                timed = np.isfinite(curve[:, 0, self.channel])  # a chunk without a beat grid has no phase
                if timed.any():
                    profiles.append(self.profiles(torch.from_numpy(real[timed]), curve[timed], gen))
            if not profiles:
                raise TrainingError(f"gan/beat_onsets: none of {TEMPLATE_WINDOWS} real windows has a beat phase (no "
                                    "chunk with a beat grid was drawn); train without the term")
            prof = torch.cat(profiles)
            mean = prof.mean(dim=0)
            w = torch.relu(mean - 1.0)
            if float(w.sum()) <= 0:
                raise TrainingError("gan/beat_onsets: real windows decoded through --autoencoder show no beat (flat "
                                    "onset profile by beat phase): is that autoencoder trained, and are the cache's "
                                    "tempo and downbeat labels right?")
            self.weights = w / w.sum()
            self.target = float((prof @ self.weights).mean())
        logger.info("gan/beat_onsets: real beat profile %s, mean strength %.2f",
                    [round(float(v), 2) for v in mean], self.target)

    def profiles(self, latents: Tensor, curve: np.ndarray, gen: torch.Generator | None = None) -> Tensor:
        """Profiles (n, BINS) of the first half-window of each item (left channel), through both decoders."""
        ae = self.model.autoencoder
        half = self.model.gan.half_len
        n = latents.shape[0]
        x = latents[:, :half, : ae.latent_dim].reshape(n * half // ae.dec2_window, ae.dec2_window, -1)
        dev = next(self.dec1.parameters()).device
        n2 = torch.randn(x.shape[0], self.dec2.noise_len, generator=gen).to(dev)
        n1 = torch.randn(x.shape[0], self.dec1.noise_len, generator=gen).to(dev)
        mag, _ = self.dec1(self.dec2(x.to(dev), n2), n1)
        mag = mag.reshape(n, half * ae.level2_frames, -1)
        env = L.onset_envelope(mag, self.bands)  # rise into frame t + 1
        pos = frame_positions(curve[:, :half, self.channel : self.channel + 2], ae.level2_frames)[:, 1:]
        return phase_profile(env, pos)

    def __call__(self, fake: Tensor, curve: np.ndarray | None) -> Tensor | None:
        """The term for generated windows `fake` (B, W, 2 dim) and their curves, or None when no item has its
        beat phase given (all dropped this step)."""
        if self.weights is None:
            raise TrainingError("gan/beat_onsets: measure_template() must run before training")
        if curve is None:
            return None
        given = np.flatnonzero(np.isfinite(curve[:, 0, self.channel]))[:ITEMS]
        if given.size == 0:
            return None
        prof = self.profiles(fake[torch.from_numpy(given).to(fake.device)], curve[given])
        strength = prof @ self.weights
        return torch.relu(self.target - strength).mean() / self.target
