"""The latent codec on the training side: audio <-> latents with the torch autoencoder, and the latent cache.

* :func:`encode_audio`: (channels, samples) float32 at 44.1 kHz, any length, mono or stereo ->
  latents (steps, 2 latent_dim) float32; steps = ceil(samples / 4096) (at least 1), the audio zero-padded.
  A mono signal is encoded as two identical channels. Dims [0, latent_dim) are the left channel.
* :func:`reconstruct_level1`: audio -> encoder1 -> decoder1 -> audio (the level-1 round trip).
* :func:`decode_latents`: (steps, 2 latent_dim) -> (2, steps 4096 + n_fft - hop) float32 in [-1, 1].
* :func:`encode_dataset`: a prepared dataset -> a latent cache directory::

      DIR/encoding.json          fingerprint of the encoder weights and the dataset (written first)
      DIR/<chunk id>.npy         (steps, 2 latent_dim) float32
      DIR/<chunk id>.<curve>.npy (steps,) float32, the chunk's curve labels resampled to one value per latent
      DIR/latents.json           format, model config, and one entry per chunk (file, steps, labels, curves)

  Every file is written to a temporary name and renamed, so an interrupted run resumes where it stopped
  (chunks already on disk with the same fingerprint are skipped).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from generator.atomic import replacing, write_json
from generator.runtime.model_config import ModelConfig
from training import spectral_torch
from training.checkpoint import load_checkpoint
from training.errors import CheckpointError, TrainingError

logger = logging.getLogger(__name__)

CACHE_FORMAT = "musika-latents/1"
INDEX_FILE = "latents.json"
FINGERPRINT_FILE = "encoding.json"
AE_NETWORKS = ("encoder1", "decoder1", "encoder2", "decoder2")
_BLOCK_LATENTS = 256  # latents per encoder call (bounds memory on long files)


def load_autoencoder(path: str | Path, device: str | torch.device = "cpu") -> tuple[ModelConfig, dict[str, nn.Module]]:
    """The four autoencoder networks (eval mode) from an autoencoder training checkpoint."""
    from training.models import Decoder1, Decoder2, Encoder1, Encoder2

    state = load_checkpoint(path)
    if state.get("kind") != "autoencoder":
        raise CheckpointError(f"{path} is a {state.get('kind')!r} checkpoint, not an autoencoder one "
                              "(expected RUN/ae/checkpoint.pt from `musika train ae`)")
    cfg = ModelConfig.from_dict(state["model"])
    ae, audio = cfg.autoencoder, cfg.audio
    nets: dict[str, nn.Module] = {"encoder1": Encoder1(ae, audio), "decoder1": Decoder1(ae, audio),
                                  "encoder2": Encoder2(ae), "decoder2": Decoder2(ae)}
    for name, net in nets.items():
        net.load_state_dict(state["networks"][name])
        net.to(device).eval()
    return cfg, nets


def _channels(audio: np.ndarray) -> np.ndarray:
    a = np.asarray(audio, dtype=np.float32)
    if a.ndim == 1:
        a = a[None]
    if a.ndim != 2 or a.shape[0] not in (1, 2):
        raise TrainingError(f"audio must be (samples,), (1, samples) or (2, samples); got shape {a.shape}")
    return np.repeat(a, 2, axis=0) if a.shape[0] == 1 else a


@torch.no_grad()
def encode_audio(enc1: nn.Module, enc2: nn.Module, audio: np.ndarray, cfg: ModelConfig) -> np.ndarray:
    """Audio (2, samples) (or mono) -> latents (steps, 2 latent_dim); see the module docstring."""
    a = _channels(audio)
    spl = cfg.samples_per_latent
    steps = max(1, math.ceil(a.shape[1] / spl))
    total = steps * spl + cfg.audio.n_fft - cfg.audio.hop
    padded = np.zeros((2, total), np.float32)
    padded[:, : min(a.shape[1], total)] = a[:, :total]
    device = next(enc1.parameters()).device
    out = []
    for s0 in range(0, steps, _BLOCK_LATENTS):
        s1 = min(steps, s0 + _BLOCK_LATENTS)
        seg = padded[:, s0 * spl : s1 * spl + cfg.audio.n_fft - cfg.audio.hop]
        spec = spectral_torch.spectrogram(torch.from_numpy(seg).to(device), cfg.audio)  # (2, 16 (s1 - s0), bins)
        out.append(enc2(enc1(spec)))  # (2, s1 - s0, latent_dim)
    lat = torch.cat(out, dim=1).float().cpu().numpy()
    return np.concatenate([lat[0], lat[1]], axis=1)


def default_phase(autoencoder: str | Path | None) -> str:
    """The phase a preset on this autoencoder checkpoint plays unless asked otherwise: the phase vocoder on a shared
    autoencoder (its folder has autoencoder.json; `universal`'s decoder1 phase carries a 43 Hz comb, its card),
    decoder1's own on a preset's own autoencoder."""
    return "vocoder" if autoencoder and (Path(autoencoder).parent / "autoencoder.json").is_file() else "decoder"


@torch.no_grad()
def decode_latents(
    dec2: nn.Module, dec1: nn.Module, latents: np.ndarray, cfg: ModelConfig, seed: int = 0, phase: str = "decoder"
) -> np.ndarray:
    """Latents (steps, 2 latent_dim) -> audio (2, steps 4096 + n_fft - hop), clipped to [-1, 1].

    Noise comes from a private generator seeded with `seed` (the global torch RNG is not touched). phase "vocoder"
    makes the phase from the decoded magnitudes as the engine's phase vocoder plays them
    (generator.runtime.phase_vocoder), instead of decoder1's.
    """
    ae = cfg.autoencoder
    lat = np.asarray(latents, dtype=np.float32)
    steps = lat.shape[0]
    if lat.ndim != 2 or lat.shape[1] != 2 * ae.latent_dim:
        raise TrainingError(f"latents must be (steps, {2 * ae.latent_dim}), got {lat.shape}")
    windows = math.ceil(steps / ae.dec2_window)
    padded = np.zeros((windows * ae.dec2_window, lat.shape[1]), np.float32)
    padded[:steps] = lat
    device = next(dec1.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    t = windows * ae.dec1_window
    mags, phases = [], []
    for c in range(2):
        part = padded[:, c * ae.latent_dim : (c + 1) * ae.latent_dim]
        x = torch.from_numpy(part).reshape(windows, ae.dec2_window, -1)
        n2 = torch.randn(windows, dec2.noise_len, generator=gen)
        frames = dec2(x.to(device), n2.to(device))  # (windows, dec1_window, frame_dim)
        n1 = torch.randn(windows, dec1.noise_len, generator=gen)
        mag, phs = dec1(frames, n1.to(device))
        mags.append(mag.reshape(t, -1).cpu())
        phases.append(phs.reshape(t, -1).cpu())
    mag = torch.stack(mags)
    if phase == "vocoder":
        from generator.runtime.phase_vocoder import VocoderPhase

        a = cfg.audio
        made = VocoderPhase(2, a.bins, a.n_fft, a.hop, ae.dec1_window)(mag.numpy().astype(np.float32))
        phases = list(torch.from_numpy(np.asarray(made, np.float32)))
    audio = spectral_torch.istft(mag, torch.stack(phases), cfg.audio).clamp(-1.0, 1.0).numpy()
    return audio[:, : steps * cfg.samples_per_latent + cfg.audio.n_fft - cfg.audio.hop]


@torch.no_grad()
def reconstruct_level1(enc1: nn.Module, dec1: nn.Module, audio: np.ndarray, cfg: ModelConfig,
                       seed: int = 0) -> np.ndarray:
    """(2, samples) -> the level-1 round trip (2, samples'), whole decoder windows, fixed noise, clipped."""
    win = cfg.autoencoder.dec1_window
    device = next(dec1.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    spec = spectral_torch.spectrogram(torch.from_numpy(np.ascontiguousarray(audio, np.float32)).to(device),
                                      cfg.audio)  # (2, T, bins)
    t = (spec.shape[1] // win) * win
    frames = enc1(spec[:, :t]).reshape(-1, win, cfg.autoencoder.frame_dim)
    mag, phs = dec1(frames, torch.randn(frames.shape[0], dec1.noise_len, generator=gen).to(device))
    out = spectral_torch.istft(mag.reshape(2, t, -1), phs.reshape(2, t, -1), cfg.audio)
    return out.clamp(-1, 1).cpu().numpy()


def fit_curve(values: np.ndarray, steps: int) -> np.ndarray:
    """A per-latent curve cut or edge-padded to `steps` values (both are sampled at the latent rate)."""
    v = np.asarray(values, dtype=np.float32).reshape(-1)
    if v.size == 0:
        return np.full(steps, np.nan, np.float32)
    if v.size >= steps:
        return v[:steps].copy()
    return np.concatenate([v, np.full(steps - v.size, v[-1], np.float32)])


def _fingerprint(nets: Mapping[str, nn.Module], dataset_root: Path, split: str) -> str:
    h = hashlib.sha256()
    for name in ("encoder1", "encoder2"):
        for key, t in sorted(nets[name].state_dict().items()):
            h.update(key.encode())
            h.update(t.detach().cpu().contiguous().numpy().tobytes())
    h.update((dataset_root / "manifest.jsonl").read_bytes())
    h.update(split.encode())
    return h.hexdigest()


def encoded_with(cache_dir: str | Path, nets: Mapping[str, nn.Module]) -> bool | None:
    """Whether the latent cache in `cache_dir` was encoded by these encoder1/encoder2 weights (its fingerprint);
    None when its dataset's manifest is no longer where the cache says (nothing to compare with)."""
    index = json.loads((Path(cache_dir) / "latents.json").read_text())
    root = Path(index["dataset"])
    if not (root / "manifest.jsonl").is_file():
        return None
    return _fingerprint(nets, root, index["split"]) == index["fingerprint"]


def _atomic_json(path: Path, data: Any) -> None:
    write_json(path, data, indent=1)


def _atomic_npy(path: Path, array: np.ndarray) -> None:
    with replacing(path) as tmp:
        np.save(tmp, array)


def encode_dataset(
    dataset_root: str | Path,
    autoencoder: str | Path,
    out_dir: str | Path,
    split: str = "train",
    device: str = "cpu",
    progress: bool | None = None,
) -> LatentCache:
    """Encode every chunk of `split` into the cache `out_dir` (see the module docstring); returns the cache."""
    from tqdm import tqdm

    from training.data.dataset import Dataset

    ds = Dataset(dataset_root)
    chunks = ds.split(split)
    if not chunks:
        raise TrainingError(f"dataset {dataset_root} has no {split!r} chunks to encode")
    cfg, nets = load_autoencoder(autoencoder, device)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    fp = _fingerprint(nets, ds.root, split)
    fp_file = out / FINGERPRINT_FILE
    reuse = fp_file.is_file() and json.loads(fp_file.read_text()).get("fingerprint") == fp
    if not reuse:
        (out / INDEX_FILE).unlink(missing_ok=True)
        _atomic_json(fp_file, {"fingerprint": fp, "dataset": str(ds.root), "split": split})
    entries, skipped = [], 0
    for chunk in tqdm(chunks, desc="encode", unit="chunk", disable=None if progress is None else not progress):
        file = out / f"{chunk.id}.npy"
        if reuse and file.is_file():
            steps = int(np.load(file, mmap_mode="r").shape[0])
            skipped += 1
        else:
            lat = encode_audio(nets["encoder1"], nets["encoder2"], ds.audio(chunk), cfg)
            steps = lat.shape[0]
            _atomic_npy(file, lat)
        curves = {}
        for name in chunk.curves:
            cfile = out / f"{chunk.id}.{name}.npy"
            if not (reuse and cfile.is_file()):
                _atomic_npy(cfile, fit_curve(ds.curve(chunk, name), steps))
            curves[name] = cfile.name
        entries.append({"id": chunk.id, "file": file.name, "steps": steps, "labels": dict(chunk.labels),
                        "curves": curves, "source": chunk.source})
    index = {"format": CACHE_FORMAT, "fingerprint": fp, "dataset": str(ds.root), "split": split,
             "model": cfg.to_dict(), "latent_rate_hz": cfg.latent_rate_hz, "chunks": entries}
    _atomic_json(out / INDEX_FILE, index)
    logger.info("encoded %d chunks into %s (%d reused)", len(entries) - skipped, out, skipped)
    return LatentCache(out)


@dataclass
class CacheEntry:
    id: str
    latents: np.ndarray  # (steps, 2 latent_dim)
    labels: dict[str, float]
    curves: dict[str, np.ndarray]  # name -> (steps,)


class LatentCache:
    """Read access to a latent cache written by :func:`encode_dataset` (all arrays loaded into memory)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        index = self.root / INDEX_FILE
        if not index.is_file():
            raise TrainingError(f"{self.root} is not a latent cache (no {INDEX_FILE}); create it with "
                                "`musika train encode --data DATASET --run RUN`")
        self.index = json.loads(index.read_text())
        if self.index.get("format") != CACHE_FORMAT:
            raise TrainingError(f"{index}: format {self.index.get('format')!r} is not {CACHE_FORMAT!r}; re-encode")
        self.model = ModelConfig.from_dict(self.index["model"])

    def entries(self) -> list[CacheEntry]:
        out = []
        for e in self.index["chunks"]:
            curves = {k: np.load(self.root / v) for k, v in e["curves"].items()}
            out.append(CacheEntry(e["id"], np.load(self.root / e["file"]), dict(e["labels"]), curves))
        return out

    def __len__(self) -> int:
        return len(self.index["chunks"])
