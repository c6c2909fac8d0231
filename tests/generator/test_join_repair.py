"""Decoder-window joins: the repair removes what decoders do at window edges (a level dip, a phase restart)
so joins stop standing out, and a stream cut into calls is repaired exactly as one piece."""

from __future__ import annotations

import numpy as np
import pytest

from generator import spectral
from generator.join_repair import HOLD, JoinState, phase_advance, repair_joins
from generator.model_config import AudioConfig
from training.metrics import seam_flux_ratio

CFG = AudioConfig()
WINDOW = 64


def _tones(seconds: float = 6.0, seed: int = 0) -> np.ndarray:
    """(2, samples): a few steady partials with slow tremolo (no onsets of its own)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * CFG.sample_rate)) / CFG.sample_rate
    y = sum(0.1 * np.sin(2 * np.pi * f * t + rng.uniform(0, 6)) * (1 + 0.3 * np.sin(2 * np.pi * 0.5 * t))
            for f in rng.uniform(100, 4000, 12))
    return np.stack([y, 0.9 * y]).astype(np.float32)


def _decoder_like(audio: np.ndarray, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Spectra of `audio` as the decoders make them: whole windows, each restarting its phase at a random offset
    and with its first and last frame louder (+0.1 normalised dB)."""
    spec = np.stack([spectral.stft(channel, CFG) for channel in audio])
    frames = spec.shape[1] // WINDOW * WINDOW
    norm = spectral.db_norm(spec, CFG)[:, :frames].astype(np.float32)
    phase = np.angle(spec[:, :frames])  # radians; the decoders output phase / pi
    rng = np.random.default_rng(seed)
    for j in range(0, frames, WINDOW):
        phase[:, j : j + WINDOW] += rng.uniform(-np.pi, np.pi, (2, 1, phase.shape[2]))
        norm[:, [j, j + WINDOW - 1]] += 0.1
    phase = (np.angle(np.exp(1j * phase)) / np.pi).astype(np.float32)
    return norm, phase


def _audio(norm: np.ndarray, phase: np.ndarray) -> np.ndarray:
    return spectral.StreamingIstft(channels=2, cfg=CFG).process(norm, phase)


def test_edge_bursts_go_and_the_phase_continues_across_joins() -> None:
    clean = _tones()
    norm, phase = _decoder_like(clean)
    joins = [j * WINDOW * CFG.hop for j in range(1, norm.shape[1] // WINDOW)]
    mag, ph = repair_joins(norm, phase, WINDOW, CFG.hop, CFG.n_fft, JoinState())
    raw, fixed = (seam_flux_ratio(_audio(m, p), joins) for m, p in ((norm, phase), (mag, ph)))
    assert fixed < raw - 0.3, (raw, fixed)
    # the edge frames are back at their neighbours' level
    edge = np.arange(0, norm.shape[1], WINDOW)
    assert np.abs(mag[:, edge] - norm[:, edge + 1]).mean() < 0.01 < np.abs(norm[:, edge] - norm[:, edge + 1]).mean()
    # the continuation follows each bin's nominal advance from the frame before the join
    adv = phase_advance(phase.shape[2], CFG.hop, CFG.n_fft)
    j = WINDOW
    want = np.exp(1j * (np.pi * phase[:, j - 1].astype(np.float64) + HOLD * adv))
    np.testing.assert_allclose(np.exp(1j * np.pi * ph[:, j + HOLD - 1]), want, atol=1e-4)  # as unit phasors
    # inside a window nothing changes
    np.testing.assert_array_equal(mag[:, 20:40], norm[:, 20:40])
    np.testing.assert_array_equal(ph[:, 20:40], phase[:, 20:40])


def test_a_stream_is_repaired_exactly_as_one_piece() -> None:
    norm, phase = _decoder_like(_tones(3.0), seed=2)
    whole = repair_joins(norm, phase, WINDOW, CFG.hop, CFG.n_fft, JoinState())
    state = JoinState()
    parts = [repair_joins(norm[:, a:b], phase[:, a:b], WINDOW, CFG.hop, CFG.n_fft, state)
             for a, b in ((0, WINDOW), (WINDOW, 3 * WINDOW), (3 * WINDOW, norm.shape[1]))]
    for k in range(2):
        np.testing.assert_array_equal(np.concatenate([p[k] for p in parts], axis=1), whole[k])
    with pytest.raises(ValueError, match="whole windows of 64"):
        repair_joins(norm[:, :70], phase[:, :70], WINDOW, CFG.hop, CFG.n_fft)


def test_an_onset_on_a_window_edge_is_kept() -> None:
    norm = np.full((1, 2 * WINDOW, 8), -0.5, np.float32)
    norm[:, WINDOW:] = 0.3  # a loud event starting exactly on the join
    phase = np.zeros_like(norm)
    mag, _ = repair_joins(norm, phase, WINDOW, CFG.hop, CFG.n_fft)
    np.testing.assert_array_equal(mag, norm)  # no dip to fill, nothing raised before the event
