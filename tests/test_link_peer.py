"""The Link grid of scripts/link_peer.py: the session's beat at every recorded sample, from the peer's notes and the
recorder's per-period host times, through a tempo step and across a period the recorder missed."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("link_peer", ROOT / "scripts" / "link_peer.py")
lp = importlib.util.module_from_spec(spec)
spec.loader.exec_module(lp)

SR, PERIOD = 44100, 512


def test_the_grid_follows_the_session_through_a_tempo_step_and_a_missed_period(tmp_path: Path) -> None:
    def beat(t: np.ndarray) -> np.ndarray:  # 120 BPM until t = 12 s, then 132 BPM
        return np.where(t < 12.0, (t - 10.0) * 2.0, 4.0 + (t - 12.0) * 2.2)

    notes_t = np.arange(10.0, 16.0, 0.01)
    path = tmp_path / "notes.json"
    path.write_text(json.dumps(np.c_[notes_t, beat(notes_t)].tolist()))
    t0, rng = 10.5, np.random.default_rng(0)
    periods = [k for k in range(400) if k != 200]  # the recorder missed period 200 (an xrun)
    late = np.where(rng.random(len(periods)) < 0.1, rng.uniform(0.005, 0.03, len(periods)), 0.0)  # some callbacks
    stamps = [(i * PERIOD, k * PERIOD, t0 + k * PERIOD / SR + late[i] + rng.normal(0, 1e-4))  # run 5-30 ms late
              for i, k in enumerate(periods)]
    n = len(periods) * PERIOD
    grid = lp.link_grid(stamps, n, path, SR)
    frames = np.repeat(np.asarray(periods) * PERIOD, PERIOD) + np.tile(np.arange(PERIOD), len(periods))
    want = beat(t0 + frames / SR)
    assert np.nanmax(np.abs(grid - want)) < 1e-3  # beats: well under a millisecond at these tempi


def test_the_tempo_plan_steps_and_ramps_every_30_s() -> None:
    plan = lp.tempo_plan(126.0, 140.0)
    assert [p[0] for p in plan] == [20.0, 50.0, 80.0, 110.0]
    assert [p[1] for p in plan] == ["tempo", "ramp", "tempo", "ramp"]
    assert [p[2] for p in plan] == [132.3, 119.7, 126.0, 129.78]
