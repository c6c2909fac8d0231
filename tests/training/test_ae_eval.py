"""training.ae_eval: reconstruction figures that tell a faithful codec from one that smears or shifts attacks."""

from __future__ import annotations

import numpy as np
import pytest

from tests.training.tiny_dataset import clicks_and_sine, make_tiny_dataset
from training.ae_eval import clip_figures, evaluate_autoencoder

SR = 44100


def test_a_perfect_copy_scores_perfectly_and_an_early_copy_is_measured_early() -> None:
    audio = clicks_and_sine(128.0, 6.0, 220.0, seed=0)
    same = clip_figures(audio, audio.copy(), SR)
    assert same["lsd_db"] == pytest.approx(0.0, abs=1e-6) and same["onset_f"] == 1.0
    assert same["onset_offset_ms"] == pytest.approx(0.0, abs=1e-6) and same["comb_vs_original"] == pytest.approx(1.0)
    shift = int(0.020 * SR)
    early = np.concatenate([audio[:, shift:], np.zeros((2, shift), np.float32)], axis=1)
    figures = clip_figures(audio, early, SR)
    assert figures["onset_offset_ms"] == pytest.approx(-20.0, abs=2.0)
    assert figures["lsd_db"] > 1.0


def test_the_identity_codec_passes_every_domain(tmp_path) -> None:
    data = make_tiny_dataset(tmp_path / "data", seconds=6.0)
    codec = (lambda audio, level: audio.copy(), SR)
    out = evaluate_autoencoder("unused", [data], clips=2, seconds=6.0, codec=codec, progress=False)
    level2 = out["tiny"]["level2"]
    assert level2["clips"] == 1 and level2["mr_log_spectral_distance_db"] == pytest.approx(0.0, abs=1e-6)
    assert level2["onset_f_measure"] == 1.0
    assert np.isnan(level2["tempo_preserved"]) or level2["tempo_preserved"] == 1.0
