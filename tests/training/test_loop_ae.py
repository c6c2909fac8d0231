"""Autoencoder training on a tiny synthetic dataset: losses fall, resume after a kill is bit-exact."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from tests.training.tiny_dataset import make_tiny_dataset, tiny_model
from training.checkpoint import load_checkpoint
from training.errors import TrainingError
from training.loop_ae import mean_metric, run_autoencoder
from training.loop_utils import read_metrics
from training.run_configs import AeTrainConfig


@pytest.fixture(autouse=True)
def one_thread():
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_tiny_dataset(tmp_path_factory.mktemp("ae") / "data")


def config(data, run, **kw) -> AeTrainConfig:
    base = dict(dataset=str(data), run_dir=str(run), model=tiny_model(), batch=4, lr=1e-3, device="cpu",
                checkpoint_every=1000, preview_every=0, log_every=1, tensorboard=False, progress=False)
    return AeTrainConfig(**{**base, **kw})


def test_both_levels_learn(data, tmp_path):
    cfg = config(data, tmp_path / "run", steps_level1=30, steps_level2=30, adversarial_from=30,
                 preview_every=60)
    result = run_autoencoder(cfg)
    assert result.step == 60
    rows = read_metrics(tmp_path / "run" / "ae" / "metrics.jsonl")
    assert len(rows) == 60
    for name in ("ae1/magnitude", "ae1/consistency", "ae2/frames", "ae2/magnitude"):
        first, last = mean_metric(rows, name, first=True), mean_metric(rows, name, first=False)
        assert last < 0.8 * first, (name, first, last)
    assert (tmp_path / "run" / "ae" / "previews" / "step_0000060.wav").stat().st_size > 1000
    assert (tmp_path / "run" / "ae" / "previews" / "step_0000060.png").stat().st_size > 1000
    state = torch.load(result.checkpoint, weights_only=True)
    assert state["step"] == 60 and state["kind"] == "autoencoder"


def test_onset_loss_trains_and_a_frozen_encoder2_keeps_encoded_latents_valid(data, tmp_path):
    run_autoencoder(config(data, tmp_path / "run", steps_level1=4, steps_level2=2))
    before = load_checkpoint(tmp_path / "run" / "ae" / "checkpoint.pt")
    cfg = config(data, tmp_path / "run", steps_level1=4, steps_level2=12, freeze_encoder2=True)
    result = run_autoencoder(cfg, resume=True)
    after = load_checkpoint(result.checkpoint)
    for name in ("encoder1", "decoder1", "encoder2"):
        for k, v in before["networks"][name].items():
            assert torch.equal(v, after["networks"][name][k]), f"{name}.{k} changed"
    assert any(not torch.equal(v, after["networks"]["decoder2"][k])
               for k, v in before["networks"]["decoder2"].items())
    weighted = config(data, tmp_path / "onsets", steps_level1=2, steps_level2=3, weights={"ae2/onsets": 1.0})
    run_autoencoder(weighted)
    rows = read_metrics(tmp_path / "onsets" / "ae" / "metrics.jsonl")
    assert [r["step"] for r in rows if "ae2/onsets" in r] == [3, 4, 5]
    assert all(r["ae2/onsets"] > 0 for r in rows if "ae2/onsets" in r)


def test_a_run_can_start_from_another_runs_autoencoder_and_train_level_2_only(data, tmp_path):
    first = run_autoencoder(config(data, tmp_path / "a", steps_level1=3, steps_level2=1))
    start = load_checkpoint(first.checkpoint)
    second = run_autoencoder(config(data, tmp_path / "b", steps_level1=0, steps_level2=3, lr=1e-4,
                                    init_from=str(first.checkpoint), weights={"ae2/onsets": 1.0}))
    after = load_checkpoint(second.checkpoint)
    assert after["step"] == 3 and after["config"]["lr"] == 1e-4
    for k, v in start["networks"]["encoder1"].items():
        assert torch.equal(v, after["networks"]["encoder1"][k])  # level 1 came over and stayed frozen
    assert any(not torch.equal(v, after["networks"]["encoder2"][k]) for k, v in start["networks"]["encoder2"].items())
    other = dataclasses.replace(tiny_model(), autoencoder=dataclasses.replace(tiny_model().autoencoder, latent_dim=8))
    with pytest.raises(TrainingError, match="other widths.*latent_dim"):
        run_autoencoder(config(data, tmp_path / "c", model=other, init_from=str(first.checkpoint)))
    # a level-2-only run may change the level-2 compression: level 1 comes over, level 2 starts fresh
    third = run_autoencoder(config(data, tmp_path / "e", model=other, steps_level1=0, steps_level2=2,
                                   init_from=str(first.checkpoint)))
    changed = load_checkpoint(third.checkpoint)
    for k, v in start["networks"]["decoder1"].items():
        assert torch.equal(v, changed["networks"]["decoder1"][k])
    assert changed["model"]["autoencoder"]["latent_dim"] == 8
    with pytest.raises(TrainingError, match="--init-from .*no checkpoint"):
        run_autoencoder(config(data, tmp_path / "d", init_from=str(tmp_path / "missing.pt")))


class Killed(Exception):
    pass


def test_resume_after_kill_reproduces_the_uninterrupted_run(data, tmp_path):
    kw = dict(steps_level1=4, steps_level2=2, adversarial_from=2)
    straight: dict[int, dict[str, float]] = {}
    run_autoencoder(config(data, tmp_path / "a", **kw), on_step=lambda s, v: straight.__setitem__(s, v))

    def kill_at_4(step, values):
        if step == 4:
            raise Killed  # dies after step 4; the last checkpoint is step 3

    with pytest.raises(Killed):
        run_autoencoder(config(data, tmp_path / "b", checkpoint_every=3, **kw), on_step=kill_at_4)
    assert load_checkpoint(tmp_path / "b" / "ae" / "checkpoint.pt")["step"] == 3
    resumed: dict[int, dict[str, float]] = {}
    cfg_b = config(data, tmp_path / "b", checkpoint_every=3, **kw)
    with pytest.raises(TrainingError, match="--resume"):
        run_autoencoder(cfg_b)
    run_autoencoder(cfg_b, resume=True, on_step=lambda s, v: resumed.__setitem__(s, v))
    assert sorted(resumed) == [4, 5, 6]
    for step in (4, 5, 6):
        assert resumed[step] == straight[step], step  # bit-exact on CPU
    a = load_checkpoint(tmp_path / "a" / "ae" / "checkpoint.pt")
    b = load_checkpoint(tmp_path / "b" / "ae" / "checkpoint.pt")
    for net, params in a["networks"].items():
        for key, value in params.items():
            assert torch.equal(value, b["networks"][net][key]), (net, key)
    rows = read_metrics(tmp_path / "b" / "ae" / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6]  # the lost step 4 was logged once


def test_resume_keeps_stored_settings_but_may_extend_steps_and_lower_the_learning_rate(data, tmp_path):
    run_autoencoder(config(data, tmp_path / "r", steps_level1=2, steps_level2=0, adversarial_from=9))
    longer = config(data, tmp_path / "r", steps_level1=3, steps_level2=0, adversarial_from=9, lr=5e-4, batch=2)
    result = run_autoencoder(longer, resume=True)
    assert result.step == 3
    state = load_checkpoint(result.checkpoint)
    stored = state["config"]
    # the batch is the run's (it shapes what was learnt); the learning rate may be lowered (after a divergence)
    assert stored["batch"] == 4 and stored["steps_level1"] == 3 and stored["lr"] == 5e-4
    assert state["optimizers"]["level1"]["param_groups"][0]["lr"] == 5e-4


def test_unknown_loss_weight_is_refused(data, tmp_path):
    with pytest.raises(TrainingError, match="ae1/stft"):
        run_autoencoder(config(data, tmp_path / "w", steps_level1=1, steps_level2=0,
                               weights={"ae1/spectral": 1.0}))


def test_config_is_frozen(data, tmp_path):
    cfg = config(data, tmp_path)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.lr = 1.0  # type: ignore[misc]
