"""Preview files written during training: a WAV and a spectrogram PNG (atomic writes, rank 0 only).

Audio is float32 (channels, samples) or (samples,) at 44.1 kHz in [-1, 1].
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import soundfile as sf

from generator import spectral

SAMPLE_RATE = 44100


def write_wav(path: str | Path, audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> Path:
    """PCM-16 WAV, written to a temporary name and renamed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    a = np.asarray(audio, np.float32)
    data = a if a.ndim == 1 else a.T
    tmp = path.with_name(f".{path.stem}.tmp.wav")
    sf.write(tmp, np.clip(data, -1.0, 1.0), sample_rate, subtype="PCM_16", format="WAV")
    os.replace(tmp, path)
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
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp, dpi=80)
    plt.close(fig)
    os.replace(tmp, path)
    return path
