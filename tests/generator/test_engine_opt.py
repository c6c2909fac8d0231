"""The engine's speed options keep its output: blocked fast iSTFT, batch size, thread spinning, arena."""

from __future__ import annotations

import numpy as np
import pytest

from generator import spectral
from generator.bench import naive_istft
from generator.engine import Engine
from generator.errors import PresetError
from generator.istft_fast import BLOCK, FastStreamingIstft


def _spectra(frames: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    norm = rng.uniform(-1.0, 1.0, (2, frames, spectral.DEFAULT.bins)).astype(np.float32)
    phase = rng.uniform(-1.0, 1.0, (2, frames, spectral.DEFAULT.bins)).astype(np.float32)
    return norm, phase


@pytest.mark.parametrize("frames", [1, 3, BLOCK, BLOCK + 5, 3 * BLOCK - 1])
def test_fast_istft_equals_reference_and_naive(frames):
    norm, phase = _spectra(frames)
    ref = spectral.StreamingIstft(2).process(norm, phase)
    fast = FastStreamingIstft(2).process(norm, phase)
    assert fast.shape == ref.shape == (2, frames * spectral.DEFAULT.hop) and fast.dtype == np.float32
    scale = max(1.0, float(np.abs(ref).max()))
    assert np.max(np.abs(fast - ref)) < 1e-6 * scale
    whole = naive_istft(norm[0], phase[0], spectral.DEFAULT)[: frames * spectral.DEFAULT.hop]
    assert np.max(np.abs(fast[0] - whole)) < 1e-5 * scale


def test_fast_istft_streams_like_one_pass_and_flushes_the_tail():
    norm, phase = _spectra(300, seed=1)
    one = FastStreamingIstft(2)
    whole = np.concatenate([one.process(norm, phase), one.flush()], axis=1)
    ref = np.stack([spectral.istft(norm[c], phase[c]) for c in range(2)])
    assert np.max(np.abs(whole - ref)) < 1e-6 * max(1.0, float(np.abs(ref).max()))
    st = FastStreamingIstft(2, workers=2)
    parts = [st.process(norm[:, a:b], phase[:, a:b]) for a, b in ((0, 7), (7, 7), (7, 200), (200, 300))]
    parts.append(st.flush())
    np.testing.assert_allclose(np.concatenate(parts, axis=1), whole, atol=1e-6)
    assert st.state.samples_out == 0 and st.latency_samples == 768


def test_engine_options_do_not_change_the_audio(tiny_preset):
    base = Engine.load(tiny_preset, threads=1)
    assert base.precision == "fp32" and base.max_batch == 16
    a = base.generate(2.0, {"tempo": 130.0}, seed=3)
    for options in ({"max_batch": 1}, {"max_batch": 64, "spin": True}, {"arena": False}, {"istft": "reference"}):
        b = Engine.load(tiny_preset, threads=1, **options).generate(2.0, {"tempo": 130.0}, seed=3)
        assert np.max(np.abs(a - b)) < 1e-5, options


def test_engine_option_errors_name_the_value(tiny_preset):
    with pytest.raises(PresetError, match="max_batch"):
        Engine.load(tiny_preset, max_batch=0)
    with pytest.raises(PresetError, match="istft"):
        Engine.load(tiny_preset, istft="slow")
    with pytest.raises(PresetError, match="no int8"):
        Engine.load(tiny_preset, precision="int8")


def test_bench_worker_reports_every_stage_and_the_table_compares(tiny_preset):
    from generator.bench import format_table, measure, measure_in_subprocess

    row = measure_in_subprocess(tiny_preset, 1, 2.0, 1, live=True, label="tiny")
    assert row["label"] == "tiny" and row["precision"] == "fp32" and row["istft"].startswith("float32")
    assert set(row["stage_seconds"]) == {"generator", "decoder2", "decoder1", "istft"}
    assert row["rtf"] > 0 and row["live_rtf"] > 0 and row["peak_rss_mb"] > 0
    assert 0 < row["load_seconds"] <= row["first_audio_seconds"]
    naive = measure(tiny_preset, 1, 2.0, 1, naive=True, label="tiny faithful")
    assert naive["istft"].startswith("naive") and naive["live_rtf"] is None
    table = format_table([naive, row])
    assert "| tiny faithful | 1 | fp32 | naive complex128 |" in table and "| 1.00 |" in table
