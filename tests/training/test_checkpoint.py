"""Checkpoints are atomic, load with weights_only=True, restore every RNG; a real kill and SIGTERM of a
training process lose at most the steps since the last checkpoint."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.training.tiny_dataset import make_tiny_dataset
from training.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from training.errors import CheckpointError
from training.loop_utils import read_metrics

ROOT = Path(__file__).resolve().parents[2]


def test_round_trip_with_weights_only_and_rng_states(tmp_path):
    net = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(net.parameters())
    net(torch.ones(1, 3)).sum().backward()
    opt.step()
    rng = np.random.default_rng(7)
    torch.manual_seed(1)
    random.seed(2)
    state = {"step": 5, "config": {"lr": 1e-4, "betas": (0.5, 0.9), "name": "x", "none": None},
             "net": net.state_dict(), "opt": opt.state_dict(), "rng": [rng_state(rng)]}
    path = save_checkpoint(tmp_path / "ck" / "checkpoint.pt", state)
    expected = (torch.rand(3), rng.random(3), random.random())
    loaded = torch.load(path, weights_only=True)
    assert loaded["step"] == 5 and loaded["config"]["betas"] == (0.5, 0.9)
    set_rng_state(loaded["rng"][0], rng)
    assert torch.equal(torch.rand(3), expected[0])
    assert np.array_equal(rng.random(3), expected[1]) and random.random() == expected[2]
    opt2 = torch.optim.Adam(torch.nn.Linear(3, 2).parameters())
    opt2.load_state_dict(loaded["opt"])
    assert list(tmp_path.joinpath("ck").iterdir()) == [path]


def test_a_failed_save_leaves_the_old_file_intact(tmp_path):
    path = save_checkpoint(tmp_path / "checkpoint.pt", {"step": 1, "w": torch.ones(2)})
    before = path.read_bytes()
    with pytest.raises(Exception):  # noqa: B017 - a lambda cannot be pickled, whatever torch calls the error
        save_checkpoint(path, {"step": 2, "bad": lambda: None})
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]


def test_a_temp_file_left_by_a_killed_run_is_removed_at_the_next_checkpoint(tmp_path):
    stale = tmp_path / ".checkpoint.tmp-4194304.pt"  # a run killed while writing
    stale.write_bytes(b"half a checkpoint")
    save_checkpoint(tmp_path / "checkpoint.pt", {"step": 3})
    assert load_checkpoint(tmp_path / "checkpoint.pt")["step"] == 3
    assert not stale.exists()


def test_unreadable_checkpoints_are_named(tmp_path):
    (tmp_path / "checkpoint.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="checkpoint.pt is not a readable"):
        load_checkpoint(tmp_path / "checkpoint.pt")
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_checkpoint(tmp_path / "nothing.pt")


def _train(data: Path, run: Path, resume: bool = False) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "musika.cli", "train", "ae", "--data", str(data), "--run", str(run),
           "--ae-scale", "0.125", "--steps-level1", "400", "--steps-level2", "0", "--batch", "2",
           "--checkpoint-every", "3", "--preview-every", "0", "--log-every", "1", "--no-tensorboard",
           "--device", "cpu", "--threads", "1"] + (["--resume"] if resume else [])
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(path: Path, proc: subprocess.Popen, rows: int = 0) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if path.exists() and len(read_metrics(path.parent / "metrics.jsonl")) >= rows:
            return
        time.sleep(0.05)
    raise AssertionError(f"{path} did not appear: {proc.communicate()[1][-2000:]}")


@pytest.mark.slow
def test_sigkill_then_resume_and_sigterm_writes_a_checkpoint(tmp_path):
    data = make_tiny_dataset(tmp_path / "data", seconds=1.0, chunks=1)
    run = tmp_path / "run"
    ckpt = run / "ae" / "checkpoint.pt"
    proc = _train(data, run)
    _wait_for(ckpt, proc, rows=7)
    proc.kill()  # SIGKILL at an arbitrary moment, possibly while a checkpoint is being written
    proc.wait()
    killed_at = load_checkpoint(ckpt)["step"]
    assert killed_at >= 3 and killed_at % 3 == 0
    assert len([p for p in ckpt.parent.iterdir() if p.name.startswith(".")]) <= 1  # killed mid-write: its temp file
    proc = _train(data, run, resume=True)
    _wait_for(ckpt, proc, rows=killed_at + 4)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-2000:]
    assert "continue with --resume" in err
    state = load_checkpoint(ckpt)
    rows = read_metrics(ckpt.parent / "metrics.jsonl")
    assert state["step"] == rows[-1]["step"] > killed_at  # SIGTERM: nothing lost
    assert [r["step"] for r in rows] == list(range(1, state["step"] + 1))
    assert not [p for p in ckpt.parent.iterdir() if p.name.startswith(".")]  # the killed run's temp file is gone
