"""A faster drop-in for :class:`generator.spectral.StreamingIstft` (same samples to float32 rounding).

The decoder output (normalised dB S, phase P in [-1, 1]) goes to audio in as few full-array passes as numpy
allows: the dB -> magnitude step writes straight into the real and imaginary planes of one complex64 buffer
(no temporaries for exp/sqrt/cos/sin results), the inverse real FFT runs in float32 (pocketfft through
scipy, with ``workers`` threads, overwriting its input), the synthesis window multiplies in place, and the
overlap-add is n_fft / hop strided adds. Arrays are (channels, frames, bins) in and (channels, frames * hop)
out, exactly like the reference class; both keep the same overlap tail, so they can be swapped mid-stream.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.fft

from generator import spectral
from generator.model_config import AudioConfig


def polar_spectrum(norm: np.ndarray, phase: np.ndarray, cfg: AudioConfig, out: np.ndarray | None = None) -> np.ndarray:
    """(..., bins) S and P -> complex64 magnitude(S) * exp(i pi P), computed in place in `out`."""
    if out is None:
        out = np.empty(norm.shape, dtype=np.complex64)
    planes = out.view(np.float32).reshape(*norm.shape, 2)
    re, im = planes[..., 0], planes[..., 1]
    scale = np.float32(np.log(10.0) * cfg.db_sigma / 10.0)
    offset = np.float32(np.log(10.0) * cfg.db_mu / 10.0)
    mag = np.multiply(norm, scale, out=re, dtype=np.float32)
    mag += offset
    np.exp(mag, out=mag)
    mag += np.float32(spectral.MAG_EPS)
    np.sqrt(mag, out=mag)  # re now holds the magnitude
    ang = np.multiply(phase, np.float32(np.pi), out=im, dtype=np.float32)
    np.sin(ang, out=ang)
    im *= re
    # cos(x) = sqrt(1 - sin^2) loses the sign; compute it directly from the phase instead
    cos = np.multiply(phase, np.float32(np.pi), dtype=np.float32)
    np.cos(cos, out=cos)
    re *= cos
    return out


def istft_frames(norm: np.ndarray, phase: np.ndarray, cfg: AudioConfig, workers: int = 1) -> np.ndarray:
    """Windowed time-domain frames (..., n_fft) float32 from (..., bins) decoder outputs."""
    spec = polar_spectrum(norm, phase, cfg)
    frames = scipy.fft.irfft(spec, n=cfg.n_fft, axis=-1, overwrite_x=True, workers=workers)
    frames *= spectral.synthesis_window(cfg)
    return frames


@dataclass
class FastStreamingIstft:
    """Chunked iSTFT with the interface and results of :class:`generator.spectral.StreamingIstft`."""

    channels: int = 2
    cfg: AudioConfig = spectral.DEFAULT
    workers: int = 1
    state: spectral.IstftState = field(init=False)

    def __post_init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.state = spectral.IstftState(tail=np.zeros((self.channels, self.cfg.n_fft - self.cfg.hop), np.float32))

    def process(self, norm: np.ndarray, phase: np.ndarray) -> np.ndarray:
        """(channels, T, bins) x 2 -> (channels, T * hop) float32."""
        c, t = norm.shape[0], norm.shape[1]
        hop, n_fft = self.cfg.hop, self.cfg.n_fft
        if t == 0:
            return np.zeros((c, 0), np.float32)
        overlap = n_fft // hop
        frames = istft_frames(norm, phase, self.cfg, self.workers).reshape(c, t, overlap, hop)
        out = np.zeros((c, t + overlap - 1, hop), dtype=np.float32)
        for j in range(overlap):
            out[:, j : j + t] += frames[:, :, j]
        out = out.reshape(c, -1)
        out[:, : self.state.tail.shape[1]] += self.state.tail
        self.state.tail = out[:, t * hop :].copy()
        self.state.samples_out += t * hop
        return out[:, : t * hop]

    def flush(self) -> np.ndarray:
        """The remaining overlap tail, (channels, n_fft - hop); the stream is reset afterwards."""
        tail = self.state.tail
        self.reset()
        return tail

    @property
    def latency_samples(self) -> int:
        return self.cfg.n_fft - self.cfg.hop
