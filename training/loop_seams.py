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

from training import spectral_torch as S
from training.checkpoint import load_checkpoint, save_checkpoint
from training.errors import TrainingError
from training.loop_utils import StopRequest, seed_everything, set_threads
from training.run_configs import SeamTrainConfig

logger = logging.getLogger(__name__)


def _weights(windows: int, win: int, edge: int, weight: float) -> torch.Tensor:
    w = torch.ones(windows * win)
    for j in range(1, windows):
        w[max(0, j * win - edge): j * win + edge] = weight
    return w / w.mean()


def run_seams(cfg: SeamTrainConfig) -> dict[str, float]:
    """Fine-tune decoder2 of ``run_dir/ae/checkpoint.pt`` for `cfg.steps` steps; returns the final losses."""
    from training.audio_crops import AudioCrops
    from training.encode import load_autoencoder

    if not (0 <= cfg.onset_weight < float("inf")):
        raise TrainingError(f"seams: --onset-weight must be a finite number >= 0, got {cfg.onset_weight}")
    if cfg.steps < 1 or cfg.windows < 2:
        raise TrainingError(f"seams: steps ({cfg.steps}) must be >= 1 and windows ({cfg.windows}) >= 2")
    set_threads(cfg.threads)
    rng = seed_everything(cfg.seed)
    path = Path(cfg.run_dir) / "ae" / "checkpoint.pt"
    state = load_checkpoint(path)
    model, nets = load_autoencoder(path)
    ae, audio_cfg = model.autoencoder, model.audio
    win, lat_win = ae.dec1_window, ae.dec2_window
    crops = AudioCrops(cfg.dataset, "train", (cfg.windows * win - 1) * audio_cfg.hop + audio_cfg.n_fft)
    from training import losses as L

    dec2, dec1 = nets["decoder2"].train(), nets["decoder1"].train()
    params = [*dec2.parameters(), *dec1.parameters()]
    opt = torch.optim.Adam(params, lr=cfg.lr, betas=(0.8, 0.99))
    trim = audio_cfg.n_fft - audio_cfg.hop
    weights = _weights(cfg.windows, win, cfg.edge_frames, cfg.edge_weight)[None, :, None]
    bands = L.mel_bands(audio_cfg.n_fft, audio_cfg.sample_rate) if cfg.onset_weight > 0 else None
    joins = torch.tensor([j * win for j in range(1, cfg.windows)])
    done = int(state.get("seams", {}).get("steps", 0))
    losses: dict[str, float] = {}
    with StopRequest() as stop:
        for step in range(1, cfg.steps + 1):
            audio = torch.from_numpy(crops.sample(rng, cfg.batch))
            with torch.no_grad():
                z1 = nets["encoder1"](S.spectrogram(audio, audio_cfg))  # (B, windows * win, frame_dim)
                lat = nets["encoder2"](z1)  # (B, windows * lat_win, latent_dim)
                spec = S.spectrogram(audio, audio_cfg).clamp(-1.0, 1.0)
            z1_hat = dec2(lat.reshape(-1, lat_win, lat.shape[-1])).reshape(z1.shape)
            recon = (weights * (z1_hat - z1).abs()).mean()
            jump = _jump(z1_hat, z1, joins)
            mag, phase = dec1(z1.reshape(-1, win, z1.shape[-1]))
            mag, phase = mag.reshape(spec.shape), phase.reshape(spec.shape)
            mag_recon = (weights * (mag - spec).abs()).mean()
            mag_jump = _jump(mag, spec, joins)
            wave = S.istft(mag.detach(), phase, audio_cfg)
            stft = L.multi_resolution_stft(wave[:, trim:-trim], audio[:, trim : wave.shape[1] - trim])
            loss = recon + jump + mag_recon + mag_jump + 0.1 * stft
            terms = {"ae2/seam_recon": recon, "ae2/seam_jump": jump, "ae1/seam_recon": mag_recon,
                     "ae1/seam_jump": mag_jump, "ae1/seam_stft": stft}
            if bands is not None:
                # decoder1 with its weights detached: this term trains decoder2 only, through what decoder1 makes
                frozen = {k: v.detach() for k, v in dec1.named_parameters()}
                heard, _ = torch.func.functional_call(dec1, frozen, (z1_hat.reshape(-1, win, z1.shape[-1]),))
                terms["ae2/seam_onsets"] = L.onset_loss(heard.reshape(spec.shape), spec, bands)
                loss = loss + cfg.onset_weight * terms["ae2/seam_onsets"]
            if not torch.isfinite(loss):
                raise TrainingError(f"seams: non-finite loss at step {step}; {path} was not changed")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, cfg.clip_grad)
            opt.step()
            losses = {k: float(v.detach()) for k, v in terms.items()}
            if step % 50 == 0:
                logger.info("seams step %d: %s", step, ", ".join(f"{k} {v:.4f}" for k, v in losses.items()))
            if step % cfg.checkpoint_every == 0 or step == cfg.steps or stop.requested:
                for name, net in (("decoder2", dec2), ("decoder1", dec1)):
                    state["networks"][name] = {k: v.detach().clone() for k, v in net.state_dict().items()}
                state["seams"] = {"steps": done + step, "windows": cfg.windows, **losses}
                state.setdefault("metrics", {}).update(losses)
                save_checkpoint(path, state)
            if stop.requested:
                logger.warning("seams: stopped by %s after %d steps (checkpoint written)", stop.requested, step)
                break
    return losses


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
