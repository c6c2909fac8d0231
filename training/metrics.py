"""Pure evaluation metrics on numpy audio and numbers (no files, no models, no clocks).

Audio is float ``(samples,)`` or ``(channels, samples)`` at ``sr`` Hz; times are seconds; every function
returns plain floats or dicts of floats so results go straight into preset.json.

- :func:`tempo_summary`: requested vs measured BPM -> fraction within +-2 %, median error, median IBI CV.
- :func:`spearman`: rank correlation (scipy.stats.spearmanr), NaN when undefined.
- :func:`onset_f_measure`: mir_eval-style onset F-measure, one-to-one matching within a 50 ms window.
- :func:`mr_log_spectral_distance`: multi-resolution log-spectral distance in dB (0 for identical signals).
- :func:`segment_features` / :func:`frechet_distance` / :func:`realism_ratio`: a Frechet distance on
  weight-free features (log-mel, MFCC, chroma, onset-strength statistics), as a ratio to held-out vs held-out.
- :func:`spectral_flux` / :func:`seam_flux_ratio`: does the flux at window joins stand out from elsewhere?
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import numpy as np

from training.analysis import to_mono

TEMPO_TOLERANCE = 0.02  # +-2 % counts as "on tempo"
ONSET_WINDOW_S = 0.05
MR_FFT_SIZES = (512, 1024, 2048)
SEGMENT_S = 3.0  # realism features are computed per 3 s segment
N_MELS = 24
N_MFCC = 13


# -- tempo and density --------------------------------------------------------------------------------------
def tempo_errors(requested: Sequence[float], measured: Sequence[float]) -> np.ndarray:
    """Relative tempo error (measured / requested - 1) per clip, (clips,) float64; NaN where nothing was found."""
    req = np.asarray(requested, dtype=np.float64)
    mea = np.asarray(measured, dtype=np.float64)
    if req.shape != mea.shape:
        raise ValueError(f"requested {req.shape} and measured {mea.shape} tempi must have the same shape")
    return mea / req - 1.0


def tempo_summary(
    requested: Sequence[float], measured: Sequence[float], ibi_cv: Sequence[float], tolerance: float = TEMPO_TOLERANCE
) -> dict[str, float]:
    """Summary of a tempo sweep: one entry per generated clip.

    within_tolerance: fraction of clips whose tempo is within +-tolerance of the request (a clip where no tempo
    was found counts as a miss); median_abs_error_pct; median_ibi_cv (over clips with a value); spearman
    between requested and measured (clips with a tempo).
    """
    err = tempo_errors(requested, measured)
    cv = np.asarray(ibi_cv, dtype=np.float64)
    if err.size == 0:
        raise ValueError("tempo_summary needs at least one clip")
    found = np.isfinite(err)
    hit = found & (np.abs(np.where(found, err, 0.0)) <= tolerance)
    req = np.asarray(requested, dtype=np.float64)
    mea = np.asarray(measured, dtype=np.float64)
    return {
        "within_tolerance": float(hit.mean()),
        "tolerance": float(tolerance),
        "found_fraction": float(found.mean()),
        "median_abs_error_pct": float(np.median(np.abs(err[found])) * 100) if found.any() else math.nan,
        "median_ibi_cv": float(np.median(cv[np.isfinite(cv)])) if np.isfinite(cv).any() else math.nan,
        "spearman": spearman(req[found], mea[found]),
    }


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman rank correlation of paired values; NaN with fewer than 3 pairs or a constant side."""
    from scipy.stats import spearmanr

    a = np.asarray(x, dtype=np.float64)
    b = np.asarray(y, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"spearman needs paired values, got shapes {a.shape} and {b.shape}")
    ok = np.isfinite(a) & np.isfinite(b)
    a, b = a[ok], b[ok]
    if a.size < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return math.nan
    return float(spearmanr(a, b).statistic)


# -- onsets ---------------------------------------------------------------------------------------------------
def match_onsets(reference: np.ndarray, estimate: np.ndarray, window: float = ONSET_WINDOW_S) -> int:
    """Number of one-to-one matches |ref - est| <= window between two onset lists (seconds).

    Greedy over both sorted lists: the earliest unmatched pair within the window is matched, otherwise the
    earlier onset is dropped. On a line with a symmetric window this gives the maximum matching (as
    mir_eval's bipartite matching does).
    """
    ref = np.sort(np.asarray(reference, dtype=np.float64).ravel())
    est = np.sort(np.asarray(estimate, dtype=np.float64).ravel())
    i = j = hits = 0
    while i < ref.size and j < est.size:
        d = est[j] - ref[i]
        if abs(d) <= window:
            hits += 1
            i += 1
            j += 1
        elif d < 0:
            j += 1
        else:
            i += 1
    return hits


