"""An autoencoder checkpoint through level 1 alone or both levels on held-out clips, beside a linear baseline.

`python scripts/ae_level_eval.py CHECKPOINT --data runs/data/techno runs/data/piano ... [--level 2] [--pca]`

Per dataset, the clips `musika autoencoder eval` takes (up to 8 held-out clips of 12 s, spread over the split):
the multi-resolution log-spectral distance of the audio decoded with decoder1's own phase and with the phase
vocoder (generator.runtime.phase_vocoder, as the engine plays it), the frames' magnitude error (mean |dB|), the
onset F-measure and the 43 Hz frame comb over the original's (median; both with the vocoder), all with the
decoders' noise at zero; `--level 2` goes through encoder2 and decoder2 as well. `--pca` adds the same for a linear
projection of the frames onto the 64 leading principal components of 20,000 training frames of that dataset (phase
vocoder), and for the original magnitudes through the vocoder (what the phase alone costs). Prints one JSON line per
dataset.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from generator.runtime import spectral  # noqa: E402
from generator.runtime.phase_vocoder import VocoderPhase  # noqa: E402
from training import spectral_torch as S  # noqa: E402
from training.ae_eval import clip_figures  # noqa: E402
from training.data.dataset import Dataset, DatasetError  # noqa: E402
from training.encode import load_autoencoder  # noqa: E402
from training.errors import CheckpointError  # noqa: E402
from training.listening import frame_comb_ratio  # noqa: E402
from training.metrics import mr_log_spectral_distance  # noqa: E402
from training.pca_init import principal_frames  # noqa: E402

SR = 44100


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoint")
    p.add_argument("--data", nargs="+", required=True)
    p.add_argument("--clips", type=int, default=8)
    p.add_argument("--seconds", type=float, default=12.0)
    p.add_argument("--level", type=int, choices=(1, 2), default=1, help="1: level 1 alone; 2: both levels")
    p.add_argument("--pca", action="store_true", help="also a 64-component linear projection and the original")
    p.add_argument("--floor-db", type=float, default=-100.0, help="the distance's floor (dB; quieter bins read it)")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    try:
        cfg, nets = load_autoencoder(a.checkpoint)
    except CheckpointError as exc:
        print(f"ae_level_eval: {exc}", file=sys.stderr)
        return 2
    ac, win, lat_dim = cfg.audio, cfg.autoencoder.dec1_window, cfg.autoencoder.latent_dim

    def vocode(norm: np.ndarray) -> np.ndarray:
        phase = VocoderPhase(norm.shape[0], ac.bins, ac.n_fft, ac.hop, win)(norm.astype(np.float32))
        return np.clip(np.stack([spectral.istft(norm[c], phase[c], ac) for c in range(norm.shape[0])]), -1, 1)

    rng = np.random.default_rng(0)
    for root in a.data:
        try:
            ds = Dataset(root)
        except DatasetError as exc:
            print(f"ae_level_eval: {exc}", file=sys.stderr)
            return 2
        held = sorted(ds.split("heldout"), key=lambda c: c.id)
        pick = [held[int(i)] for i in np.linspace(0, len(held) - 1, min(a.clips, len(held)))]
        pca = None
        if a.pca:
            train = ds.split("train")
            rows = [S.spectrogram(torch.from_numpy(ds.audio(train[i])[:, : 8 * SR]), ac).clamp(-1, 1)
                    .reshape(-1, ac.bins).numpy()[::5] for i in rng.choice(len(train), min(40, len(train)), False)]
            pca = principal_frames(np.concatenate(rows)[:20_000], cfg.autoencoder.frame_dim)
        figs: dict[str, list[float]] = {}
        for chunk in pick:
            audio = ds.audio(chunk)[:, : int(a.seconds * SR)]
            spec = S.spectrogram(torch.from_numpy(np.ascontiguousarray(audio, np.float32)), ac)
            t = (spec.shape[1] // win) * win
            with torch.no_grad():
                z = nets["encoder1"](spec[:, :t]).reshape(-1, win, cfg.autoencoder.frame_dim)
                if a.level == 2:  # each window of level-1 vectors squeezed to latents and back
                    n = cfg.autoencoder.level2_frames
                    lat = nets["encoder2"](z.reshape(-1, n, cfg.autoencoder.frame_dim)).reshape(z.shape[0], -1,
                                                                                                  lat_dim)
                    z = nets["decoder2"](lat, torch.zeros(z.shape[0], nets["decoder2"].noise_len))
                mag, phs = nets["decoder1"](z, torch.zeros(z.shape[0], nets["decoder1"].noise_len))
            mag, phs = mag.reshape(2, t, -1), phs.reshape(2, t, -1)
            own = S.istft(mag, phs, ac).clamp(-1, 1).numpy()
            orig = spec[:, :t].clamp(-1, 1).numpy()
            voc = vocode(mag.numpy())
            out = {"lsd_db": mr_log_spectral_distance(audio, own, SR, floor_db=a.floor_db),
                   "lsd_vocoder_db": mr_log_spectral_distance(audio, voc, SR, floor_db=a.floor_db),
                   "onset_f_vocoder": clip_figures(audio, voc, SR)["onset_f"],
                   "comb_vocoder": frame_comb_ratio(voc) / frame_comb_ratio(audio),
                   "frame_error_db": float(np.mean(np.abs(mag.numpy() - orig)) * ac.db_sigma),
                   "onset_f": clip_figures(audio, own, SR)["onset_f"]}
            if pca is not None:
                lin = (orig - pca.mean) @ pca.components.T @ pca.components + pca.mean
                out["pca_lsd_vocoder_db"] = mr_log_spectral_distance(audio, vocode(np.clip(lin, -1, 1)), SR,
                                                                   floor_db=a.floor_db)
                out["pca_frame_error_db"] = float(np.mean(np.abs(lin - orig)) * ac.db_sigma)
                out["original_lsd_vocoder_db"] = mr_log_spectral_distance(audio, vocode(orig), SR,
                                                                          floor_db=a.floor_db)
            for k, v in out.items():
                figs.setdefault(k, []).append(float(v))
        summary = {k: float(np.nanmedian(v) if k.startswith("comb") else np.nanmean(v)) for k, v in figs.items()}
        print(json.dumps({"dataset": root, "level": a.level, **{k: round(v, 3) for k, v in summary.items()}}),
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
