"""Automatic labels of user audio (``musika prepare folder --label``): arrays in, labels out, no file I/O.

- ``tempo``: :func:`training.data.tempo_labels.label_track` over the whole track. Every chunk gets
  ``tempo_confidence``; a confident chunk also gets ``tempo`` (BPM) and ``first_beat_s``. An unconfident chunk gets
  no tempo label (training drops the condition for it) and the reason is kept for DATASET.md.
- ``density``: onsets over the whole track (training.analysis.onset_times) -> curve ``density`` (onsets/s per
  latent step, smoothed) and scalar ``onset_rate`` per chunk.
- ``none``: audio only.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from generator.runtime.model_config import SAMPLES_PER_LATENT
from training.analysis import density_curve_from_onsets, onset_times
from training.data.tempo_labels import CONFIDENT, label_track, onset_envelope

logger = logging.getLogger(__name__)

LABELS = ("tempo", "density", "none")
TEMPO_LABELLER = 2  # version of the tempo labelling: part of the re-run cache key

LABEL_SPECS: dict[str, dict[str, dict[str, str]]] = {
    "tempo": {
        "tempo": {
            "kind": "scalar",
            "unit": "BPM",
            "description": "tempo of the chunk's section: beat periodicity (autocorrelation times Fourier "
            "magnitude of a multi-band onset envelope) agreed over the whole track, metrical level chosen with a "
            "prior on 80-180 BPM, refined on the chunk by a beat-grid fit; present only when tempo_confidence >= "
            f"{CONFIDENT:g}",
        },
        "tempo_confidence": {
            "kind": "scalar",
            "unit": "0..1",
            "description": "weakest of: the chunk's own preference for its section's tempo, the margin over the "
            "3:2 and 4:3 readings, agreement of the autocorrelation and Fourier estimates, pulse strength",
        },
        "first_beat_s": {"kind": "scalar", "unit": "s", "description": "phase of the fitted beat grid"},
    },
    "density": {
        "density": {
            "kind": "curve",
            "unit": "onsets/s",
            "description": "detected onsets per second per latent step (44100/4096 Hz), Gaussian-smoothed",
        },
        "onset_rate": {"kind": "scalar", "unit": "onsets/s", "description": "detected onsets per second in the chunk"},
    },
    "none": {},
}


@dataclass
class ChunkLabels:
    """Labels of one chunk: scalars, curves (per latent step) and, when the chunk lacks its main label, why."""

    labels: dict[str, float] = field(default_factory=dict)
    curves: dict[str, np.ndarray] = field(default_factory=dict)
    unlabelled: str | None = None


def label_chunks(
    audio: np.ndarray,
    sr: int,
    spans: Sequence[tuple[int, int]],
    label: str,
    bpm_range: tuple[float, float],
    smooth_s: float,
) -> list[ChunkLabels]:
    """Labels for the chunks ``spans`` ((start, stop) samples, whole latent steps) of one track ``audio`` (2, n).

    The last span may run past the audio by less than a latent step (the chunk is padded with silence).
    """
    if label not in LABELS:
        raise ValueError(f"label {label!r} is not known; use one of {', '.join(LABELS)}")
    if label == "tempo":
        return _tempo(audio, sr, spans, bpm_range)
    if label == "density":
        return _density(audio, sr, spans, smooth_s)
    return [ChunkLabels() for _ in spans]


def _tempo(
    audio: np.ndarray, sr: int, spans: Sequence[tuple[int, int]], bpm_range: tuple[float, float]
) -> list[ChunkLabels]:
    out = []
    for est in label_track(onset_envelope(audio, sr), spans, bpm_range):
        labels = {"tempo_confidence": round(est.confidence, 4)}
        if est.confident:
            labels.update(tempo=est.bpm, first_beat_s=est.first_beat_s)
            out.append(ChunkLabels(labels))
        else:
            out.append(ChunkLabels(labels, unlabelled=est.reason()))
    return out


def _density(audio: np.ndarray, sr: int, spans: Sequence[tuple[int, int]], smooth_s: float) -> list[ChunkLabels]:
    n = audio.shape[1]
    onsets = onset_times(audio, sr)
    curve = density_curve_from_onsets(onsets, spans[-1][1] / sr, smooth_s=smooth_s)
    out = []
    for start, stop in spans:
        seconds = max((min(stop, n) - start) / sr, 1e-9)
        count = int(np.sum((onsets >= start / sr) & (onsets < stop / sr)))
        steps = slice(start // SAMPLES_PER_LATENT, stop // SAMPLES_PER_LATENT)
        out.append(ChunkLabels({"onset_rate": count / seconds}, {"density": curve[steps]}))
    return out
