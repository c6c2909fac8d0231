"""Preview files written during training: a WAV and a spectrogram PNG (atomic writes, rank 0 only).

Audio is float32 (channels, samples) or (samples,) at 44.1 kHz in [-1, 1].
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import soundfile as sf

from generator.atomic import replacing
from generator.runtime import spectral

SAMPLE_RATE = 44100


def write_wav(path: str | Path, audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> Path:
    """PCM-16 WAV, written to a temporary name and renamed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    a = np.asarray(audio, np.float32)
    data = a if a.ndim == 1 else a.T
    with replacing(path) as tmp:
        sf.write(tmp, np.clip(data, -1.0, 1.0), sample_rate, subtype="PCM_16", format="WAV")
    return path


def spectrogram_png(path: str | Path, panels: Sequence[tuple[str, np.ndarray]], title: str = "") -> Path:
    """One row per (label, audio) panel: the normalised dB spectrogram of the channel mean, 0..11 kHz."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(len(panels), 1, figsize=(8, 2.2 * len(panels)), squeeze=False)
    for ax, (label, audio) in zip(axes[:, 0], panels, strict=True):
        a = np.asarray(audio, np.float32)
        mono = a.mean(axis=0) if a.ndim == 2 else a
        spec = spectral.spectrogram(mono)
        bins = spec.shape[1] // 2 if spec.size else 0
        seconds = mono.shape[0] / SAMPLE_RATE
        ax.imshow(spec[:, :bins].T, origin="lower", aspect="auto", vmin=-1, vmax=1, cmap="magma",
                  extent=(0, seconds, 0, SAMPLE_RATE / 4000))
        ax.set_ylabel("kHz")
        ax.set_title(label, fontsize=9)
    axes[-1, 0].set_xlabel("seconds")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    with replacing(path) as tmp:
        fig.savefig(tmp, dpi=80)
    plt.close(fig)
    return path


COMPARISON_DB = (-90.0, 0.0)  # one colour scale for every panel of a comparison: dB re a full-scale sine
COMPARISON_HZ = (30.0, 16000.0)


def dbfs_spectrogram(audio: np.ndarray, n_fft: int = 2048, hop: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """(frames, bins) dB of the channel mean re a full-scale sine (Hann window), and the bins' frequencies."""
    a = np.asarray(audio, np.float64)
    mono = a.mean(axis=0) if a.ndim == 2 else a
    mono = np.pad(mono, (n_fft // 2, n_fft // 2))
    frames = np.lib.stride_tricks.sliding_window_view(mono, n_fft)[::hop]
    window = np.hanning(n_fft)
    mag = np.abs(np.fft.rfft(frames * window, axis=1)) / (window.sum() / 2)
    return 20 * np.log10(np.maximum(mag, 1e-9)), np.fft.rfftfreq(n_fft, 1 / SAMPLE_RATE)


def comparison_png(path: str | Path, panels: Sequence[tuple[str, np.ndarray]], title: str = "") -> Path:
    """Panels side by side, each the spectrogram of the channel mean in dB re full scale on a log-frequency axis
    (30 Hz-16 kHz, where kicks and hats both show) with one colour scale for all: levels, attacks, noise and
    harmonics compare as they are heard (unlike `spectrogram_png`, which normalises each panel)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 3.4), squeeze=False, sharey=True)
    mesh = None
    for ax, (label, audio) in zip(axes[0], panels, strict=True):
        db, freqs = dbfs_spectrogram(audio)
        keep = (freqs >= COMPARISON_HZ[0]) & (freqs <= COMPARISON_HZ[1])
        times = np.arange(db.shape[0]) * 256 / SAMPLE_RATE
        mesh = ax.pcolormesh(times, freqs[keep], db[:, keep].T, shading="auto", cmap="magma",
                             vmin=COMPARISON_DB[0], vmax=COMPARISON_DB[1])
        ax.set_yscale("log")
        ax.set_ylim(*COMPARISON_HZ)
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("seconds")
    axes[0, 0].set_ylabel("Hz")
    if mesh is not None:
        fig.colorbar(mesh, ax=axes[0].tolist(), label="dB re full scale", pad=0.01)
    if title:
        fig.suptitle(title, fontsize=10)
    with replacing(path) as tmp:
        fig.savefig(tmp, dpi=80, bbox_inches="tight")
    plt.close(fig)
    return path
