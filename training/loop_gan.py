"""Conditional latent GAN training, the reference recipe (musika-architecture.md §3.5) plus conditioning.

Per step, from one batch of random windows of the latent cache (random crop, L/R swap with swap_prob):
the generator makes a window of two independent halves from training coordinates and the windows'
conditioning (tempo as a per-window scalar, density as a per-latent curve; each dropped to NaN = absent
with probability cond_dropout); the critic scores real and generated windows with the same conditioning.
Losses: hinge (gan/critic, gan/generator) plus R1 on reals (gan/r1) with the reference's adaptive weight
(switch in [-1, 0], weight = max (-switch)). Update: simultaneous (both gradients from the same forward
pass), Adam, and an EMA copy of the generator (what is exported).

Files: RUN/gan/checkpoint.pt, RUN/gan/metrics.jsonl, RUN/gan/previews/step_N.{wav,png} (needs the
autoencoder checkpoint), RUN/tensorboard/gan.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from generator.runtime.model_config import ModelConfig
from generator.runtime.preset import Condition
from training import distributed as D
from training import losses as L
from training.checkpoint import CHECKPOINT_NAME, load_checkpoint
from training.errors import TrainingError
from training.loop_utils import Schedule, StageRun, resolve_resume, set_threads, to_plain
from training.run_configs import GanTrainConfig

logger = logging.getLogger(__name__)

RESUMABLE = ("steps", "device", "checkpoint_every", "preview_every", "log_every", "tensorboard", "progress",
             "progress_total", "threads", "autoencoder")


@dataclass
class GanResult:
    step: int
    checkpoint: Path
    metrics: dict[str, float]
    model: ModelConfig
    conditioning: tuple[Condition, ...]


class _GanTrainer:
    """Generator, critic, EMA and their update. `run` supplies the process group and the finite checks; the
    noise is drawn for the global batch, of which this rank keeps its rows."""

    def __init__(self, cfg: GanTrainConfig, model: ModelConfig, conds: tuple[Condition, ...], run: StageRun):
        from training.models import Critic, Generator

        self.cfg, self.model, self.conds, self.run, self.info = cfg, model, conds, run, run.info
        self.device = device = run.device
        self.weights = L.check_weights(cfg.weights, "gan")
        self.gen = Generator(model).to(device).train()
        self.critic = Critic(model).to(device).train()
        self.ema = copy.deepcopy(self.gen).eval()
        for p in self.ema.parameters():
            p.requires_grad_(False)
        adam = dict(lr=cfg.lr, betas=cfg.betas, eps=1e-7)
        self.opt_g = torch.optim.Adam(self.gen.parameters(), **adam)
        self.opt_d = torch.optim.Adam(self.critic.parameters(), **adam)
        self.switch = -1.0
        self.beat_onsets = None
        if self.weights["gan/beat_onsets"] > 0:
            self.beat_onsets = _beat_onset_term(cfg, model, conds, device)

    def step(self, real_np: np.ndarray, scal_np: np.ndarray | None, curve_np: np.ndarray | None,
             coords_np: np.ndarray) -> dict[str, torch.Tensor]:
        """One simultaneous update from this rank's windows (B, W, 2 dim), conditions and coordinates."""
        dev, info = self.device, self.info
        real = torch.from_numpy(real_np).to(dev).requires_grad_(True)
        scal = torch.from_numpy(scal_np).to(dev) if scal_np is not None else None
        curve = torch.from_numpy(curve_np).to(dev) if curve_np is not None else None
        coords = torch.from_numpy(coords_np).to(dev)
        noise = D.randn_rows(info, coords.shape[0], 2 * self.gen.noise_len, coords)
        fake = self.gen.generate_window(coords, scal, curve, noise)
        d_real = self.critic(real, scal, curve)
        d_fake = self.critic(fake, scal, curve)
        terms = {"gan/critic": L.hinge_critic(d_real, d_fake), "gan/generator": L.hinge_generator(d_fake)}
        r1_weight = self.weights["gan/r1"] * (-self.switch)
        d_total = terms["gan/critic"]
        if self.weights["gan/r1"] > 0:
            terms["gan/r1"] = L.r1_penalty(d_real, real)
            d_total = d_total + r1_weight * terms["gan/r1"]
        g_total = self.weights["gan/generator"] * terms["gan/generator"]
        if self.beat_onsets is not None:
            beat = self.beat_onsets(fake, curve_np)
            if beat is not None:
                terms["gan/beat_onsets"] = beat
                g_total = g_total + self.weights["gan/beat_onsets"] * beat
        g_params, d_params = list(self.gen.parameters()), list(self.critic.parameters())
        g_grads = torch.autograd.grad(g_total, g_params, retain_graph=True, allow_unused=True)
        d_grads = torch.autograd.grad(d_total, d_params, allow_unused=True)
        for params, grads in ((g_params, g_grads), (d_params, d_grads)):
            for p, g in zip(params, grads, strict=True):
                p.grad = torch.zeros_like(p) if g is None else g
        D.average_gradients(info, [self.gen, self.critic])
        margin = D.average_scalar(info, (d_real.mean() - d_fake.mean()).detach())
        terms.update({"gan/r1_weight": torch.tensor(r1_weight), "gan/margin": margin,
                      "gan/grad_norm": L.grad_norm(g_params), "gan/critic_grad_norm": L.grad_norm(d_params)})
        self.run.check_finite(terms)
        self.opt_g.step()
        self.opt_d.step()
        with torch.no_grad():
            for pe, p in zip(self.ema.parameters(), self.gen.parameters(), strict=True):
                pe.lerp_(p, 1.0 - self.cfg.ema_decay)
        c = float(margin.clamp(0.0, 2.0)) / 2.0
        self.switch = min(0.0, max(-1.0, self.switch + (-self.cfg.switch_step if c > 0.9 else self.cfg.switch_step)))
        return terms

    def state(self, step: int, metrics: Mapping[str, float]) -> dict[str, Any]:
        return {"kind": "gan", "format": 1, "step": step, "config": to_plain(self.cfg), "model": self.model.to_dict(),
                "conditioning": [dataclasses.asdict(c) for c in self.conds],
                "networks": {"generator": self.gen.state_dict(), "critic": self.critic.state_dict(),
                             "generator_ema": self.ema.state_dict()},
                "optimizers": {"generator": self.opt_g.state_dict(), "critic": self.opt_d.state_dict()},
                "switch": self.switch, "metrics": dict(metrics)}

    def load(self, state: Mapping[str, Any]) -> None:
        self.gen.load_state_dict(state["networks"]["generator"])
        self.critic.load_state_dict(state["networks"]["critic"])
        self.ema.load_state_dict(state["networks"]["generator_ema"])
        self.opt_g.load_state_dict(state["optimizers"]["generator"])
        self.opt_d.load_state_dict(state["optimizers"]["critic"])
        self.switch = float(state["switch"])

    @torch.no_grad()
    def preview(self, step: int) -> None:
        from generator.offline.spectrogram_png import spectrogram_png
        from training.encode import default_phase, load_autoencoder
        from training.preview import write_wav

        if not self.cfg.autoencoder:
            return
        if not hasattr(self, "_decoders"):
            _, nets = load_autoencoder(self.cfg.autoencoder, self.device)
            self._decoders = (nets["decoder2"], nets["decoder1"])
        # as the exported preset will play it (on a shared autoencoder: the phase vocoder)
        audio = generate_audio(self.ema, *self._decoders, self.model, self.conds, seed=1, windows=2,
                               phase=default_phase(self.cfg.autoencoder))
        base = self.cfg.stage_dir / "previews" / f"step_{step:07d}"
        write_wav(base.with_suffix(".wav"), audio)
        label = ", ".join(f"{c.name} {c.default:g} {c.unit}" for c in self.conds) or "unconditioned"
        spectrogram_png(base.with_suffix(".png"), [(f"EMA generator, {label}", audio)], title=f"step {step}")


