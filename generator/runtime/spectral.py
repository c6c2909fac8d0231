"""The one spectral representation (training imports it; training/spectral_torch.py is its torch twin).

Exactly the reference Musika 44.1 kHz release: STFT with a periodic Hann window of n_fft = 1024 samples, hop 256,
no centering or padding (frame t starts at sample 256 t), power in dB with amin 1e-10 and no top_db, normalised
as S = (dB - mu) / sigma with mu = -25, sigma = 75. The decoder predicts S and a phase P in [-1, 1] (angle / pi);
the inverse is magnitude = sqrt(10^((sigma S + mu) / 10) + 1e-7), complex = magnitude * exp(i pi P), inverse real
FFT, synthesis window Hann / 1.5 (75 % overlap), overlap-add. Output length (T - 1) hop + n_fft for T frames.

Arrays are float32, frames are time-major (frames, bins), audio is (samples,) per channel.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.fft

from generator.runtime.model_config import AudioConfig

DEFAULT = AudioConfig()
AMIN = 1e-10
MAG_EPS = 1e-7


def hann_periodic(n: int) -> np.ndarray:
    """Periodic Hann window (as tf.signal.hann_window), float32 (n,)."""
    k = np.arange(n, dtype=np.float64)
    return (0.5 - 0.5 * np.cos(2.0 * np.pi * k / n)).astype(np.float32)


def synthesis_window(cfg: AudioConfig = DEFAULT) -> np.ndarray:
    """Hann scaled so that the overlap-added squared windows sum to one (Hann / 1.5 at 75 % overlap)."""
    w = hann_periodic(cfg.n_fft).astype(np.float64)
    overlap = cfg.n_fft // cfg.hop
    denom = np.zeros(cfg.hop)
    for j in range(overlap):
        denom += w[j * cfg.hop : (j + 1) * cfg.hop] ** 2
    denom = np.tile(denom, overlap)
    return (w / denom).astype(np.float32)


def num_frames(samples: int, cfg: AudioConfig = DEFAULT) -> int:
    """STFT frames of a signal of `samples` samples (no padding): floor((N - n_fft) / hop) + 1, or 0."""
    return max(0, (samples - cfg.n_fft) // cfg.hop + 1)


def stft(audio: np.ndarray, cfg: AudioConfig = DEFAULT) -> np.ndarray:
    """Complex64 STFT, (frames, bins) for mono audio (samples,)."""
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1:
        raise ValueError(f"stft expects mono audio (samples,), got shape {audio.shape}")
    t = num_frames(audio.shape[0], cfg)
    if t == 0:
        return np.zeros((0, cfg.bins), dtype=np.complex64)
    frames = np.lib.stride_tricks.sliding_window_view(audio, cfg.n_fft)[:: cfg.hop][:t]
    return scipy.fft.rfft(frames * hann_periodic(cfg.n_fft), axis=-1).astype(np.complex64)


def db_norm(spec: np.ndarray, cfg: AudioConfig = DEFAULT) -> np.ndarray:
    """Complex STFT -> normalised dB magnitude S, float32."""
    power = np.maximum(AMIN, spec.real.astype(np.float32) ** 2 + spec.imag.astype(np.float32) ** 2)
    return ((10.0 * np.log10(power) - cfg.db_mu) / cfg.db_sigma).astype(np.float32)


def spectrogram(audio: np.ndarray, cfg: AudioConfig = DEFAULT) -> np.ndarray:
    """Mono audio (samples,) -> normalised dB magnitude (frames, bins), float32: what encoder1 reads."""
    return db_norm(stft(audio, cfg), cfg)


def magnitude(norm: np.ndarray, cfg: AudioConfig = DEFAULT) -> np.ndarray:
    """Normalised dB S -> linear magnitude sqrt(10^((sigma S + mu)/10) + 1e-7), float32."""
    s = np.asarray(norm, dtype=np.float32)
    scale = np.float32(np.log(10.0) * cfg.db_sigma / 10.0)
    offset = np.float32(np.log(10.0) * cfg.db_mu / 10.0)
    return np.sqrt(np.exp(s * scale + offset) + np.float32(MAG_EPS))


def _frames_time(norm: np.ndarray, phase: np.ndarray, cfg: AudioConfig) -> np.ndarray:
    """Windowed time-domain frames (T, n_fft) from magnitude/phase predictions."""
    mag = magnitude(norm, cfg)
    ang = np.asarray(phase, dtype=np.float32) * np.float32(np.pi)
    spec = np.empty(mag.shape, dtype=np.complex64)
    spec.real = mag * np.cos(ang)
    spec.imag = mag * np.sin(ang)
    return scipy.fft.irfft(spec, n=cfg.n_fft, axis=-1).astype(np.float32) * synthesis_window(cfg)


def _overlap_add(frames: np.ndarray, cfg: AudioConfig) -> np.ndarray:
    t = frames.shape[0]
    overlap = cfg.n_fft // cfg.hop
    parts = frames.reshape(t, overlap, cfg.hop)
    out = np.zeros((t + overlap - 1, cfg.hop), dtype=np.float32)
    for j in range(overlap):
        out[j : j + t] += parts[:, j]
    return out.reshape(-1)


def istft(norm: np.ndarray, phase: np.ndarray, cfg: AudioConfig = DEFAULT) -> np.ndarray:
    """Decoder output (frames, bins) x 2 -> mono audio ((frames - 1) hop + n_fft,), float32, not clipped."""
    if norm.shape != phase.shape or norm.ndim != 2 or norm.shape[1] != cfg.bins:
        raise ValueError(f"istft expects two (frames, {cfg.bins}) arrays, got {norm.shape} and {phase.shape}")
    if norm.shape[0] == 0:
        return np.zeros(0, dtype=np.float32)
    return _overlap_add(_frames_time(norm, phase, cfg), cfg)


@dataclass
class IstftState:
    """What carries over between streaming iSTFT chunks: the overlap-add tail, (channels, n_fft - hop)."""

    tail: np.ndarray
    samples_out: int = 0


BLOCK = 128  # frames per pass: every temporary of a block stays in the L2 cache


class _Scratch:
    """Reusable float32/complex64 buffers for one block of frames."""

    def __init__(self, block: int, bins: int):
        self.mag = np.empty((block, bins), np.float32)
        self.ang = np.empty((block, bins), np.float32)
        self.cos = np.empty((block, bins), np.float32)
        self.spec = np.empty((block, bins), np.complex64)


def _block_frames(norm: np.ndarray, phase: np.ndarray, cfg: AudioConfig, s: _Scratch, window: np.ndarray,
                  workers: int) -> np.ndarray:
    """(nb, bins) S and P -> windowed frames (nb, n_fft) float32, using the scratch buffers."""
    nb = norm.shape[0]
    mag, ang, cos, spec = s.mag[:nb], s.ang[:nb], s.cos[:nb], s.spec[:nb]
    np.multiply(norm, np.float32(np.log(10.0) * cfg.db_sigma / 10.0), out=mag)
    mag += np.float32(np.log(10.0) * cfg.db_mu / 10.0)
    np.exp(mag, out=mag)
    mag += np.float32(MAG_EPS)
    np.sqrt(mag, out=mag)
    np.multiply(phase, np.float32(np.pi), out=ang)
    np.cos(ang, out=cos)
    np.sin(ang, out=ang)
    planes = spec.view(np.float32).reshape(nb, -1, 2)
    np.multiply(mag, cos, out=planes[..., 0])
    np.multiply(mag, ang, out=planes[..., 1])
    frames = scipy.fft.irfft(spec, n=cfg.n_fft, axis=-1, workers=workers)
    frames *= window
    return frames


@dataclass
class StreamingIstft:
    """Chunked iSTFT that gives the samples of one :func:`istft` pass over all frames (to float32 rounding).

    Each :meth:`process` call with T frames returns T * hop finished samples per channel; :meth:`flush`
    returns the last n_fft - hop samples. Arrays are (channels, frames, bins) in, (channels, T * hop) out.
    Latency: the first sample of frame t is final once frame t + n_fft/hop - 1 has been processed.
    Frames are processed in blocks of BLOCK so every temporary stays in the CPU cache: the dB -> magnitude step
    and cos/sin run in place in reusable float32 buffers, the inverse real FFT runs in float32 (pocketfft,
    `workers` threads), then the window and a strided overlap-add.
    """

    channels: int = 2
    cfg: AudioConfig = DEFAULT
    workers: int = 1
    state: IstftState = field(init=False)

    def __post_init__(self) -> None:
        self._scratch = _Scratch(BLOCK, self.cfg.bins)
        self._window = synthesis_window(self.cfg)
        self.reset()

    def reset(self) -> None:
        self.state = IstftState(tail=np.zeros((self.channels, self.cfg.n_fft - self.cfg.hop), np.float32))

    def process(self, norm: np.ndarray, phase: np.ndarray) -> np.ndarray:
        """(channels, T, bins) x 2 -> (channels, T * hop) float32."""
        c, t = norm.shape[0], norm.shape[1]
        hop, n_fft = self.cfg.hop, self.cfg.n_fft
        if t == 0:
            return np.zeros((c, 0), np.float32)
        overlap = n_fft // hop
        norm = np.asarray(norm, dtype=np.float32)
        phase = np.asarray(phase, dtype=np.float32)
        out = np.zeros((c, t + overlap - 1, hop), dtype=np.float32)
        for ch in range(c):
            for t0 in range(0, t, BLOCK):
                nb = min(BLOCK, t - t0)
                fr = _block_frames(norm[ch, t0 : t0 + nb], phase[ch, t0 : t0 + nb], self.cfg, self._scratch,
                                   self._window, self.workers).reshape(nb, overlap, hop)
                for j in range(overlap):
                    out[ch, t0 + j : t0 + j + nb] += fr[:, j]
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
