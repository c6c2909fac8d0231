"""Autoencoder training: level 1 (spectrogram frames <-> level-1 vectors, magnitude + phase) and then level 2
(16 level-1 vectors <-> one latent), in one run with one step counter.

Steps [0, steps_level1) train encoder1 + decoder1 on random mono crops of dec1_window STFT frames (each
stereo chunk gives either channel: stereo is two mono signals through one autoencoder). Losses (names from
training/losses.py): ae1/magnitude, ae1/stft (multi-resolution STFT of the iSTFT waveform), ae1/consistency,
and from step ``adversarial_from`` on ae1/adversarial + ae1/feature against a spectrogram critic.
Steps [steps_level1, steps_level1 + steps_level2) freeze level 1 and train encoder2 + decoder2 with
ae2/frames, ae2/magnitude, ae2/stft and ae2/onsets (decoded through the frozen decoder1). With
``freeze_encoder2`` only decoder2 learns: latents already encoded (and a GAN trained on them) stay valid.

Checkpoints: RUN/ae/checkpoint.pt (see training/checkpoint.py); previews RUN/ae/previews/step_N.{wav,png};
TensorBoard RUN/tensorboard/ae; metrics RUN/ae/metrics.jsonl.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from generator.runtime.model_config import ModelConfig
from training import distributed as D
from training import losses as L
from training import spectral_torch as S
from training.audio_crops import AudioCrops
from training.checkpoint import CHECKPOINT_NAME, load_checkpoint
from training.divergence import DivergenceGuard
from training.errors import CheckpointError, TrainingError
from training.loop_utils import Schedule, StageRun, resolve_resume, set_threads, to_plain
from training.run_configs import AeTrainConfig

logger = logging.getLogger(__name__)

# fields a resumed run may change; every other field comes from the checkpoint
RESUMABLE = ("steps_level1", "steps_level2", "freeze_encoder2", "device", "checkpoint_every", "preview_every",
             "log_every", "tensorboard", "progress", "threads", "lr", "critic_lr", "adversarial_from")
# reconstruction terms whose blow-up stops a run (training.divergence)
WATCHED = ("ae1/magnitude", "ae1/mel", "ae1/stft", "ae2/frames", "ae2/magnitude")


@dataclass
class AeResult:
    step: int
    checkpoint: Path
    metrics: dict[str, float]


class _AeTrainer:
    """The networks, optimizers and one step of each level. `run` supplies the process group and the finite
    checks; every random draw covers the global batch, of which this rank keeps its rows."""

    def __init__(self, cfg: AeTrainConfig, run: StageRun):
        from training.ae_critic import SpectrogramCritic
        from training.models import Decoder1, Decoder2, Encoder1, Encoder2

        self.cfg, self.device, self.run, self.info = cfg, run.device, run, run.info
        device = run.device
        m = cfg.model
        self.weights = L.check_weights(cfg.weights, "ae")
        self.nets = {"encoder1": Encoder1(m.autoencoder, m.audio), "decoder1": Decoder1(m.autoencoder, m.audio),
                     "encoder2": Encoder2(m.autoencoder), "decoder2": Decoder2(m.autoencoder),
                     "critic": SpectrogramCritic(cfg.critic_channels)}
        for net in self.nets.values():
            net.to(device).train()
        adam = dict(lr=cfg.lr, betas=cfg.betas)
        self.level1 = [*self.nets["encoder1"].parameters(), *self.nets["decoder1"].parameters()]
        self.level2 = [*self.nets["encoder2"].parameters(), *self.nets["decoder2"].parameters()]
        self.opts = {"level1": torch.optim.Adam(self.level1, **adam),
                     "level2": torch.optim.Adam(self.level2, **adam),
                     "critic": torch.optim.Adam(self.nets["critic"].parameters(), lr=cfg.critic_lr, betas=cfg.betas)}
        self.trim = m.audio.n_fft - m.audio.hop
        mel = any(self.weights[k] for k in ("ae1/mel", "ae2/mel", "ae2/onsets"))
        self.mel = L.mel_bands(m.audio.n_fft, m.audio.sample_rate).to(run.device) if mel else None
        self.bands = self.mel if self.weights["ae2/onsets"] else None
        self.crop = (m.autoencoder.dec1_window - 1) * m.audio.hop + m.audio.n_fft

    def _decode1(self, frames: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Magnitude, phase and the waveform. The waveform sees the magnitude detached: waveform-level losses
        train the phase (and the shared trunk) while the magnitude head learns from its direct L1 target, whose
        gradients are orders of magnitude smaller than the ones through exp() in the iSTFT."""
        dec1 = self.nets["decoder1"]
        mag, phs = dec1(frames, D.randn_rows(self.info, frames.shape[0], dec1.noise_len, frames))
        return mag, phs, S.istft(mag.detach(), phs, self.cfg.model.audio)

    def _inner(self, x: Tensor) -> Tensor:
        return x[:, self.trim : x.shape[1] - self.trim]

    def step_level1(self, audio: Tensor, adversarial: bool) -> dict[str, Tensor]:
        acfg, w = self.cfg.model.audio, self.weights
        spec = S.spectrogram(audio, acfg)
        mag, phs, wave = self._decode1(self.nets["encoder1"](spec))
        terms: dict[str, Tensor] = {"ae1/magnitude": (mag - spec.clamp(-1.0, 1.0)).abs().mean()}
        if w["ae1/mel"]:
            terms["ae1/mel"] = ((mag - spec.clamp(-1.0, 1.0)) @ self.mel).abs().mean()
        terms["ae1/stft"] = L.multi_resolution_stft(self._inner(wave), self._inner(audio))
        if w["ae1/stft_long"]:
            terms["ae1/stft_long"] = L.multi_resolution_stft(self._inner(wave), self._inner(audio), L.LONG_RESOLUTIONS)
        k = acfg.n_fft // acfg.hop - 1
        re = S.db_norm(S.stft(wave, acfg), acfg)
        terms["ae1/consistency"] = (re - mag.detach()).abs()[:, k : re.shape[1] - k].mean()
        critic = self.nets["critic"]
        if adversarial:
            real, fake = self._inner(audio), self._inner(wave)
            d_real, _ = critic(real)
            d_fake, _ = critic(fake.detach())
            d_loss = sum(L.hinge_critic(r, f) for r, f in zip(d_real, d_fake, strict=True)) / len(d_real)
            self.opts["critic"].zero_grad(set_to_none=True)
            d_loss.backward()
            D.average_gradients(self.info, [critic])
            terms["ae1/critic"] = d_loss.detach()
            self._finite_or_raise(terms, list(critic.parameters()), "ae1/critic_grad")
            self.opts["critic"].step()
            with torch.no_grad():
                _, f_real = critic(real)
            g_logits, f_fake = critic(fake)
            terms["ae1/adversarial"] = sum(L.hinge_generator(g) for g in g_logits) / len(g_logits)
            terms["ae1/feature"] = L.feature_matching(f_fake, f_real)
        total = L.weighted_sum(terms, w)
        self.opts["level1"].zero_grad(set_to_none=True)
        critic.zero_grad(set_to_none=True)
        total.backward()
        D.average_gradients(self.info, [self.nets["encoder1"], self.nets["decoder1"]])
        terms["ae1/grad_norm"] = L.grad_norm(self.level1)
        self._finite_or_raise(terms, [], "")
        if self.cfg.clip_grad > 0:
            torch.nn.utils.clip_grad_norm_(self.level1, self.cfg.clip_grad)
        self.opts["level1"].step()
        return terms

    def step_level2(self, audio: Tensor) -> dict[str, Tensor]:
        acfg = self.cfg.model.audio
        spec = S.spectrogram(audio, acfg)
        with torch.no_grad():
            z1 = self.nets["encoder1"](spec)
        with torch.set_grad_enabled(not self.cfg.freeze_encoder2):
            latents = self.nets["encoder2"](z1)
        dec2 = self.nets["decoder2"]
        z1_hat = dec2(latents, D.randn_rows(self.info, latents.shape[0], dec2.noise_len, latents))
        terms: dict[str, Tensor] = {"ae2/frames": (z1_hat - z1).abs().mean()}
        decoded = ("ae2/magnitude", "ae2/mel", "ae2/stft", "ae2/stft_long")
        if any(self.weights[k] for k in decoded) or self.bands is not None:
            mag, _, wave = self._decode1(z1_hat)
            terms["ae2/magnitude"] = (mag - spec.clamp(-1.0, 1.0)).abs().mean()
            if self.weights["ae2/mel"]:
                terms["ae2/mel"] = ((mag - spec.clamp(-1.0, 1.0)) @ self.mel).abs().mean()
            if self.bands is not None:
                terms["ae2/onsets"] = L.onset_loss(mag, spec.clamp(-1.0, 1.0), self.bands)
            if self.weights["ae2/stft"]:
                terms["ae2/stft"] = L.multi_resolution_stft(self._inner(wave), self._inner(audio))
            if self.weights["ae2/stft_long"]:
                terms["ae2/stft_long"] = L.multi_resolution_stft(self._inner(wave), self._inner(audio),
                                                                 L.LONG_RESOLUTIONS)
        total = L.weighted_sum(terms, self.weights)
        self.opts["level2"].zero_grad(set_to_none=True)
        total.backward()
        D.average_gradients(self.info, [self.nets["encoder2"], self.nets["decoder2"]])
        terms["ae2/grad_norm"] = L.grad_norm(self.level2)
        self._finite_or_raise(terms, [], "")
        if self.cfg.clip_grad > 0:
            torch.nn.utils.clip_grad_norm_(self.level2, self.cfg.clip_grad)
        self.opts["level2"].step()
        return terms

    def _finite_or_raise(self, terms: dict[str, Tensor], params: list, name: str) -> None:
        if params:
            terms = {**terms, name: L.grad_norm(params)}
        self.run.check_finite(terms)

    def set_level(self, level: int) -> None:
        for p in self.level1:
            p.requires_grad_(level == 1)

    def state(self, step: int, metrics: Mapping[str, float]) -> dict[str, Any]:
        return {"kind": "autoencoder", "format": 1, "step": step, "config": to_plain(self.cfg),
                "model": self.cfg.model.to_dict(), "networks": {k: v.state_dict() for k, v in self.nets.items()},
                "optimizers": {k: v.state_dict() for k, v in self.opts.items()}, "metrics": dict(metrics)}

    def load(self, state: Mapping[str, Any]) -> None:
        for k, net in self.nets.items():
            net.load_state_dict(state["networks"][k])
        for k, opt in self.opts.items():
            opt.load_state_dict(state["optimizers"][k])
            for group in opt.param_groups:  # a resumed run may lower its learning rates (after a divergence)
                group["lr"] = self.cfg.critic_lr if k == "critic" else self.cfg.lr

    @torch.no_grad()
    def preview(self, crops: AudioCrops, step: int, level: int) -> None:
        from generator.offline.spectrogram_png import spectrogram_png
        from training.encode import decode_latents, encode_audio, reconstruct_level1
        from training.preview import write_wav

        m = self.cfg.model
        audio = crops.excerpt(3.0)
        for net in self.nets.values():
            net.eval()
        if level == 2:
            lat = encode_audio(self.nets["encoder1"], self.nets["encoder2"], audio, m)
            out = decode_latents(self.nets["decoder2"], self.nets["decoder1"], lat, m, seed=0)
        else:
            out = reconstruct_level1(self.nets["encoder1"], self.nets["decoder1"], audio, m)
        for net in self.nets.values():
            net.train()
        self.set_level(level)
        n = min(audio.shape[1], out.shape[1])
        base = self.cfg.stage_dir / "previews" / f"step_{step:07d}"
        write_wav(base.with_suffix(".wav"), np.concatenate([audio[:, :n], out[:, :n]], axis=1))
        spectrogram_png(base.with_suffix(".png"), [("input", audio[:, :n]), (f"level-{level} reconstruction",
                                                                             out[:, :n])], title=f"step {step}")