def _check_autoencoder_fits(path: str, model: ModelConfig, latents: str) -> None:
    """Refuse an --autoencoder whose configuration is not the one the latent cache was encoded with (both shown)."""
    ae = ModelConfig.from_dict(load_checkpoint(path)["model"]).autoencoder
    if ae != model.autoencoder:
        theirs, mine = dataclasses.asdict(ae), dataclasses.asdict(model.autoencoder)
        raise TrainingError(f"--autoencoder {path} does not match the latents in {latents}: the autoencoder is "
                            f"{theirs}; the latents were encoded with {mine}. Pass the autoencoder the cache was "
                            f"encoded with, or encode the data again with this one (musika train encode --autoencoder "
                            f"{path})")


def _beat_onset_term(cfg: GanTrainConfig, model: ModelConfig, conds: tuple[Condition, ...], device: torch.device):
    from training.beat_onsets import BeatOnsetTerm
    from training.encode import encoded_with, load_autoencoder

    if not cfg.autoencoder:
        raise TrainingError("gan/beat_onsets decodes the generated latents: pass --autoencoder CKPT (the "
                            "autoencoder the latent cache was encoded with, or its seam-tuned decoders)")
    ae_model, nets = load_autoencoder(cfg.autoencoder, device)
    same = ae_model.autoencoder == model.autoencoder and encoded_with(cfg.latents, nets)
    if same is False:
        raise TrainingError(f"gan/beat_onsets: the latent cache {cfg.latents} was not encoded with the encoders of "
                            f"--autoencoder {cfg.autoencoder}; pass the autoencoder the cache was encoded with (or "
                            "its seam-tuned copy, whose encoders are the same)")
    if same is None:
        logger.warning("gan/beat_onsets: cannot check that %s encoded %s (its dataset is gone); trusting it",
                       cfg.autoencoder, cfg.latents)
    return BeatOnsetTerm((nets["decoder2"], nets["decoder1"]), model, conds)


