"""What a listener hears, as figures (pure numpy/scikit-learn; no files, no models, no clocks).

- :func:`classifier_auc`: a two-sample test. A plain classifier (standardised logistic regression) on the
  weight-free features of 3 s segments (training.metrics.segment_features) tells generated from held-out audio,
  cross-validated by source clip so that segments of one clip are never on both sides; the ROC AUC of its
  out-of-fold scores is 0.5 when the two cannot be told apart and 1.0 when they always can.
- :func:`frame_comb_ratio`: lines at every multiple of the STFT frame rate's bin spacing (sample_rate / n_fft,
  43.07 Hz at 44.1 kHz / 1024), as the median power there over the power around them (~2 for noise: the
  largest of three bins over a median).
- :func:`output_levels`: true peak, integrated loudness and clipped samples of what is written to a file.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from generator.runtime.mastering import loudness_lufs, true_peak_db
from training.analysis import to_mono

CLIP_LEVEL = 1.0 - 2.0**-15  # a float sample at or above this is clipped when written as 16-bit PCM
COMB_LINES = 150
COMB_FFT = 2**18


def classifier_auc(generated: Sequence[np.ndarray], heldout: Sequence[np.ndarray], folds: int = 5,
                   seed: int = 0) -> float:
    """ROC AUC of generated vs held-out segments; each argument holds one (segments, D) array per source clip.
    NaN when either side has fewer than 2 clips."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedGroupKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    gen = [g for g in generated if len(g)]
    ref = [r for r in heldout if len(r)]
    if len(gen) < 2 or len(ref) < 2:
        return float("nan")
    x = np.concatenate([*gen, *ref]).astype(np.float64)
    y = np.concatenate([np.ones(sum(len(g) for g in gen)), np.zeros(sum(len(r) for r in ref))])
    groups = np.concatenate([np.full(len(c), i) for i, c in enumerate([*gen, *ref])])
    splits = min(folds, len(gen), len(ref))
    model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000))
    cv = StratifiedGroupKFold(n_splits=splits, shuffle=True, random_state=seed)
    scores = cross_val_predict(model, np.nan_to_num(x), y, groups=groups, cv=cv, method="decision_function")
    return float(roc_auc_score(y, scores))


def frame_comb_ratio(audio: np.ndarray, sr: int = 44100, n_fft: int = 1024) -> float:
    """Median over the first COMB_LINES multiples of sr / n_fft of the long-term power there over the median
    power 10-60 FFT bins to either side (the STFT's frame comb; ~1 when there is none)."""
    y = to_mono(audio)[:COMB_FFT].astype(np.float64)
    power = np.abs(np.fft.rfft(y * np.hanning(y.size), COMB_FFT)) ** 2
    ratios = []
    for k in range(1, COMB_LINES):
        i = int(round(k * COMB_FFT / n_fft))
        if i + 60 >= power.size:
            break
        around = np.median(np.r_[power[i - 60 : i - 10], power[i + 10 : i + 60]])
        ratios.append(power[i - 1 : i + 2].max() / max(around, 1e-30))
    return float(np.median(ratios))


def output_levels(audio: np.ndarray, sr: int = 44100) -> dict[str, float]:
    """{"true_peak_dbtp", "loudness_lufs", "clipped_samples"} of (channels, samples) float audio."""
    x = np.asarray(audio, dtype=np.float32)
    return {"true_peak_dbtp": true_peak_db(x), "loudness_lufs": loudness_lufs(x, sr),
            "clipped_samples": int(np.count_nonzero(np.abs(x) >= CLIP_LEVEL))}


BASS_HZ = 120.0  # kick fundamentals and sub bass: what a mean over STFT bins barely weighs (2-3 of 513 bins)


def bass_level_db(audio: np.ndarray, sr: int = 44100, cutoff_hz: float = BASS_HZ) -> float:
    """Energy of the mono mix below `cutoff_hz`, dB relative to a full-scale sine's (about -inf for silence)."""
    mono = np.asarray(audio, np.float64).reshape(-1, np.shape(audio)[-1]).mean(axis=0)
    spec = np.abs(np.fft.rfft(mono)) ** 2
    low = spec[: int(cutoff_hz * mono.size / sr) + 1].sum()
    return float(10.0 * np.log10(2.0 * low / mono.size**2 / 0.5 + 1e-20))