def run_autoencoder(cfg: AeTrainConfig, resume: bool = False,
                    on_step: Callable[[int, Mapping[str, float]], None] | None = None) -> AeResult:
    """Train (or continue) the autoencoder of `cfg.run_dir`; returns the final step, checkpoint and metrics.
    Under torchrun every process calls it; `cfg.batch` is per process (training.distributed).

    Raises TrainingError if a checkpoint exists and `resume` is False, NonFiniteLossError on NaN/inf (the last
    checkpoint untouched), TrainingInterrupted after SIGINT/SIGTERM (a checkpoint written first).
    """
    if cfg.level1_init not in ("", "pca"):
        raise TrainingError(f"--level1-init {cfg.level1_init!r}: unknown; the one choice is 'pca'")
    if cfg.level1_init and (cfg.init_from or cfg.steps_level1 == 0):
        raise TrainingError("--level1-init pca starts level 1 afresh: it needs level-1 steps (--steps-level1 > 0) "
                            "and no --init-from, which would start level 1 from that checkpoint instead")
    ckpt_path = cfg.stage_dir / CHECKPOINT_NAME
    stored = None
    if ckpt_path.exists():
        if not resume:
            raise TrainingError(f"{ckpt_path} exists: pass --resume to continue that run, or choose a new --run")
        stored = load_checkpoint(ckpt_path)
        cfg = resolve_resume(cfg, AeTrainConfig.from_plain(stored["config"]), RESUMABLE)
    set_threads(cfg.threads)
    info, device = D.setup(cfg.device)
    try:
        run = StageRun("ae", cfg.stage_dir, info, device, cfg.seed, guard=DivergenceGuard(WATCHED))
        trainer = _AeTrainer(cfg, run)
        if stored is not None:
            trainer.load(stored)
            run.resume(stored)
        else:
            if cfg.init_from:
                _init_from(trainer, cfg)
        crops = AudioCrops(cfg.dataset, "train", trainer.crop)
        if stored is None:
            if cfg.level1_init == "pca":
                _start_principal(trainer, crops, cfg)
            D.broadcast_modules(info, trainer.nets.values())
        batch = D.global_batch(info, cfg.batch)

        def step(n: int) -> dict[str, Tensor]:
            level = 1 if n < cfg.steps_level1 else 2
            trainer.set_level(level)
            if cfg.level1_init and level == 1:  # from the given start, Adam's first full-size steps would lose it
                for group in trainer.opts["level1"].param_groups:
                    group["lr"] = cfg.lr * min(1.0, (n + 1) / PCA_WARMUP)
            audio = torch.from_numpy(crops.sample(run.np_rng, batch, D.row_slice(info, batch))).to(device)
            return trainer.step_level1(audio, n >= cfg.adversarial_from) if level == 1 else trainer.step_level2(audio)

        plan = Schedule(cfg.total_steps, cfg.checkpoint_every, cfg.preview_every, cfg.log_every, cfg.tensorboard,
                        cfg.progress)
        final, metrics = run.run(plan, step, trainer.nets, trainer.state, on_step=on_step,
                                 preview=lambda at: trainer.preview(crops, at, 1 if at <= cfg.steps_level1 else 2))
    finally:
        D.cleanup(info)
    return AeResult(final, ckpt_path, metrics)