def onset_f_measure(
    reference: np.ndarray, estimate: np.ndarray, window: float = ONSET_WINDOW_S
) -> tuple[float, float, float]:
    """(F-measure, precision, recall) of estimated vs reference onset times in seconds.

    Both lists empty is perfect agreement (1, 1, 1); exactly one empty scores 0 (mir_eval gives 0 for both).
    """
    ref = np.asarray(reference, dtype=np.float64).ravel()
    est = np.asarray(estimate, dtype=np.float64).ravel()
    if ref.size == 0 and est.size == 0:
        return 1.0, 1.0, 1.0
    if ref.size == 0 or est.size == 0:
        return 0.0, 0.0, 0.0
    hits = match_onsets(ref, est, window)
    precision, recall = hits / est.size, hits / ref.size
    f = 0.0 if hits == 0 else 2 * precision * recall / (precision + recall)
    return float(f), float(precision), float(recall)


# -- spectra --------------------------------------------------------------------------------------------------
def _stft_mag(y: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """|STFT| (frames, bins) of mono y with a periodic Hann window, zero-padded to at least one frame."""
    if y.size < n_fft:
        y = np.pad(y, (0, n_fft - y.size))
    frames = np.lib.stride_tricks.sliding_window_view(y, n_fft)[::hop]
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
    return np.abs(np.fft.rfft(frames * window, axis=-1))


def _channels_pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both signals as (channels, samples) with the same channels (mono mix when they differ), cut to one length."""
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    for name, s in (("a", x), ("b", y)):
        if s.ndim not in (1, 2):
            raise ValueError(f"{name}: audio must be (samples,) or (channels, samples), got {s.shape}")
    x, y = np.atleast_2d(x), np.atleast_2d(y)
    if x.shape[0] != y.shape[0]:
        x, y = x.mean(axis=0, keepdims=True), y.mean(axis=0, keepdims=True)
    n = min(x.shape[1], y.shape[1])
    return x[:, :n], y[:, :n]


def mr_log_spectral_distance(
    a: np.ndarray, b: np.ndarray, sr: int, fft_sizes: Sequence[int] = MR_FFT_SIZES, floor_db: float = -100.0
) -> float:
    """Multi-resolution log-spectral distance between two signals, in dB.

    Per STFT size (hop n_fft / 4) and channel: the RMS over bins of the difference of the magnitude spectra in
    dB (floored at ``floor_db`` dBFS-ish), averaged over frames; then averaged over sizes and channels. Signals
    are cut to the shorter length; identical signals give 0. ``sr`` only checks the call (sizes are in samples).
    """
    if sr <= 0:
        raise ValueError(f"sr must be positive, got {sr}")
    x, y = _channels_pair(a, b)
    if x.shape[1] == 0:
        raise ValueError("mr_log_spectral_distance: the signals are empty")
    floor = 10 ** (floor_db / 20)
    out = []
    for n_fft in fft_sizes:
        for c in range(x.shape[0]):
            ma = 20 * np.log10(np.maximum(_stft_mag(x[c], n_fft, n_fft // 4) / n_fft, floor))
            mb = 20 * np.log10(np.maximum(_stft_mag(y[c], n_fft, n_fft // 4) / n_fft, floor))
            out.append(float(np.mean(np.sqrt(np.mean((ma - mb) ** 2, axis=-1)))))
    return float(np.mean(out))


# -- realism --------------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=4)
def _mel_basis(sr: int) -> np.ndarray:
    import librosa

    return librosa.filters.mel(sr=sr, n_fft=2048, n_mels=N_MELS)


def clip_features(audio: np.ndarray, sr: int) -> np.ndarray:
    """Weight-free features of one clip, (N_MELS*2 + N_MFCC*2 + 12 + 3,) float64.

    Means and standard deviations over frames of the log-mel spectrogram (24 bands) and MFCC (13), the mean
    chroma (12), onset-strength mean and standard deviation, and the onset rate (peaks per second).
    """
    import librosa

    y = to_mono(audio).astype(np.float32)
    if y.size < 2048:
        y = np.pad(y, (0, 2048 - y.size))
    power = np.abs(librosa.stft(y, n_fft=2048, hop_length=512)) ** 2
    mel = _mel_basis(sr) @ power  # a plain matmul: librosa's einsum path is several times slower here
    logmel = librosa.power_to_db(mel, ref=1.0, amin=1e-10)
    mfcc = librosa.feature.mfcc(S=logmel, n_mfcc=N_MFCC)
    chroma = librosa.feature.chroma_stft(S=power, sr=sr, tuning=0.0)
    onset = librosa.onset.onset_strength(S=logmel, sr=sr, hop_length=512)
    peaks = librosa.util.peak_pick(onset, pre_max=3, post_max=3, pre_avg=3, post_avg=5, delta=0.5, wait=10)
    rate = len(peaks) / (y.size / sr)
    return np.concatenate([logmel.mean(1), logmel.std(1), mfcc.mean(1), mfcc.std(1), chroma.mean(1),
                           [onset.mean(), onset.std(), rate]]).astype(np.float64)


def segment_features(audio: np.ndarray, sr: int, segment_s: float = SEGMENT_S) -> np.ndarray:
    """:func:`clip_features` of each whole ``segment_s`` segment of ``audio`` (at least one), (segments, D)."""
    y = to_mono(audio)
    n = int(round(segment_s * sr))
    count = max(1, y.size // n)
    return np.stack([clip_features(y[i * n : (i + 1) * n], sr) for i in range(count)])


def frechet_distance(a: np.ndarray, b: np.ndarray, ridge: float = 1e-6) -> float:
    """Frechet distance between Gaussians fitted to feature rows a (n, D) and b (m, D).

    |mu_a - mu_b|^2 + tr(Ca + Cb - 2 (Ca Cb)^(1/2)); ``ridge`` is added to both diagonals so that few rows
    (rank-deficient covariances) still give a finite value. Needs at least 2 rows on each side.
    """
    from scipy.linalg import sqrtm

    a, b = np.atleast_2d(np.asarray(a, np.float64)), np.atleast_2d(np.asarray(b, np.float64))
    if a.shape[0] < 2 or b.shape[0] < 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"frechet_distance needs (n>=2, D) and (m>=2, D) features, got {a.shape} and {b.shape}")
    eye = ridge * np.eye(a.shape[1])
    ca, cb = np.cov(a, rowvar=False) + eye, np.cov(b, rowvar=False) + eye
    covmean = sqrtm(ca @ cb)
    if np.iscomplexobj(covmean):
        covmean = covmean.real
    diff = a.mean(0) - b.mean(0)
    return float(max(0.0, diff @ diff + np.trace(ca) + np.trace(cb) - 2 * np.trace(covmean)))


def realism_ratio(generated: Sequence[np.ndarray], heldout: Sequence[np.ndarray]) -> dict[str, float]:
    """Frechet distance of generated vs held-out features, as a ratio to held-out half vs held-out half.

    generated / heldout: one (segments, D) array per clip. Held-out clips alternate between the two halves
    (whole clips, so segments of one clip never straddle). Features are standardised with the held-out mean and
    standard deviation. A ratio near 1 means generated audio is as close to the data as the data is to itself.
    """
    if len(heldout) < 2:
        raise ValueError(f"realism needs at least 2 held-out clips to form two halves, got {len(heldout)}")
    ref = np.concatenate(list(heldout))
    gen = np.concatenate(list(generated))
    mu, sd = ref.mean(0), ref.std(0)
    sd = np.where(sd > 1e-9, sd, 1.0)
    z = [(h - mu) / sd for h in heldout]
    half_a, half_b = np.concatenate(z[0::2]), np.concatenate(z[1::2])
    if min(len(half_a), len(half_b)) < 2:
        raise ValueError(f"each held-out half needs 2 feature rows, got {len(half_a)} and {len(half_b)}")
    fd_gen = frechet_distance((gen - mu) / sd, (ref - mu) / sd)
    fd_ref = frechet_distance(half_a, half_b)
    return {"fd_generated": fd_gen, "fd_heldout_halves": fd_ref, "ratio": fd_gen / max(fd_ref, 1e-12)}


# -- seams ----------------------------------------------------------------------------------------------------
def spectral_flux(audio: np.ndarray, n_fft: int = 1024, hop: int = 256) -> np.ndarray:
    """Positive log-magnitude flux per frame, (frames,): flux[t] = sum_k max(0, L[t, k] - L[t-1, k]).

    L = log(1 + 1000 |X|); frame t starts at sample t * hop (no centering); flux[0] = 0.
    """
    mag = _stft_mag(to_mono(audio).astype(np.float64), n_fft, hop)
    logmag = np.log1p(1000.0 * mag)
    flux = np.zeros(logmag.shape[0])
    flux[1:] = np.maximum(0.0, np.diff(logmag, axis=0)).sum(axis=1)
    return flux


def seam_flux_ratio(
    audio: np.ndarray, joins: Sequence[int], exclude: Sequence[int] = (), n_fft: int = 1024, hop: int = 256
) -> float:
    """How much the spectral flux at window joins stands out: mean peak flux near joins / mean elsewhere.

    joins: sample positions of the joins. For a join at sample j the frames whose window contains j
    (starts in (j - n_fft, j]) form its neighbourhood; its score is the largest flux there. The baseline is the
    same statistic (largest flux over n_fft / hop + 1 consecutive frames) for every frame position at least
    one neighbourhood away from all joins and ``exclude`` positions. ~1 when joins do not stand out; a click at
    each join gives a large ratio. NaN when there is no join inside the audio or no room for a baseline.
    """
    flux = spectral_flux(audio, n_fft, hop)
    width = n_fft // hop + 1
    if flux.size <= width:
        return math.nan
    runmax = np.lib.stride_tricks.sliding_window_view(flux, width).max(axis=1)  # runmax[t]: frames t..t+width-1
    starts = [int(j - n_fft) // hop + 1 for j in joins]
    starts = [s for s in starts if 1 <= s < runmax.size]
    if not starts:
        return math.nan
    blocked = np.zeros(runmax.size, dtype=bool)
    for j in [*joins, *exclude]:
        s = int(j - n_fft) // hop + 1
        blocked[max(0, s - width) : max(0, s + width)] = True
    blocked[0] = True  # flux[0] is defined as 0
    base = runmax[~blocked]
    if base.size == 0:
        return math.nan
    return float(np.mean(runmax[starts]) / max(float(np.mean(base)), 1e-12))
