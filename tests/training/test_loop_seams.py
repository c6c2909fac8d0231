"""Seam stage: decoders learn to join their windows; encoders (and so cached latents) stay untouched."""

from __future__ import annotations

import pytest
import torch

from tests.training.tiny_dataset import make_tiny_dataset, tiny_model
from training.checkpoint import load_checkpoint
from training.errors import TrainingError
from training.loop_ae import run_autoencoder
from training.loop_seams import run_seams
from training.run_configs import AeTrainConfig, SeamTrainConfig


def test_seams_train_the_decoders_only_and_lower_the_join_error(tmp_path):
    torch.set_num_threads(1)
    data = make_tiny_dataset(tmp_path / "data", seconds=2.0, chunks=2)
    run = tmp_path / "run"
    ae = run_autoencoder(AeTrainConfig(dataset=str(data), run_dir=str(run), model=tiny_model(), steps_level1=2,
                                       steps_level2=2, batch=2, device="cpu", preview_every=0, tensorboard=False,
                                       progress=False))
    before = load_checkpoint(ae.checkpoint)
    first = run_seams(SeamTrainConfig(dataset=str(data), run_dir=str(run), steps=2, batch=2, lr=1e-3))
    assert "ae2/seam_onsets" not in first
    last = run_seams(SeamTrainConfig(dataset=str(data), run_dir=str(run), steps=40, batch=2, lr=1e-3))
    after = load_checkpoint(ae.checkpoint)
    for name in ("encoder1", "encoder2"):
        for k, v in before["networks"][name].items():
            assert torch.equal(v, after["networks"][name][k]), f"{name}.{k} changed"
    for name in ("decoder1", "decoder2"):
        assert any(not torch.equal(v, after["networks"][name][k]) for k, v in before["networks"][name].items())
    assert after["seams"]["steps"] == 42
    onsets = run_seams(SeamTrainConfig(dataset=str(data), run_dir=str(run), steps=2, batch=2, onset_weight=1.0))
    assert onsets["ae2/seam_onsets"] > 0
    for bad in (-1.0, float("nan")):
        with pytest.raises(TrainingError, match="onset-weight"):
            run_seams(SeamTrainConfig(dataset=str(data), run_dir=str(run), steps=2, onset_weight=bad))
    assert last["ae2/seam_jump"] + last["ae2/seam_recon"] < first["ae2/seam_jump"] + first["ae2/seam_recon"]


def test_a_seam_stage_continued_with_resume_ends_where_an_uninterrupted_one_does(tmp_path):
    """The seam stage runs on the shared stage runner: its checkpoint holds the optimizer and random state, so
    `--resume` (after a kill, or to add steps) continues it exactly; an unfinished one is not silently restarted."""
    import shutil

    from training.checkpoint import save_checkpoint

    torch.set_num_threads(1)
    data = make_tiny_dataset(tmp_path / "data", seconds=2.0, chunks=2)
    base = tmp_path / "base"
    run_autoencoder(AeTrainConfig(dataset=str(data), run_dir=str(base), model=tiny_model(), steps_level1=2,
                                  steps_level2=2, batch=2, device="cpu", preview_every=0, tensorboard=False,
                                  progress=False))
    straight, split = tmp_path / "straight", tmp_path / "split"
    shutil.copytree(base, straight)
    shutil.copytree(base, split)

    def cfg(run, steps):
        return SeamTrainConfig(dataset=str(data), run_dir=str(run), steps=steps, batch=2, lr=1e-3, device="cpu")

    run_seams(cfg(straight, 6))
    run_seams(cfg(split, 3))
    run_seams(cfg(split, 6), resume=True)
    a, b = load_checkpoint(straight / "ae" / "checkpoint.pt"), load_checkpoint(split / "ae" / "checkpoint.pt")
    assert a["seams"]["steps"] == b["seams"]["steps"] == 6
    for name in ("decoder1", "decoder2"):
        for k, v in a["networks"][name].items():
            assert torch.equal(v, b["networks"][name][k]), f"{name}.{k} differs after the resume"
    # a stage killed at step 6 of 10 (its last checkpoint says so) needs --resume
    stage = split / "seams" / "checkpoint.pt"
    state = load_checkpoint(stage)
    state["config"]["steps"] = 10
    save_checkpoint(stage, state)
    with pytest.raises(TrainingError, match=r"unfinished seam stage \(step 6 of 10\): pass --resume"):
        run_seams(cfg(split, 10))