@torch.no_grad()
def generate_audio(gen, dec2, dec1, model: ModelConfig, conds, seed: int = 1, windows: int = 1,
                   values: Mapping[str, float] | None = None, phase: str = "decoder") -> np.ndarray:
    """Windows of the inference coordinate stream -> stereo audio (2, samples); conditions at `values` or
    their defaults; ``phase`` as decode_latents'. Private RNGs only (the training RNG is untouched)."""
    from generator.runtime.conditioning import model_inputs, stream_values
    from generator.runtime.coords import CoordinateStream
    from training.encode import decode_latents

    g = model.gan
    dev = next(gen.parameters()).device
    coords = torch.from_numpy(CoordinateStream(g, seed).halves(0, 2 * windows)).to(dev)
    n = coords.shape[0]
    feeds = model_inputs(conds, stream_values(conds, values, model, 0, n * g.half_len), n, g.half_len)
    s, k = (torch.from_numpy(feeds[key]).to(dev) if key in feeds else None for key in ("cond_scalar", "cond_curve"))
    noise = torch.randn(n, gen.noise_len, generator=torch.Generator().manual_seed(seed)).to(dev)
    was = gen.training
    gen.eval()
    lat = gen(coords, s, k, noise).reshape(-1, 2 * model.autoencoder.latent_dim)
    gen.train(was)
    return decode_latents(dec2, dec1, lat.cpu().numpy(), model, seed=seed, phase=phase)


def run_gan(cfg: GanTrainConfig, resume: bool = False,
            on_step: Callable[[int, Mapping[str, float]], None] | None = None) -> GanResult:
    """Train (or continue) the GAN of `cfg.run_dir`; see run_autoencoder for the error behaviour and torchrun."""
    from training.encode import LatentCache
    from training.latent_data import LatentCrops, resolve_conditions, sample_coords, select_entries

    ckpt_path = cfg.stage_dir / CHECKPOINT_NAME
    stored = None
    if ckpt_path.exists():
        if not resume:
            raise TrainingError(f"{ckpt_path} exists: pass --resume to continue that run, or choose a new --run")
        stored = load_checkpoint(ckpt_path)
        cfg = resolve_resume(cfg, GanTrainConfig.from_plain(stored["config"]), RESUMABLE)
    set_threads(cfg.threads)
    cache = LatentCache(cfg.latents)
    entries = cache.entries()
    if stored is not None:
        conds = tuple(Condition(**c) for c in stored["conditioning"])
    else:
        conds = resolve_conditions(entries, cfg.conditions)
    n_s = sum(c.kind == "scalar" for c in conds)
    n_k = sum(c.channels for c in conds if c.kind != "scalar")
    model = dataclasses.replace(cache.model, gan=cfg.gan).with_conditioning(n_s, n_k)
    if cfg.autoencoder:
        _check_autoencoder_fits(cfg.autoencoder, model, cfg.latents)
    # conditions (and their ranges) come from the whole cache, so a filtered run stays compatible with the rest
    crops = LatentCrops(select_entries(entries, cfg.min_labels), model.gan.window_len, conds, model,
                        balance=cfg.balance or None)
    info, device = D.setup(cfg.device)
    try:
        run = StageRun("gan", cfg.stage_dir, info, device, cfg.seed)
        tr = _GanTrainer(cfg, model, conds, run)
        if tr.beat_onsets is not None:
            tr.beat_onsets.measure_template(lambda rng, n: crops.sample(rng, n, 0.0, 0.0)[::2])
        if stored is not None:
            tr.load(stored)
            run.resume(stored)
        else:
            if cfg.init_from:
                from training.warm_start import warm_start

                warm_start(cfg.init_from, {"generator": tr.gen, "critic": tr.critic, "generator_ema": tr.ema}, conds,
                           model.to_dict())
            D.broadcast_modules(info, [tr.gen, tr.critic, tr.ema])
        batch = D.global_batch(info, cfg.batch)

        def step(_n: int) -> dict[str, torch.Tensor]:
            real, scal, curve = (None if a is None else D.my_rows(info, a)
                                 for a in crops.sample(run.np_rng, batch, cfg.swap_prob, cfg.cond_dropout))
            return tr.step(real, scal, curve, D.my_rows(info, sample_coords(run.np_rng, batch, model.gan)))

        plan = Schedule(cfg.steps, cfg.checkpoint_every, cfg.preview_every, cfg.log_every, cfg.tensorboard,
                        cfg.progress, cfg.progress_total)
        nets = {"generator": tr.gen, "critic": tr.critic, "generator_ema": tr.ema}
        final, metrics = run.run(plan, step, nets, tr.state, preview=tr.preview, on_step=on_step)
    finally:
        D.cleanup(info)
    return GanResult(final, ckpt_path, metrics, model, conds)
