"""Decoder-window joins: the repair removes what decoders do at window edges (edge frames at the wrong level)
so joins stop standing out, keeps onsets, and a stream cut into calls is repaired exactly as one piece."""

from __future__ import annotations

import numpy as np
import pytest

from generator.runtime import spectral
from generator.runtime.join_repair import repair_joins
from generator.runtime.model_config import AudioConfig
from training.metrics import seam_flux_ratio

CFG = AudioConfig()
WINDOW = 64


def _decoder_like(seconds: float = 6.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Spectra (S, phase / pi) of steady partials as the decoders make them: whole windows whose first and last
    frame come out 0.1 (normalised dB) too loud."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * CFG.sample_rate)) / CFG.sample_rate
    y = sum(0.1 * np.sin(2 * np.pi * f * t + rng.uniform(0, 6)) * (1 + 0.3 * np.sin(2 * np.pi * 0.5 * t))
            for f in rng.uniform(100, 4000, 12))
    spec = np.stack([spectral.stft(channel, CFG) for channel in np.stack([y, 0.9 * y]).astype(np.float32)])
    frames = spec.shape[1] // WINDOW * WINDOW
    norm = spectral.db_norm(spec, CFG)[:, :frames].astype(np.float32)
    for j in range(0, frames, WINDOW):
        norm[:, [j, j + WINDOW - 1]] += 0.1
    return norm, (np.angle(spec[:, :frames]) / np.pi).astype(np.float32)


def test_edge_frames_stop_standing_out() -> None:
    norm, phase = _decoder_like()
    joins = [j * WINDOW * CFG.hop for j in range(1, norm.shape[1] // WINDOW)]
    mag = repair_joins(norm, WINDOW)
    raw, fixed = (seam_flux_ratio(spectral.StreamingIstft(2, CFG).process(m, phase), joins) for m in (norm, mag))
    assert raw > 1.5 and fixed < 1.1, (raw, fixed)
    edge = np.arange(0, norm.shape[1], WINDOW)
    np.testing.assert_array_equal(mag[:, edge], norm[:, edge + 1])
    np.testing.assert_array_equal(mag[:, edge + WINDOW - 1], norm[:, edge + WINDOW - 2])
    np.testing.assert_array_equal(mag[:, 2 : WINDOW - 1], norm[:, 2 : WINDOW - 1])  # inside: untouched


def test_a_stream_is_repaired_exactly_as_one_piece() -> None:
    norm, _ = _decoder_like(3.0, seed=2)
    whole = repair_joins(norm, WINDOW)
    parts = [repair_joins(norm[:, a:b], WINDOW) for a, b in ((0, WINDOW), (WINDOW, 3 * WINDOW),
                                                             (3 * WINDOW, norm.shape[1]))]
    np.testing.assert_array_equal(np.concatenate(parts, axis=1), whole)
    with pytest.raises(ValueError, match="whole windows of 64"):
        repair_joins(norm[:, :70], WINDOW)


def test_an_onset_on_a_window_edge_is_kept() -> None:
    norm = np.full((1, 2 * WINDOW, 8), -0.5, np.float32)
    norm[:, WINDOW:] = 0.3  # a loud event starting exactly on the join
    np.testing.assert_array_equal(repair_joins(norm, WINDOW), norm)
