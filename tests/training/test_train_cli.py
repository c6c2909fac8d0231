"""`musika train` flags come from the stage configurations: one default each, and `train all` takes every stage's."""

from __future__ import annotations

import dataclasses

import pytest

from musika.cli import build_parser
from training.run_configs import AeTrainConfig, GanTrainConfig, SeamTrainConfig


def parse(*argv: str):
    return build_parser().parse_args(["train", *argv])


def test_each_stage_defaults_to_its_configuration():
    from training.cli import _ae_config, _gan_config, _seam_config

    ae = _ae_config(parse("ae", "--run", "r", "--data", "d"))
    gan = _gan_config(parse("gan", "--run", "r"), "lat", "")
    seams = _seam_config(parse("seams", "--run", "r", "--data", "d"))
    for built, cls, fields in ((ae, AeTrainConfig, ("steps_level1", "steps_level2", "adversarial_from", "batch", "lr",
                                                    "seed", "log_every", "checkpoint_every", "preview_every")),
                               (gan, GanTrainConfig, ("steps", "batch", "lr", "ema_decay", "cond_dropout", "seed",
                                                      "checkpoint_every", "preview_every")),
                               (seams, SeamTrainConfig, ("steps", "windows", "onset_weight", "batch", "lr", "seed"))):
        defaults = {f.name: f.default for f in dataclasses.fields(cls)}
        assert {f: getattr(built, f) for f in fields} == {f: defaults[f] for f in fields}, cls.__name__


def test_train_all_takes_every_stage_flag_under_its_prefix_with_the_same_defaults():
    from training.cli import _ae_config, _gan_config, _seam_config

    a = parse("all", "--run", "r", "--data", "d", "--name", "p", "--ae-lr", "1e-4", "--seam-lr", "5e-5",
              "--seam-windows", "4", "--gan-lr", "2e-4")
    assert _ae_config(a).lr == 1e-4 and _gan_config(a, "lat", "").lr == 2e-4
    seams = _seam_config(a)
    assert (seams.lr, seams.windows, seams.steps) == (5e-5, 4, SeamTrainConfig.steps)
    stage_only = parse("seams", "--run", "r", "--data", "d", "--windows", "4")
    assert _seam_config(stage_only).windows == 4


def test_a_bad_number_is_refused_by_the_parser(capsys):
    with pytest.raises(SystemExit):
        parse("ae", "--run", "r", "--data", "d", "--lr", "fast")
    assert "invalid float value: 'fast'" in capsys.readouterr().err
