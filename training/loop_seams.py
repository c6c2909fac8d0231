"""Decoder-window seams: fine-tune both decoders on spans of several decoder windows, encoders frozen.

decoder2 turns each window of ``dec2_window`` latents into ``dec1_window`` level-1 vectors, and decoder1 each
window of level-1 vectors into magnitude and phase, independently; the autoencoder stages of
:mod:`training.loop_ae` train them one window at a time, so nothing teaches them that one window must flow
into the next. Short runs leave a click at every join (16384 samples = 0.37 s, which a beat tracker reads as
161.5 BPM and an onset detector as notes). This stage decodes ``windows`` adjacent windows of a crop
separately, joins them, and penalises (decoder2) the level-1 error with extra weight near the joins plus the
error of the frame-to-frame change across each join, and (decoder1, fed the true level-1 vectors) the same for
the magnitude plus a multi-resolution STFT loss on the joined waveform. The encoders stay frozen, so latents
already encoded (and a GAN trained on them) remain valid; the new decoders go back into the autoencoder
checkpoint, written atomically.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from training import distributed as D
from training import spectral_torch as S
from training.checkpoint import CHECKPOINT_NAME, load_checkpoint, save_checkpoint
from training.errors import TrainingError
from training.loop_utils import Schedule, StageRun, resolve_resume, set_threads, to_plain
from training.run_configs import SeamTrainConfig

logger = logging.getLogger(__name__)

RESUMABLE = ("steps", "device", "checkpoint_every", "log_every", "progress", "threads", "lr")


def _weights(windows: int, win: int, edge: int, weight: float) -> torch.Tensor:
    w = torch.ones(windows * win)
    for j in range(1, windows):
        w[max(0, j * win - edge): j * win + edge] = weight
    return w / w.mean()


def run_seams(cfg: SeamTrainConfig, resume: bool = False) -> dict[str, float]:
    """Fine-tune both decoders of ``run_dir/ae/checkpoint.pt`` for `cfg.steps` steps; returns the final losses.

    The stage runs in ``run_dir/seams`` on the shared stage runner (training.loop_utils.StageRun: checkpoints with
    the optimizer and random state, a stop request writes one, ``resume`` continues it exactly) and writes the
    decoders back into the autoencoder checkpoint when it finishes. Running it again after it finished fine-tunes
    further from the decoders it left (``seams.steps`` in the autoencoder checkpoint counts them all)."""
    from training.audio_crops import AudioCrops
    from training.encode import load_autoencoder

    if not (0 <= cfg.onset_weight < float("inf")):
        raise TrainingError(f"seams: --onset-weight must be a finite number >= 0, got {cfg.onset_weight}")
    if cfg.steps < 1 or cfg.windows < 2:
        raise TrainingError(f"seams: steps ({cfg.steps}) must be >= 1 and windows ({cfg.windows}) >= 2")
    ae_path = Path(cfg.run_dir) / "ae" / CHECKPOINT_NAME
    ae_state = load_checkpoint(ae_path)
    stage_ckpt = cfg.stage_dir / CHECKPOINT_NAME
    stored = load_checkpoint(stage_ckpt) if stage_ckpt.exists() else None
    if stored is not None and int(stored["step"]) >= int(stored["config"]["steps"]) and not resume:
        stored = None  # that stage finished and is in the autoencoder checkpoint: a new one starts from there
        stage_ckpt.unlink()
    elif stored is not None and not resume:
        raise TrainingError(f"{stage_ckpt} holds an unfinished seam stage (step {stored['step']} of "
                            f"{stored['config']['steps']}): pass --resume to continue it")
    if stored is not None:
        cfg = resolve_resume(cfg, SeamTrainConfig.from_plain(stored["config"]), RESUMABLE)
    set_threads(cfg.threads)
    info, device = D.setup(cfg.device)
    try:
        run = StageRun("seams", cfg.stage_dir, info, device, cfg.seed)
        model, nets = load_autoencoder(ae_path)
        for net in nets.values():
            net.to(device)
        # the seam steps already in the autoencoder checkpoint from earlier stages (kept across a resume)
        prior = int(stored["prior_steps"]) if stored is not None else int(ae_state.get("seams", {}).get("steps", 0))
        trainer = _SeamTrainer(cfg, model, nets, run, prior)
        if stored is not None:
            trainer.load(stored)
            run.resume(stored)
        crops = AudioCrops(cfg.dataset, "train", trainer.crop)
        plan = Schedule(cfg.steps, cfg.checkpoint_every, 0, cfg.log_every, False, cfg.progress)

        def step(n: int) -> dict[str, torch.Tensor]:
            audio = torch.from_numpy(crops.sample(run.np_rng, cfg.batch)).to(device)
            return trainer.step(audio)

        _, metrics = run.run(plan, step, trainer.decoders, trainer.state)
    finally:
        D.cleanup(info)
    if info.is_main:
        for name, net in trainer.decoders.items():
            ae_state["networks"][name] = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
        losses = {k: v for k, v in metrics.items() if "seam" in k}
        ae_state["seams"] = {"steps": prior + cfg.steps, "windows": cfg.windows, **losses}
        ae_state.setdefault("metrics", {}).update(losses)
        save_checkpoint(ae_path, ae_state)
    return {k: v for k, v in metrics.items() if "seam" in k}


class _SeamTrainer:
    """Both decoders, their optimizer and one seam step (encoders frozen)."""

    def __init__(self, cfg: SeamTrainConfig, model, nets: dict, run: StageRun, prior_steps: int):
        from training import losses as L

        self.cfg, self.model, self.nets, self.run, self.prior_steps = cfg, model, nets, run, prior_steps
        ae, audio_cfg = model.autoencoder, model.audio
        self.win, self.lat_win = ae.dec1_window, ae.dec2_window
        self.crop = (cfg.windows * self.win - 1) * audio_cfg.hop + audio_cfg.n_fft
        self.decoders = {"decoder2": nets["decoder2"].train(), "decoder1": nets["decoder1"].train()}
        self.params = [*self.decoders["decoder2"].parameters(), *self.decoders["decoder1"].parameters()]
        self.opt = torch.optim.Adam(self.params, lr=cfg.lr, betas=(0.8, 0.99))
        self.trim = audio_cfg.n_fft - audio_cfg.hop
        self.weights = _weights(cfg.windows, self.win, cfg.edge_frames, cfg.edge_weight)[None, :, None].to(run.device)
        self.bands = L.mel_bands(audio_cfg.n_fft, audio_cfg.sample_rate) if cfg.onset_weight > 0 else None
        self.joins = torch.tensor([j * self.win for j in range(1, cfg.windows)])

    def load(self, stored: dict) -> None:
        for name, net in self.decoders.items():
            net.load_state_dict(stored["networks"][name])
        self.opt.load_state_dict(stored["optimizers"]["seams"])

    def state(self, at: int, metrics: dict[str, float]) -> dict:
        return {"networks": {k: v.state_dict() for k, v in self.decoders.items()},
                "optimizers": {"seams": self.opt.state_dict()}, "config": to_plain(self.cfg), "step": at,
                "metrics": dict(metrics), "prior_steps": self.prior_steps}

    def step(self, audio: torch.Tensor) -> dict[str, torch.Tensor]:
        from training import losses as L

        cfg, nets, audio_cfg, win, lat_win = self.cfg, self.nets, self.model.audio, self.win, self.lat_win
        dec2, dec1 = self.decoders["decoder2"], self.decoders["decoder1"]
        with torch.no_grad():
            z1 = nets["encoder1"](S.spectrogram(audio, audio_cfg))  # (B, windows * win, frame_dim)
            lat = nets["encoder2"](z1)  # (B, windows * lat_win, latent_dim)
            spec = S.spectrogram(audio, audio_cfg).clamp(-1.0, 1.0)
        z1_hat = dec2(lat.reshape(-1, lat_win, lat.shape[-1])).reshape(z1.shape)
        recon = (self.weights * (z1_hat - z1).abs()).mean()
        jump = _jump(z1_hat, z1, self.joins)
        mag, phase = dec1(z1.reshape(-1, win, z1.shape[-1]))
        mag, phase = mag.reshape(spec.shape), phase.reshape(spec.shape)
        mag_recon = (self.weights * (mag - spec).abs()).mean()
        mag_jump = _jump(mag, spec, self.joins)
        wave = S.istft(mag.detach(), phase, audio_cfg)
        trim = self.trim
        stft = L.multi_resolution_stft(wave[:, trim:-trim], audio[:, trim : wave.shape[1] - trim])
        loss = recon + jump + mag_recon + mag_jump + 0.1 * stft
        terms = {"ae2/seam_recon": recon, "ae2/seam_jump": jump, "ae1/seam_recon": mag_recon,
                 "ae1/seam_jump": mag_jump, "ae1/seam_stft": stft}
        if self.bands is not None:
            # decoder1 with its weights detached: this term trains decoder2 only, through what decoder1 makes
            frozen = {k: v.detach() for k, v in dec1.named_parameters()}
            heard, _ = torch.func.functional_call(dec1, frozen, (z1_hat.reshape(-1, win, z1.shape[-1]),))
            terms["ae2/seam_onsets"] = L.onset_loss(heard.reshape(spec.shape), spec, self.bands)
            loss = loss + cfg.onset_weight * terms["ae2/seam_onsets"]
        self.run.check_finite({**terms, "loss": loss})
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, cfg.clip_grad)
        self.opt.step()
        return {k: v.detach() for k, v in terms.items()}


def _jump(pred: torch.Tensor, target: torch.Tensor, joins: torch.Tensor) -> torch.Tensor:
    """Error of the frame-to-frame change across each join."""
    return ((pred[:, joins] - pred[:, joins - 1]) - (target[:, joins] - target[:, joins - 1])).abs().mean()


def seam_jump_ratio(nets: dict, model, audio: np.ndarray) -> float:
    """Mean level-1 change across decoder-window joins over the mean change elsewhere (1 = joins invisible)."""
    with torch.no_grad():
        a = torch.from_numpy(np.asarray(audio, np.float32))[None]
        z1 = nets["encoder1"](S.spectrogram(a, model.audio))
        n = (z1.shape[1] // model.autoencoder.dec1_window) * model.autoencoder.dec1_window
        z1 = z1[:, :n]
        lat = nets["encoder2"](z1)
        z1_hat = nets["decoder2"](lat.reshape(-1, model.autoencoder.dec2_window, lat.shape[-1])).reshape(z1.shape)
    d = (z1_hat[0, 1:] - z1_hat[0, :-1]).abs().mean(-1).numpy()
    at_join = np.zeros(d.shape[0], bool)
    at_join[model.autoencoder.dec1_window - 1 :: model.autoencoder.dec1_window] = True
    return float(d[at_join].mean() / d[~at_join].mean())
