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
