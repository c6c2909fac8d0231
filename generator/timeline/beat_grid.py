"""The beat grid of generated audio (numpy only): an onset envelope, a grid estimate near a tempo prior, and the
offsets of onsets from expected beats.

The estimator works on an onset envelope: log-magnitude spectral flux below ~11 kHz, STFT 512 samples, hop 64
(1.45 ms), plus the energy rise below 150 Hz (kicks). The tempo comes from the autocorrelation of the envelope inside
a window around a prior (the tempo the model was conditioned on); the phase from a comb over the envelope; then each
beat's onset peak is refined (parabolic interpolation) and a least-squares line t = t0 + k * period is fitted through
them. For four-on-the-floor material this is a kick-onset grid. It is verified in tests against librosa
``beat_track(hop_length=64)`` plus the line fit of ``training.analysis.measure_tempo``.

Its first-peak refinement finds a kick's earliest rise, and the presets' decoders smear a kick's energy up to ~55 ms
ahead of it: on generated techno the grid reads 40-80 ms early, bar to bar +-40 ms. So the lock does not move a
phase-conditioned preset by it (generator.timeline.stretch.BarTracker, ``trust_beats``); :func:`onset_offsets` takes
the strongest onset near each beat instead. What is heard (:func:`heard_offsets`: the figure the daemon reports and
presets are calibrated by) is measured on :func:`heard_envelope`, librosa's onset strength in numpy, so it agrees
with an outside beat tracker: within 2 ms on generated techno, where the kick-weighted envelope reads 5-14 ms
earlier.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.fft

from generator.runtime.model_config import SAMPLE_RATE
from generator.runtime.spectral import hann_periodic

logger = logging.getLogger(__name__)

ONSET_HOP = 64
N_FFT = 512
MAX_FREQ_HZ = 11000.0
LOW_HZ = 150.0
LOW_WEIGHT = 2.0
# The tempo autocorrelation runs on the envelope smoothed over this long: the presets' decoders leave a faint flutter
# with the period of their 1024-sample STFT frame (absent from the training audio), which otherwise combs the
# autocorrelation every 23 ms so strongly that a lag between the beat and a decoder-window multiple can win.
AUTOCORR_SMOOTH_S = 1024 / SAMPLE_RATE
# An impulse at sample s peaks in the flux at frame centre ~ s + ONSET_LAG (measured on clicks; see tests).
ONSET_LAG = 0.0
# heard_envelope: librosa's onset_strength with n_fft N_FFT, hop ONSET_HOP, 40 mels; frame i's window is centred
# at sample i * ONSET_HOP + HEARD_CENTRE, so a kick's peak lands on its first sample (measured on synthetic kicks:
# the log-power rise is steepest while the kick enters the window's later half)
HEARD_MELS = 40
HEARD_CENTRE = -149
_MEL_LOG_STEP = math.log(6.4) / 27.0  # the Slaney mel scale: linear below 1 kHz, then 27 steps per factor 6.4
HEARD_REACH_BEATS = 0.2  # a beat's heard onset: the strongest within this much of it (a 16th is 0.25 beats off)
HEARD_PEAK = 0.8  # a heard beat: the first local peak reaching this much of the strongest near it (not pre-echo)
EDGE_FRAMES = N_FFT // 2 // ONSET_HOP + 1  # frames whose STFT window reaches before the audio's start


def _mono(audio: np.ndarray) -> np.ndarray:
    y = np.asarray(audio, dtype=np.float32)
    if y.ndim == 2:
        y = y.mean(axis=0)
    if y.ndim != 1:
        raise ValueError(f"audio must be (samples,) or (channels, samples), got shape {np.shape(audio)}")
    return y


def _rise(energy: np.ndarray) -> np.ndarray:
    """Half-wave rectified first difference of log energy per frame."""
    le = np.log(1e-3 + energy)  # energy normalised to max 1: a -30 dB floor ignores rises in the noise
    return np.concatenate([[0.0], np.maximum(np.diff(le), 0.0)])


@functools.lru_cache(maxsize=8)
def _lowpass_response(sr: int, taps: int = 2048) -> np.ndarray:
    """Impulse response of the 2nd-order Butterworth low-pass at LOW_HZ (bilinear transform, i.e. what
    ``scipy.signal.butter(2, LOW_HZ, fs=sr)`` designs), truncated where it has decayed below 1e-15.

    Computed here instead of importing scipy.signal, which alone costs ~0.7 s of the daemon's start-up."""
    k = math.tan(math.pi * LOW_HZ / sr)
    norm = 1.0 / (1.0 + math.sqrt(2.0) * k + k * k)
    b0 = k * k * norm
    b = (b0, 2.0 * b0, b0)
    a1, a2 = 2.0 * (k * k - 1.0) * norm, (1.0 - math.sqrt(2.0) * k + k * k) * norm
    h = np.zeros(taps)
    x1 = x2 = y1 = y2 = 0.0
    for n in range(taps):
        x0 = 1.0 if n == 0 else 0.0
        y0 = b[0] * x0 + b[1] * x1 + b[2] * x2 - a1 * y1 - a2 * y2
        h[n], x2, x1, y2, y1 = y0, x1, x0, y1, y0
    return h