PCA_FRAMES = 40_000  # training frames the principal components are fitted on
PCA_WARMUP = 1000  # level-1 steps over which the learning rate rises from zero after a principal-component start


def _start_principal(trainer: _AeTrainer, crops: AudioCrops, cfg: AeTrainConfig) -> None:
    """Level 1 starts as the principal components of PCA_FRAMES training frames (training.pca_init)."""
    from training.pca_init import principal_frames, start_level1

    rng = np.random.default_rng(cfg.seed)
    m = cfg.model
    per_crop = m.autoencoder.dec1_window
    audio = torch.from_numpy(crops.sample(rng, max(1, PCA_FRAMES // per_crop)))
    frames = S.spectrogram(audio, m.audio).clamp(-1.0, 1.0).reshape(-1, m.audio.bins).numpy()
    try:
        pca = principal_frames(frames, m.autoencoder.frame_dim)
        start_level1(trainer.nets["encoder1"], trainer.nets["decoder1"], pca)
    except ValueError as exc:
        raise TrainingError(f"--level1-init pca: {exc}") from exc
    kept = float(np.sum(pca.spread**2) / np.sum(np.var(frames, axis=0)))
    logger.info("level 1 starts as %d principal components of %d training frames (%.1f %% of their variance)",
                pca.components.shape[0], frames.shape[0], 100 * kept)


LEVEL1_FIELDS = ("frame_dim", "enc1_widths", "dec1_widths", "dec1_window", "enc1_window", "level1_linear")


def _init_from(trainer: _AeTrainer, cfg: AeTrainConfig) -> None:
    """Start a new run from another autoencoder checkpoint's weights (its optimizers and step are not taken).

    The same configuration takes every network. A run that trains level 2 only (steps_level1 0) may change the
    level-2 shape (latent_dim, encoder2/decoder2 widths): then only level 1 and its critic come over."""
    try:
        other = load_checkpoint(cfg.init_from)
    except CheckpointError as exc:
        raise TrainingError(f"--init-from {cfg.init_from}: {exc}") from exc
    if other.get("kind") != "autoencoder":
        raise TrainingError(f"--init-from {cfg.init_from} is a {other.get('kind')!r} checkpoint, not an autoencoder")
    mine, theirs = cfg.model.to_dict(), other["model"]
    ours, their_ae = cfg.model.autoencoder, ModelConfig.from_dict(theirs).autoencoder
    same_level1 = theirs.get("audio") == mine["audio"] and all(
        getattr(their_ae, k) == getattr(ours, k) for k in LEVEL1_FIELDS)
    if their_ae == ours and same_level1:
        names = list(trainer.nets)
    elif same_level1 and cfg.steps_level1 == 0:
        names = ["encoder1", "decoder1", "critic"]
    else:
        raise TrainingError(
            f"--init-from {cfg.init_from} has other widths than this run (its --ae-scale or --latent-dim "
            f"differs): its autoencoder {theirs.get('autoencoder')}, this run's {mine['autoencoder']}. Start from a "
            "checkpoint of the same --ae-scale; only a level-2-only run (--steps-level1 0) may change level 2")
    for name in names:
        if name in other["networks"]:
            trainer.nets[name].load_state_dict(other["networks"][name])
    logger.info("initialised %s from %s (step %d)", ", ".join(names), cfg.init_from, int(other["step"]))


def mean_metric(rows: list[dict[str, float]], name: str, first: bool, n: int = 5) -> float:
    """Mean of `name` over the first or last `n` rows that have it (for tests and the model card)."""
    vals = [r[name] for r in rows if name in r]
    vals = vals[:n] if first else vals[-n:]
    return float(np.mean(vals)) if vals else math.nan
