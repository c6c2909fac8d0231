"""musika autoencoder export / eval: a shared autoencoder folder with its card, figures per domain, from the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from musika.cli import main
from tests.training.test_shared_autoencoder import _ae_checkpoint
from tests.training.tiny_dataset import make_tiny_dataset

torch.set_num_threads(1)


def test_export_then_eval_writes_the_figures_into_the_manifest_and_the_card(tmp_path: Path) -> None:
    ckpt = _ae_checkpoint(tmp_path / "ae.pt")
    data = make_tiny_dataset(tmp_path / "data", seconds=6.0)
    out = tmp_path / "shared"
    assert main(["autoencoder", "export", str(ckpt), "--name", "mix", "--out", str(out), "--data", str(data),
                 "--data-licence", f"{data}=synthetic clicks, CC0", "--license", "CC0-1.0",
                 "--note", "resume: musika train ae --resume"]) == 0
    card = (out / "mix" / "MODEL_CARD.md").read_text()
    assert "synthetic clicks, CC0" in card and "resume: musika train ae --resume" in card
    assert "Not measured yet" in card
    assert main(["autoencoder", "eval", str(out / "mix"), "--data", str(data), "--clips", "1", "--seconds", "6",
                 "--quiet"]) == 0
    manifest = json.loads((out / "mix" / "autoencoder.json").read_text())
    figures = manifest["metrics"]["domains"]["tiny"]
    assert set(figures) >= {"level1", "level2"} and figures["level2"]["clips"] == 1
    card = (out / "mix" / "MODEL_CARD.md").read_text()
    assert "log-spectral distance" in card and "reconstructions.png" in card
    assert (out / "mix" / "reconstructions.png").stat().st_size > 1000


def test_a_licence_for_a_dataset_that_was_not_given_is_refused(tmp_path: Path, capsys) -> None:
    ckpt = _ae_checkpoint(tmp_path / "ae.pt")
    data = make_tiny_dataset(tmp_path / "data", seconds=6.0)
    assert main(["autoencoder", "export", str(ckpt), "--name", "x", "--out", str(tmp_path / "o"), "--data",
                 str(data), "--data-licence", "elsewhere=CC0"]) == 1
    assert "--data-licence names ['elsewhere']" in capsys.readouterr().err
    assert not (tmp_path / "o" / "x").exists()


def test_eval_measures_a_training_checkpoint_and_refuses_nonsense(tmp_path: Path, capsys) -> None:
    ckpt = _ae_checkpoint(tmp_path / "ae.pt")
    data = make_tiny_dataset(tmp_path / "data", seconds=6.0)
    assert main(["autoencoder", "eval", str(ckpt), "--data", str(data), "--clips", "1", "--seconds", "6",
                 "--quiet"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["domains"]["tiny"]["level1"]["clips"] == 1
    assert main(["autoencoder", "eval", str(ckpt), "--data", str(data), "--clips", "0"]) == 1
    assert "--clips must be at least 1" in capsys.readouterr().err
    assert main(["autoencoder", "eval", "no-such-preset", "--data", str(data)]) == 1
    assert "no-such-preset" in capsys.readouterr().err