def _lowpass(y: np.ndarray, sr: int) -> np.ndarray:
    """Causal Butterworth low-pass of (samples,) float64 by FFT convolution with its impulse response."""
    h = _lowpass_response(sr)
    n = y.size + h.size - 1
    size = scipy.fft.next_fast_len(n, real=True)
    return scipy.fft.irfft(scipy.fft.rfft(y, size) * scipy.fft.rfft(h, size), size)[: y.size]


def broadband_flux(y: np.ndarray, sr: int) -> np.ndarray:
    """Log-magnitude spectral flux below MAX_FREQ_HZ of mono (samples,) audio, frames (samples // ONSET_HOP,) centred
    on i * ONSET_HOP (STFT N_FFT, Hann)."""
    n_frames = y.size // ONSET_HOP
    if n_frames < 2:
        return np.zeros(max(n_frames, 0))
    pad = np.pad(y, (256, N_FFT - 256))
    frames = np.lib.stride_tricks.sliding_window_view(pad, N_FFT)[::ONSET_HOP][:n_frames]
    top = int(MAX_FREQ_HZ * N_FFT / sr) + 1
    mag = np.abs(np.fft.rfft(frames * np.hanning(N_FFT).astype(np.float32), axis=1)[:, :top])
    return np.concatenate([[0.0], np.maximum(np.diff(np.log1p(100.0 * mag), axis=0), 0.0).sum(axis=1)])


