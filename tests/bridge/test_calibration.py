"""musika calibrate: the click train and its delay (pure), the musika.toml edit, and the command on a JACK
loopback (a client that delays its input by a known number of frames)."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest

from bridge.calibration import MAX_OFFSET_MS, check_offset, click_train, find_delay, set_offset_text, store_offset
from bridge.config import load_config
from bridge.errors import ConfigError

SR = 44100
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("delay", [0, 37, 1234, 20000])
def test_the_delay_of_a_recorded_click_train_is_found_to_the_sample(delay: int) -> None:
    train, starts = click_train(SR)
    rng = np.random.default_rng(delay)
    rec = rng.normal(0, 0.005, train.size + SR).astype(np.float32)
    rec[delay : delay + train.size] += -0.7 * train  # inverted and quieter on the way back
    m = find_delay(rec, SR, starts)
    assert m is not None and m.clicks == len(starts)
    assert m.delay_ms == pytest.approx(delay / SR * 1000, abs=1000 / SR)


def test_no_loopback_is_no_measurement() -> None:
    train, starts = click_train(SR)
    noise = np.random.default_rng(0).normal(0, 0.01, train.size + SR).astype(np.float32)
    assert find_delay(noise, SR, starts) is None
    assert find_delay(np.zeros(train.size + SR, np.float32), SR, starts) is None


def test_an_offset_beyond_500_ms_is_refused_with_the_range() -> None:
    assert check_offset(-499.0) == -499.0
    with pytest.raises(ConfigError, match=r"-500\.\.500 ms"):
        check_offset(MAX_OFFSET_MS + 1)


def test_the_offset_is_written_into_the_users_file_keeping_everything_else(tmp_path: Path) -> None:
    text = ('# my rig\npreset = "techno"  # the loud one\n\n[sync]\nbpm = 130.0  # my tempo\n'
            'offset_ms = 3  # by ear\nquantise = "bar"\n\n[osc]\nport = 9001\n')
    out = set_offset_text(text, 12.345, note="calibrated")
    assert out == text.replace("offset_ms = 3  # by ear", "offset_ms = 12.3  # by ear")
    assert tomllib.loads(out)["sync"]["offset_ms"] == 12.3
    added = set_offset_text('[sync]\nbpm = 120.0\n[osc]\nport = 1\n', -4.0, note="calibrated")
    assert tomllib.loads(added)["sync"] == {"bpm": 120.0, "offset_ms": -4.0}
    assert tomllib.loads(set_offset_text("", 7.0))["sync"]["offset_ms"] == 7.0
    path = store_offset(tmp_path / "musika.toml", 21.04, note="jack -> loop")
    assert load_config(path).sync.offset_ms == 21.0
    assert not list(tmp_path.glob(".*tmp*"))  # written atomically: no temporary file left


@pytest.mark.jack
def test_calibrate_measures_a_jack_loopback_and_stores_the_offset(jack_server, tmp_path: Path) -> None:
    import jack

    delay = 300  # frames the loopback client adds; JACK adds one period for the loop through it
    loop = jack.Client("loop", no_start_server=True)
    inp, out = loop.inports.register("in"), loop.outports.register("out")
    held = [np.zeros(delay, np.float32)]

    def process(frames: int) -> None:
        x = np.concatenate([held[0], inp.get_array()])
        out.get_array()[:] = x[:frames]
        held[0] = x[frames:]

    loop.set_process_callback(process)
    loop.activate()
    cfg = tmp_path / "musika.toml"
    cfg.write_text('[output]\nkind = "jack"\njack_connect = ["loop:in"]\n\n[sync]\noffset_ms = 0.0  # mine\n')
    env = {**jack_server.env, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "musika", "calibrate", "--config", str(cfg)]
    try:
        ok = subprocess.run([*cmd, "--capture", "loop:out"], env=env, capture_output=True, text=True, timeout=60)
        silent = subprocess.run([*cmd, "--capture", "system:capture_1", "--dry-run"], env=env, capture_output=True,
                                text=True, timeout=60)
    finally:
        loop.deactivate()
        loop.close()
    assert ok.returncode == 0, ok.stderr
    expected = (delay + jack_server.period) / jack_server.rate * 1000
    assert load_config(cfg).sync.offset_ms == pytest.approx(expected, abs=0.15)
    assert "# mine" in cfg.read_text()
    assert silent.returncode == 1 and "no loopback path" in silent.stderr and "--capture" in silent.stderr
    assert os.path.exists(cfg)
