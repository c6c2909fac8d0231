"""The engine's speed options keep its output: batch size, thread spinning, arena, iSTFT path."""

from __future__ import annotations

import numpy as np
import pytest

from generator.errors import PresetError
from generator.runtime.engine import Engine


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
    from bench.measure import format_table, measure, measure_in_subprocess

    row = measure_in_subprocess(tiny_preset, 1, 2.0, 1, live=True, label="tiny")
    assert row["label"] == "tiny" and row["precision"] == "fp32" and row["istft"].startswith("float32")
    assert set(row["stage_seconds"]) == {"generator", "decoder2", "decoder1", "istft"}
    assert row["rtf"] > 0 and row["live_rtf"] > 0 and row["peak_rss_mb"] > 0
    assert 0 < row["load_seconds"] <= row["first_audio_seconds"]
    naive = measure(tiny_preset, 1, 2.0, 1, naive=True, label="tiny faithful")
    assert naive["istft"].startswith("naive") and naive["live_rtf"] is None
    table = format_table([naive, row])
    assert "| tiny faithful | 1 | fp32 | naive complex128 |" in table and "| 1.00 |" in table