@functools.lru_cache(maxsize=4)
def _mel_filters(sr: int, n_fft: int = N_FFT, n_mels: int = HEARD_MELS) -> np.ndarray:
    """(n_mels, n_fft // 2 + 1) triangular mel filters on the Slaney scale, area-normalised (what
    ``librosa.filters.mel`` makes by default; computed here so the daemon does not load librosa)."""

    def to_mel(f: np.ndarray) -> np.ndarray:
        return np.where(f >= 1000.0, 15.0 + np.log(np.maximum(f, 1e-9) / 1000.0) / _MEL_LOG_STEP, f * 3.0 / 200.0)

    def to_hz(m: np.ndarray) -> np.ndarray:
        return np.where(m >= 15.0, 1000.0 * np.exp(_MEL_LOG_STEP * (m - 15.0)), m * 200.0 / 3.0)

    fft_hz = np.linspace(0.0, sr / 2.0, n_fft // 2 + 1)
    edges = to_hz(np.linspace(0.0, float(to_mel(np.asarray(sr / 2.0))), n_mels + 2))
    width = np.diff(edges)
    ramps = edges[:, None] - fft_hz[None, :]
    tri = np.maximum(0.0, np.minimum(-ramps[:-2] / width[:-1, None], ramps[2:] / width[1:, None]))
    return (tri * (2.0 / (edges[2:] - edges[:-2]))[:, None]).astype(np.float32)


def heard_envelope(audio: np.ndarray, sr: int) -> np.ndarray:
    """Onset strength as a listener's beat tracker hears it, (samples // ONSET_HOP,) float64: the mean over
    HEARD_MELS mel bands of the rise in log power (dB, the loudest 80 dB) into each frame, STFT N_FFT Hann centred
    on sample i * ONSET_HOP + HEARD_CENTRE (librosa's ``onset_strength`` with these settings, in numpy). Its peak
    marks a kick where librosa's does, so what the daemon reports is what an outside tracker measures."""
    y = _mono(audio)
    n_frames = y.size // ONSET_HOP
    if n_frames < 2:
        return np.zeros(max(n_frames, 0))
    pad = np.pad(y, (N_FFT // 2 - HEARD_CENTRE, N_FFT // 2 + HEARD_CENTRE))
    frames = np.lib.stride_tricks.sliding_window_view(pad, N_FFT)[::ONSET_HOP][:n_frames]
    power = np.abs(np.fft.rfft(frames * hann_periodic(N_FFT).astype(np.float32), axis=1)) ** 2
    db = 10.0 * np.log10(np.maximum(power @ _mel_filters(sr).T, 1e-10))
    db = np.maximum(db, db.max() - 80.0)
    return np.concatenate([[0.0], np.maximum(np.diff(db, axis=0), 0.0).mean(axis=1)])


def onset_envelope(audio: np.ndarray, sr: int) -> np.ndarray:
    """Onset strength (frames,) float64 of (samples,) or (channels, samples) audio; frame i is sample i * ONSET_HOP.

    Sum of two normalised parts: the energy rise below LOW_HZ (kick drums; time-domain, so its timing is sharp)
    and the broadband log-spectral flux (everything else), weighted LOW_WEIGHT : 1."""
    y = _mono(audio)
    n_frames = y.size // ONSET_HOP
    if n_frames < 4:
        return np.zeros(max(n_frames, 0))
    # low band: causal 2nd-order Butterworth (no pre-ringing before an onset), then frame energy
    low = _lowpass(y.astype(np.float64), sr)
    e_low = (low[: n_frames * ONSET_HOP] ** 2).reshape(n_frames, ONSET_HOP).mean(axis=1)
    env_low = _rise(e_low / (e_low.max() + 1e-12))
    env_full = broadband_flux(y, sr)

    def norm(x: np.ndarray) -> np.ndarray:
        scale = np.percentile(x, 99.5)
        return x / scale if scale > 0 else x

    return LOW_WEIGHT * norm(env_low) + norm(env_full)


@dataclass(frozen=True)
class BeatGrid:
    """A beat grid in seconds from the start of the analysed audio.

    period_s: seconds per beat. first_beat_s: phase, the first grid beat >= 0 in seconds. downbeat: index
    (0..beats_per_bar-1) of the grid beat after first_beat_s that starts a bar. confidence 0..1 (0: no pulse
    found, the grid is the prior). beats_used: onsets that fed the line fit.
    """

    period_s: float
    first_beat_s: float
    downbeat: int = 0
    confidence: float = 0.0
    beats_used: int = 0

    @property
    def bpm(self) -> float:
        return 60.0 / self.period_s

    def beat_time(self, k: float) -> float:
        """Time of grid beat k (k = 0 is first_beat_s), seconds."""
        return self.first_beat_s + k * self.period_s

    def downbeat_time(self, beats_per_bar: int) -> float:
        return self.beat_time(self.downbeat % beats_per_bar)


def _parabolic(env: np.ndarray, i: int) -> float:
    if 0 < i < env.size - 1:
        a, b, c = env[i - 1], env[i], env[i + 1]
        d = a - 2 * b + c
        if d < 0:
            return i + 0.5 * (a - c) / d
    return float(i)


def _first_peak(env: np.ndarray, a: int, b: int, frac: float = 0.5) -> int:
    """Index of the earliest local maximum in env[a:b] reaching `frac` of the window's maximum (an onset, not the
    later bumps of a decaying kick)."""
    w = env[a:b]
    thresh = frac * w.max()
    for j in range(w.size):
        if w[j] >= thresh and (j + 1 >= w.size or w[j] >= w[j + 1]):
            return a + j
    return a + int(np.argmax(w))


def _line_fit(k: np.ndarray, t: np.ndarray) -> tuple[float, float, np.ndarray]:
    design = np.stack([k, np.ones_like(k)], axis=1)
    (p, t0), *_ = np.linalg.lstsq(design, t, rcond=None)
    return float(p), float(t0), t - (t0 + p * k)


def estimate_grid(
    audio: np.ndarray,
    sr: int,
    bpm_prior: float,
    beats_per_bar: int = 4,
    search: float = 0.06,
    phase_prior_s: float | None = None,
    phase_window: float = 0.5,
) -> BeatGrid:
    """Beat grid of `audio` (samples,) or (channels, samples) near `bpm_prior` (within +-`search`, relative).

    With `phase_prior_s` the phase is searched only within +-`phase_window` beats of that prior (tracking).
    Returns the prior grid with confidence 0 when the audio has no clear pulse (noise, silence)."""
    if not (math.isfinite(bpm_prior) and bpm_prior > 0):
        raise ValueError(f"bpm_prior must be a positive tempo in BPM, got {bpm_prior}")
    prior_period = 60.0 / bpm_prior
    prior_phase = 0.0 if phase_prior_s is None else float(phase_prior_s) % prior_period
    fallback = BeatGrid(prior_period, prior_phase, 0, 0.0, 0)
    env = onset_envelope(audio, sr)
    fps = sr / ONSET_HOP
    if env.size < 2 or env.size / fps < 2.2 * prior_period or not np.any(env > 0):
        return fallback
    width = max(1, int(round(AUTOCORR_SMOOTH_S * fps)))
    e = np.convolve(env, np.full(width, 1.0 / width), mode="same")
    e -= e.mean()
    # tempo: autocorrelation at lags within the search window
    lo = int(math.floor(prior_period * (1 - search) * fps))
    hi = int(math.ceil(prior_period * (1 + search) * fps)) + 1
    if hi >= e.size:
        return fallback
    ac = np.array([np.dot(e[:-lag], e[lag:]) / (e.size - lag) for lag in range(lo - 1, hi + 2)])
    j = int(np.argmax(ac[1:-1])) + 1
    period_frames = (lo - 1) + _parabolic(ac, j)
    # phase: comb over the envelope at frame resolution
    n_beats = int((env.size - 1) / period_frames)
    if n_beats < 2:
        return fallback
    offsets = np.arange(int(math.ceil(period_frames)))
    if phase_prior_s is not None:
        pp = prior_phase * fps
        dist = np.abs(((offsets - pp + period_frames / 2) % period_frames) - period_frames / 2)
        offsets = offsets[dist <= phase_window * period_frames]
    idx = offsets[:, None] + np.round(np.arange(n_beats)[None, :] * period_frames).astype(int)
    idx = np.minimum(idx, env.size - 1)
    score = env[idx].sum(axis=1)
    phase0 = int(offsets[int(np.argmax(score))])
    # refine: the onset peak near each predicted beat, then a line fit
    half = max(1, int(0.12 * period_frames))
    ks, ts, hs = [], [], []
    for k in range(n_beats + 1):
        c = int(round(phase0 + k * period_frames))
        a, b = max(0, c - half), min(env.size, c + half + 1)
        if b - a < 3:
            continue
        i = _first_peak(env, a, b)
        ks.append(k)
        ts.append(_parabolic(env, i))
        hs.append(env[i])
    hs_arr = np.asarray(hs)
    if len(ks) < 3:
        return fallback
    strength = float(np.median(hs_arr) / (np.median(env) + 1e-9))
    good = hs_arr >= 0.5 * np.median(hs_arr)
    k_arr, t_arr = np.asarray(ks, float)[good], np.asarray(ts)[good]
    if k_arr.size < 3:
        return fallback
    p_fit, t0, resid = _line_fit(k_arr, t_arr)
    keep = np.abs(resid) <= max(3.0 * np.median(np.abs(resid)), 1.0)  # drop outliers (> 3 MAD, > 1 frame)
    if 3 <= keep.sum() < keep.size:
        k_arr, t_arr = k_arr[keep], t_arr[keep]
        p_fit, t0, resid = _line_fit(k_arr, t_arr)
    rms = float(np.sqrt(np.mean(resid**2)))
    if not (prior_period * (1 - 1.5 * search) * fps <= p_fit <= prior_period * (1 + 1.5 * search) * fps):
        return fallback
    # confidence: peaks well above the envelope's median and a tight line
    confidence = float(np.clip((strength - 2.0) / 6.0, 0.0, 1.0) * np.clip(1.0 - rms / (0.1 * p_fit), 0.0, 1.0))
    confidence *= min(1.0, k_arr.size / 6.0)
    period_s = p_fit / fps
    t0_s = (t0 + ONSET_LAG) / fps
    first = t0_s % period_s
    shift = int(round((first - t0_s) / period_s))  # grid index of `first` relative to fitted beat 0
    # downbeat: the beat-in-bar position with the strongest onsets
    accents = np.zeros(beats_per_bar)
    for k, h in zip(ks, hs, strict=True):
        accents[(k - shift) % beats_per_bar] += h
    downbeat = int(np.argmax(accents)) if np.ptp(accents) > 0.05 * accents.max() else 0
    return BeatGrid(period_s, first, downbeat, confidence, int(k_arr.size))


def onset_offsets(audio: np.ndarray, sr: int, beat_samples: np.ndarray, window_s: float = 0.06,
                  peak: float = HEARD_PEAK, envelope: Callable[[np.ndarray, int], np.ndarray] | None = None,
                  ) -> np.ndarray:
    """Signed offsets (seconds) of the strongest onset near each expected beat position (samples) in `audio`.

    Used to report the residual phase error of what is played: the first peak of the onset envelope within
    +-window_s of each beat that reaches HEARD_PEAK of the strongest there (where an external tracker such as
    librosa's onset strength peaks: not the decoders' pre-echo, nor a decaying kick's later bumps). The first
    EDGE_FRAMES are not searched (their flux is the audio's edge); NaN where there is no clear onset. `peak` = 1:
    the strongest onset in the window (a wide window's first peak reaching 80 % may be a 16th before the kick).
    `envelope`: the onset envelope searched (default :func:`onset_envelope`, which weights kicks above hats)."""
    return envelope_offsets((envelope or onset_envelope)(audio, sr), sr, beat_samples, window_s, peak)


def envelope_offsets(env: np.ndarray, sr: int, beat_samples: np.ndarray, window_s: float,
                     peak: float = HEARD_PEAK) -> np.ndarray:
    """:func:`onset_offsets` on an onset envelope already computed (frames at ONSET_HOP from the audio's start)."""
    fps = sr / ONSET_HOP
    out = np.full(len(beat_samples), np.nan)
    w = max(1, int(window_s * fps))
    floor = np.median(env) * 3 + 1e-9
    for n, s in enumerate(beat_samples):
        c = int(round(s / ONSET_HOP))
        a, b = max(c - w, EDGE_FRAMES), min(c + w + 1, env.size)  # the first frames' flux is the edge
        if b - a < 3 or c < EDGE_FRAMES:  # a beat at the very start: its onset is the edge, not measurable
            continue
        i = _first_peak(env, a, b, peak)
        if env[i] > floor:
            out[n] = (_parabolic(env, i) + ONSET_LAG) / fps - s / sr
    return out


def heard_offsets(audio: np.ndarray, sr: int, beat_samples: np.ndarray, samples_per_beat: float) -> np.ndarray:
    """Signed offsets (seconds, positive: late) of each beat's heard onset from its expected position (samples):
    the strongest onset within +-HEARD_REACH_BEATS, as an outside beat tracker measures a kick (the figure the
    daemon reports and presets are calibrated by); NaN where there is no clear onset."""
    return onset_offsets(audio, sr, beat_samples, window_s=HEARD_REACH_BEATS * samples_per_beat / sr, peak=1.0,
                         envelope=heard_envelope)


def heard_grid_offsets(audio: np.ndarray, sr: int, bpm: float) -> np.ndarray:
    """:func:`heard_offsets` (ms) of every whole beat of a clip that starts on a beat at `bpm`, the first and last
    beats left out (their onsets meet the clip's edges)."""
    spb = 60.0 / bpm * sr
    return heard_offsets(audio, sr, np.arange(1, int(np.shape(audio)[-1] / spb) - 1) * spb, spb) * 1000.0
