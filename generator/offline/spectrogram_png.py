"""The one spectrogram picture the project draws: previews during training, model cards, autoencoder cards and the
spectrograms beside rendered stems.

Each panel is the spectrogram of the channel mean in dB re a full-scale sine, on a log-frequency axis (30 Hz-16 kHz,
where kicks and hats both show) and one colour scale for every panel (-90..0 dB), so levels, attacks, noise and
harmonics compare across panels and pictures as they are heard. matplotlib's Agg canvas, no pyplot state.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from generator.atomic import replacing
from generator.runtime.model_config import SAMPLE_RATE

DB_RANGE = (-90.0, 0.0)  # dB re a full-scale sine
HZ_RANGE = (30.0, 16000.0)
N_FFT = 2048
MAX_COLUMNS = 1200  # a long render gets a coarser hop, not a wider picture


def dbfs_spectrogram(audio: np.ndarray, n_fft: int = N_FFT, hop: int = 256,
                     sample_rate: int = SAMPLE_RATE) -> tuple[np.ndarray, np.ndarray]:
    """(frames, bins) dB of the channel mean re a full-scale sine (Hann window), and the bins' frequencies."""
    a = np.asarray(audio, np.float64)
    mono = a.mean(axis=0) if a.ndim == 2 else a
    mono = np.pad(mono, (n_fft // 2, n_fft // 2))
    frames = np.lib.stride_tricks.sliding_window_view(mono, n_fft)[::hop]
    window = np.hanning(n_fft)
    mag = np.abs(np.fft.rfft(frames * window, axis=1)) / (window.sum() / 2)
    return 20 * np.log10(np.maximum(mag, 1e-9)), np.fft.rfftfreq(n_fft, 1 / sample_rate)


def spectrogram_png(path: str | Path, panels: Sequence[tuple[str, np.ndarray]], title: str = "",
                    columns: bool = False, bar_s: Sequence[float] = (), sample_rate: int = SAMPLE_RATE) -> Path:
    """One panel per (label, audio (channels, samples) or (samples,) at `sample_rate`): stacked, or side by side with
    `columns`; `bar_s` draws bar lines (seconds) on every panel. Written atomically."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    n = len(panels)
    size = (4.6 * n, 3.4) if columns else (9.0, 2.4 * n + 0.4)
    fig = Figure(figsize=size, dpi=80)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1 if columns else n, n if columns else 1, squeeze=False, sharey=True).ravel()
    mesh = None
    for ax, (label, audio) in zip(axes, panels, strict=True):
        samples = np.asarray(audio).shape[-1]
        hop = max(256, int(np.ceil(samples / MAX_COLUMNS / 256)) * 256)
        db, freqs = dbfs_spectrogram(audio, hop=hop, sample_rate=sample_rate)
        keep = (freqs >= HZ_RANGE[0]) & (freqs <= HZ_RANGE[1])
        times = np.arange(db.shape[0]) * hop / sample_rate
        mesh = ax.pcolormesh(times, freqs[keep], db[:, keep].T, shading="auto", cmap="magma",
                             vmin=DB_RANGE[0], vmax=DB_RANGE[1], rasterized=True)
        for s in bar_s:
            ax.axvline(s, color="white", alpha=0.25, linewidth=0.6)
        ax.set_yscale("log")
        ax.set_ylim(*HZ_RANGE)
        ax.set_title(label, fontsize=9)
    for ax in axes if columns else axes[-1:]:
        ax.set_xlabel("seconds" + ("; lines: bars" if len(bar_s) else ""))
    for ax in axes[:1] if columns else axes:
        ax.set_ylabel("Hz")
    if mesh is not None:
        fig.colorbar(mesh, ax=list(axes), label="dB re full scale", pad=0.01)
    if title:
        fig.suptitle(title, fontsize=10)
    with replacing(path) as tmp:
        fig.savefig(tmp, bbox_inches="tight")
    return Path(path)
