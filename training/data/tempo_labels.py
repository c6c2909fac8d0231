"""Tempo labels for whole tracks: one tempo per section, metrical level chosen over the track, calibrated confidence.

Pure functions on arrays; nothing here reads files. The steps, for one track:

1. :func:`onset_envelope`: multi-band spectral flux (log-compressed band magnitudes, rectified frame difference,
   each band scaled to equal weight) at ``ENV_HOP`` samples per frame. Level-independent, so a master above
   0 dBFS or a quiet recording reads the same.
2. :func:`periodicity`: per chunk, the salience of every tempo on a log grid: the envelope's autocorrelation at
   the beat period times its Fourier magnitude at the beat frequency. The autocorrelation also peaks at slower
   multiples (half, third tempo), the spectrum at faster ones (double, triple); only a tempo both support stays
   strong, which separates 160 from 80 or 320, and from the 107 a dotted rhythm suggests.
3. :func:`tempo_path`: the chunks' saliences (square-rooted, so the tempo prior can weigh in), times a prior that
   is flat on ``PREFERRED_BPM`` and falls off outside it (a preference, not a clamp), are joined by a Viterbi
   path: staying on a tempo is free, drifting by 1 % is cheap, a jump to an unrelated tempo costs
   ``SWITCH_COST`` and a jump by 2:1, 3:2 or 4:3 costs ``METRICAL_SWITCH_COST``. So a track keeps one metrical
   level, and only a sustained shift (chunks that together prefer an unrelated tempo) starts a new section.
4. :func:`refine_beat_grid`: per chunk, the exact period and phase of the beat grid near the path's tempo
   (envelope folded at candidate periods, then a weighted line through the beat peaks).
5. :func:`chunk_evidence`: the confidence (0..1) is the weakest of four pieces of evidence, each mapped to 0..1:
   ``support`` (the chunk on its own prefers its section's tempo), ``metrical`` (its periodicity beats the 3:2
   and 4:3 readings, where beat trackers fall), ``grid`` (a second estimator agrees: a beat grid laid over the
   onsets, :func:`grid_fit`, explains them better at the tempo than at those readings) and ``pulse`` (the
   contrast of the folded envelope). A chunk below ``CONFIDENT`` gets no tempo label.

The thresholds were set on real recordings against two independent trackers (docs/BENCHMARKS.md,
``scripts/label_check.py``): confident chunks agree with them where they agree with each other.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from training.analysis import to_mono

logger = logging.getLogger(__name__)

ENV_HOP = 256  # samples per envelope frame (5.8 ms at 44.1 kHz)
ENV_FFT = 1024
ONSET_LEAD_S = 0.004  # the log flux of a centred 1024-sample window peaks this much before a drum hit's attack
GRID_STEP = 0.002  # natural-log step of the tempo grid (0.2 %)
PREFERRED_BPM = (80.0, 180.0)  # tempo prior: flat inside, falling off by PRIOR_FALLOFF octaves (sd) outside
PRIOR_FALLOFF = 0.1
SWITCH_COST = 2.0  # nats for a jump to an unrelated tempo on the path
METRICAL_SWITCH_COST = 10.0  # nats for a jump by 2:1, 3:2 or 4:3 (a change of metrical level, not of tempo)
DRIFT = 0.01  # a tempo may drift this much per chunk at DRIFT_COST
DRIFT_COST = 0.1
CONFIDENT = 0.5  # confidence from which a chunk gets a tempo label
METRICAL_RELATIVES = (2 / 3, 3 / 2, 3 / 4, 4 / 3)
EVIDENCE = ("support", "metrical", "grid", "pulse")
SALIENCE_POWER = 0.5  # salience ** power before the prior: flattens it so the prior decides close octaves
METRICAL_TOLERANCE = 0.04  # a jump within 4 % of a metrical ratio counts as a change of level
MAX_VOTE = 3.0  # nats: the most one chunk can count against a tempo, less than two jumps (one odd chunk follows)
N_BANDS = 24


@dataclass(frozen=True)
class OnsetEnvelope:
    """Onset strength (frames,) float32; frame i is centred at ``i * hop`` samples, ``fps`` frames per second."""

    values: np.ndarray
    fps: float
    hop: int = ENV_HOP


@dataclass(frozen=True)
class ChunkTempo:
    """Tempo label of one chunk.

    bpm: tempo of the chunk's section, refined on the chunk (NaN when the chunk has no pulse at all).
    confidence: 0..1; a chunk is labelled when it is at least ``CONFIDENT``. first_beat_s: phase of the beat grid
    in [0, 60/bpm) from the chunk start. section: index of the tempo section within the track (0, 1, ...).
    evidence: the pieces of evidence behind ``confidence`` (``EVIDENCE``: support, metrical, grid, pulse), 0..1.
    """

    bpm: float
    confidence: float
    first_beat_s: float
    section: int
    evidence: dict[str, float]

    @property
    def confident(self) -> bool:
        return self.confidence >= CONFIDENT

    def reason(self) -> str:
        """The weakest evidence in words (why a chunk is unconfident)."""
        if not math.isfinite(self.bpm):
            return "no pulse (silent, or too short for two beats)"
        words = {
            "support": "on its own the chunk prefers another tempo than the rest of its track",
            "metrical": "no clear beat: a 3:2 or 4:3 reading is about as strong",
            "grid": "no clear beat: a beat grid at 3:2 or 4:3 fits about as well",
            "pulse": "weak or no pulse",
        }
        return words[min(self.evidence, key=lambda k: self.evidence[k])]


def _band_edges(sr: int) -> np.ndarray:
    """FFT bin edges of ``N_BANDS`` log-spaced bands from 40 Hz to 16 kHz (or Nyquist); every band >= 1 bin."""
    hz = np.geomspace(40.0, min(16000.0, sr / 2), N_BANDS + 1)
    return np.unique(np.clip(np.round(hz * ENV_FFT / sr).astype(int), 1, ENV_FFT // 2))


def onset_envelope(audio: np.ndarray, sr: int, block: int = 4096) -> OnsetEnvelope:
    """Multi-band spectral flux of ``audio`` (samples,) or (channels, samples), computed in blocks of frames.

    Band magnitudes are scaled by the recording's 99.5th percentile and log-compressed (``log1p(100 x)``), so the
    envelope does not change with level. Each band's rectified flux is divided by its mean over the recording
    (floored at a tenth of the median band), so a loud bass line does not drown the hi-hats and an empty band
    (a recording band-limited at 11 kHz) adds no noise.
    """
    y = to_mono(audio)
    y = np.pad(y, (ENV_FFT // 2, ENV_FFT // 2))
    n = max(0, 1 + (y.size - ENV_FFT) // ENV_HOP)
    edges = _band_edges(sr)
    win = np.hanning(ENV_FFT).astype(np.float32)
    bands = np.zeros((n, edges.size - 1), np.float32)
    for s in range(0, n, block):
        m = min(block, n - s)
        idx = np.arange(ENV_FFT)[None, :] + ENV_HOP * (s + np.arange(m))[:, None]
        mag = np.abs(np.fft.rfft(y[idx] * win, axis=1))
        csum = np.concatenate([np.zeros((m, 1)), np.cumsum(mag, axis=1)], axis=1)
        bands[s : s + m] = (csum[:, edges[1:]] - csum[:, edges[:-1]]) / np.diff(edges)
    fps = sr / ENV_HOP
    if n < 2 or not np.any(bands):
        return OnsetEnvelope(np.zeros(n, np.float32), fps)
    ref = float(np.percentile(bands, 99.5)) + 1e-12
    logmag = np.log1p(100.0 * bands / ref)
    flux = np.maximum(0.0, np.diff(logmag, axis=0, prepend=logmag[:1]))
    mean = flux.mean(axis=0)
    flux /= np.maximum(mean, 0.1 * float(np.median(mean)) + 1e-9)
    return OnsetEnvelope(flux.mean(axis=1).astype(np.float32), fps)


def tempo_grid(bpm_range: tuple[float, float]) -> np.ndarray:
    """Log-spaced tempi (BPM) covering ``bpm_range``, ``GRID_STEP`` apart."""
    lo, hi = bpm_range
    return np.exp(np.arange(math.log(lo), math.log(hi) + GRID_STEP / 2, GRID_STEP))


def preferred_band(bpm_range: tuple[float, float]) -> tuple[float, float]:
    """``PREFERRED_BPM`` within ``bpm_range``, widened to an octave where the range allows (so every tempo has a
    preferred octave: a user's range of 40-100 BPM prefers 50-100)."""
    lo, hi = max(bpm_range[0], PREFERRED_BPM[0]), min(bpm_range[1], PREFERRED_BPM[1])
    if hi < 2 * lo:
        lo = max(bpm_range[0], min(lo, hi / 2))
        hi = min(bpm_range[1], max(hi, 2 * lo))
    return lo, hi


def band_prior(bpms: np.ndarray, band: tuple[float, float] = PREFERRED_BPM) -> np.ndarray:
    """1 inside ``band``, a Gaussian in octaves (sd ``PRIOR_FALLOFF``) outside it."""
    lo, hi = band
    octaves = np.maximum(np.log2(lo / bpms), 0.0) + np.maximum(np.log2(bpms / hi), 0.0)
    return np.exp(-0.5 * (octaves / PRIOR_FALLOFF) ** 2)


def periodicity(env: np.ndarray, fps: float, bpms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(autocorrelation, Fourier magnitude) of an envelope excerpt at each tempo in ``bpms``, each (len(bpms),).

    The autocorrelation is normalised (1 at lag 0) and taken at the beat period; the Fourier magnitude is that
    of the Hann-windowed, mean-removed envelope at the beat frequency, divided by the envelope's standard
    deviation (so both are level-free). Zeros when the excerpt is shorter than two beats or constant.
    """
    e = np.asarray(env, dtype=np.float64)
    e = e - e.mean() if e.size else e
    n = e.size
    zeros = np.zeros(bpms.size)
    if n < 4 or not np.any(e) or n < 2 * 60.0 * fps / bpms.min():
        return zeros, zeros.copy()
    spec = np.fft.rfft(e, 2 * n)
    ac = np.fft.irfft(np.abs(spec) ** 2)[:n]
    ac /= ac[0]
    acf = np.interp(60.0 * fps / bpms, np.arange(n), ac)
    w = np.hanning(n)
    mag = np.abs(np.fft.rfft(e * w, 8 * n))
    freqs = np.fft.rfftfreq(8 * n, 1.0 / fps) * 60.0
    dft = np.interp(bpms, freqs, mag) / (w.sum() * e.std())
    return acf, dft


def transition_costs(bpms: np.ndarray) -> np.ndarray:
    """(bins, bins) cost in nats of moving from tempo ``bpms[i]`` to ``bpms[j]`` between neighbouring chunks.

    0 to stay, ``DRIFT_COST`` within ``DRIFT``, ``METRICAL_SWITCH_COST`` to an octave or 3:2/4:3 relative (a track
    keeps its metrical level) and ``SWITCH_COST`` for any other jump (a real change of tempo).
    """
    ratio = np.abs(np.log(bpms[None, :] / bpms[:, None]))
    cost = np.full(ratio.shape, SWITCH_COST)
    for r in (2.0, *METRICAL_RELATIVES[1::2]):
        cost[np.abs(ratio - math.log(r)) <= METRICAL_TOLERANCE] = METRICAL_SWITCH_COST
    cost[ratio <= DRIFT] = DRIFT_COST
    cost[ratio == 0] = 0.0
    return cost


def tempo_path(log_score: np.ndarray, costs: np.ndarray) -> np.ndarray:
    """Best tempo-bin index per chunk (chunks,) for ``log_score`` (chunks, bins) and ``costs`` (bins, bins), by
    Viterbi: the path maximising the summed scores minus the summed transition costs."""
    n_chunks, n_bins = log_score.shape
    total = log_score[0].astype(np.float64)
    back = np.zeros((n_chunks, n_bins), np.int64)
    for c in range(1, n_chunks):
        options = total[:, None] - costs
        back[c] = np.argmax(options, axis=0)
        total = options[back[c], np.arange(n_bins)] + log_score[c]
    path = np.zeros(n_chunks, np.int64)
    path[-1] = int(np.argmax(total))
    for c in range(n_chunks - 1, 0, -1):
        path[c - 1] = back[c, path[c]]
    return path


def grid_fit(env: np.ndarray, fps: float, bpm: float, tolerance_s: float = 0.03) -> float:
    """How well a beat grid at ``bpm`` (best phase) explains an envelope excerpt, 0..1.

    The F-measure of two shares: of the onset energy (the envelope above its median, squared, so accents weigh
    more than ghost notes) within ``tolerance_s`` of a grid point (recall), and of the grid points that land on
    an onset of at least a fifth of the excerpt's strongest (precision). Too slow a grid leaves accents
    unexplained; too fast a grid, or one at 3:2 or 4:3, lands between them.
    """
    from scipy.ndimage import maximum_filter1d, uniform_filter1d

    e = np.maximum(np.asarray(env, dtype=np.float64) - float(np.median(env)), 0.0)
    total = float((e**2).sum())
    period = 60.0 * fps / bpm
    if total <= 0 or e.size < 2 * period:
        return 0.0
    width = 2 * max(1, int(round(tolerance_s * fps))) + 1
    mass = uniform_filter1d(e**2, width, mode="constant") * width
    peak = maximum_filter1d(e, width, mode="constant")
    bins = max(1, int(period))
    phase = np.floor((np.arange(e.size) % period) / period * bins).astype(np.int64)
    captured = np.bincount(phase, weights=mass, minlength=bins)  # one frame per grid point and bin
    best = int(np.argmax(captured))
    points = np.flatnonzero(phase == best)
    points = points[np.concatenate([[True], np.diff(points) > 1])]  # one frame per grid point
    recall = min(1.0, float(captured[best]) / total)
    precision = float(np.mean(peak[points] >= 0.2 * float(np.percentile(e, 99.5))))
    return 2 * recall * precision / (recall + precision) if recall + precision > 0 else 0.0


def _phase_profile(e: np.ndarray, period: float) -> np.ndarray:
    """Mean envelope per phase bin (about one frame wide) when folded at ``period`` frames, lightly smoothed."""
    bins = max(8, int(period))
    phase = np.floor((np.arange(e.size) % period) / period * bins).astype(np.int64)
    prof = np.bincount(phase, weights=e, minlength=bins) / np.maximum(np.bincount(phase, minlength=bins), 1)
    return (prof + np.roll(prof, 1) + np.roll(prof, -1)) / 3.0


def refine_beat_grid(env: np.ndarray, fps: float, bpm: float, span: float = 0.02) -> tuple[float, float, float]:
    """(bpm, first_beat_s, contrast) of the beat grid within ``span`` (relative) of ``bpm`` on an envelope excerpt.

    The envelope is folded at 401 candidate periods; the one whose phase profile has the highest peak wins.
    Then the strongest envelope frame within an eighth of a beat of each grid point is taken as that beat and
    a line weighted by beat strength is fitted through them. contrast: the winning profile's peak over its mean,
    minus 1 (0 = no pulse at this tempo).
    """
    e = np.asarray(env, dtype=np.float64)
    n = e.size
    best = (-1.0, 60.0 * fps / bpm, 0.0, 0.0)
    for period in 60.0 * fps / (bpm * np.linspace(1 - span, 1 + span, 401)):
        prof = _phase_profile(e, period)
        peak = int(np.argmax(prof))
        if prof[peak] > best[0]:
            best = (float(prof[peak]), float(period), (peak + 0.5) / prof.size * period, float(prof.mean()))
    height, period, phi, mean = best
    contrast = height / mean - 1.0 if mean > 0 else 0.0
    k = np.arange(math.ceil(-phi / period), math.floor((n - 1 - phi) / period) + 1)
    half = max(1, int(period / 8))
    centres = np.round(phi + k * period).astype(np.int64)
    keep = (centres - half >= 0) & (centres + half < n)
    if keep.sum() >= 4:
        k, centres = k[keep], centres[keep]
        win = centres[:, None] + np.arange(-half, half + 1)[None, :]
        peaks = win[np.arange(len(k)), np.argmax(e[win], axis=1)]
        w = np.sqrt(e[peaks] + 1e-9)
        design = np.stack([k, np.ones_like(k)], axis=1).astype(np.float64) * w[:, None]
        (p_fit, phi_fit), *_ = np.linalg.lstsq(design, peaks * w, rcond=None)
        if abs(p_fit / period - 1) < span:
            period, phi = float(p_fit), float(phi_fit)
    bpm_out = 60.0 * fps / period
    return bpm_out, float((phi / fps + ONSET_LEAD_S) % (60.0 / bpm_out)), float(contrast)


def _ramp(x: float, lo: float, hi: float) -> float:
    return float(np.clip((x - lo) / (hi - lo), 0.0, 1.0))


def _near(curve: np.ndarray, bpms: np.ndarray, bpm: float) -> float:
    """Highest value of ``curve`` within 1 % of ``bpm`` (0 outside the grid)."""
    sel = np.abs(np.log(bpms / bpm)) <= 0.01
    return float(curve[sel].max()) if sel.any() else 0.0


def chunk_evidence(
    env: np.ndarray, fps: float, salience: np.ndarray, bpms: np.ndarray, bpm: float, contrast: float, support: float
) -> dict[str, float]:
    """The four pieces of evidence (0..1 each, see ``EVIDENCE``) that a chunk's tempo is ``bpm``.

    salience: the chunk's periodicity salience on the grid ``bpms`` (wide enough for the 3:2 and 4:3 relatives);
    contrast: the beat-grid contrast at ``bpm`` (:func:`refine_beat_grid`); support: the chunk's own prior-weighted
    salience at the section tempo over its best (1 = the chunk prefers its section's tempo).
    """
    here = max(_near(salience, bpms, bpm), 1e-12)
    relative = max(_near(salience, bpms, bpm * r) for r in METRICAL_RELATIVES)
    fit = max(grid_fit(env, fps, bpm), 1e-9)
    grid_relative = max(grid_fit(env, fps, bpm * r) for r in METRICAL_RELATIVES) / fit
    return {
        "support": _ramp(support, 0.5, 0.9),
        "metrical": _ramp(1.0 - relative / here, 0.0, 0.4),
        "grid": _ramp(1.0 - grid_relative, 0.0, 0.2),
        "pulse": _ramp(contrast, 0.3, 1.0),
    }


def label_track(
    env: OnsetEnvelope, bounds: Sequence[tuple[int, int]], bpm_range: tuple[float, float] = (60.0, 200.0)
) -> list[ChunkTempo]:
    """Tempo labels for the chunks of one track; ``bounds`` are their (start, stop) in samples.

    A chunk without any periodicity (silence, or shorter than two beats at the slowest tempo) gets NaN and
    confidence 0.
    """
    lo, hi = bpm_range
    if not 0 < lo < hi:
        raise ValueError(f"bpm_range must be (low, high) with 0 < low < high, got {bpm_range}")
    if not bounds:
        return []
    wide = tempo_grid((lo * 2 / 3 * 0.98, hi * 3 / 2 * 1.02))  # room for the metrical relatives
    in_range = (wide >= lo) & (wide <= hi)
    bpms = wide[in_range]
    frames = [(a // env.hop, max(a // env.hop, b // env.hop)) for a, b in bounds]
    salience = []
    for a, b in frames:
        acf, dft = periodicity(env.values[a:b], env.fps, wide)
        salience.append(np.maximum(acf, 0.0) * dft)
    prior = band_prior(bpms, preferred_band(bpm_range))
    scored = np.array([s[in_range] ** SALIENCE_POWER for s in salience]) * prior
    top = scored.max(axis=1)
    log_score = np.log(np.maximum(scored / np.maximum(top, 1e-12)[:, None], math.exp(-MAX_VOTE)))
    path = tempo_path(log_score, transition_costs(bpms))
    section = np.concatenate([[0], np.cumsum(np.abs(np.diff(np.log(bpms[path]))) > 2 * DRIFT)])
    out = []
    for c, (a, b) in enumerate(frames):
        if top[c] <= 0:
            out.append(ChunkTempo(math.nan, 0.0, math.nan, int(section[c]), dict.fromkeys(EVIDENCE, 0.0)))
            continue
        piece = env.values[a:b]
        bpm, first, contrast = refine_beat_grid(piece, env.fps, float(bpms[path[c]]))
        support = float(scored[c, path[c]] / top[c])
        evidence = chunk_evidence(piece, env.fps, salience[c], wide, bpm, contrast, support)
        out.append(ChunkTempo(bpm, min(evidence.values()), first, int(section[c]), evidence))
    n_sections = int(section[-1]) + 1
    if n_sections > 1:
        logger.debug("tempo sections: %s", [round(float(bpms[i]), 1) for i in path])
    return out
