"""musika train preset: a folder of music becomes a playable preset on the shared autoencoder in one command;
running it again after a kill continues; what cannot work is refused before any training."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from generator.runtime.engine import Engine
from tests.training.test_shared_autoencoder import _ae_checkpoint
from tests.training.tiny_dataset import clicks_and_sine
from training.autoencoder_export import export_autoencoder
from training.checkpoint import load_checkpoint
from training.errors import TrainingError
from training.preset_pipeline import PresetPlan, gan_conditions, train_preset
from training.shared_autoencoder import SharedAutoencoderError

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("pipeline")
    shared = export_autoencoder(_ae_checkpoint(root / "ae.pt"), "toy-ae", [], out_root=root / "presets" /
                                "_autoencoders", int8=None)
    music = root / "music"
    music.mkdir()
    for i, bpm in enumerate((120.0, 126.0, 132.0, 124.0)):
        sf.write(music / f"track{i}.wav", clicks_and_sine(bpm, 20.0, 110.0 * (i + 2), seed=i).T, 44100)
    return shared, music


def plan(setup, tmp_path, **kw) -> PresetPlan:
    shared, music = setup
    base = dict(folder=str(music), name="mine", autoencoder_dir=str(shared), run=str(tmp_path / "run"),
                out=str(shared.parent.parent), gan_steps=2, gan_scale=0.125, half_len=16, batch=2, device="cpu",
                min_minutes=0.5, evaluate=False)
    return PresetPlan(**{**base, **kw})


def test_a_folder_becomes_a_preset_on_the_shared_autoencoder_and_a_rerun_continues(setup, tmp_path) -> None:
    stages: list[str] = []
    preset = train_preset(plan(setup, tmp_path), on_stage=lambda name, i: stages.append(name))
    assert stages == ["prepare", "encode", "gan", "select", "decoders", "export", "eval"]
    assert sorted(p.name for p in preset.iterdir() if p.suffix == ".onnx") == ["generator.onnx"]
    engine = Engine.load(preset, threads=1)
    assert [c.name for c in engine.preset.conditioning] == ["tempo", "beat"]  # its recordings have beat grids
    audio_cfg = engine.preset.config.audio
    assert audio_cfg.phase == "vocoder" and audio_cfg.loudness_lufs is not None  # no buzz; as loud as the others
    audio = engine.generate(2.0, seed=0, conditioning={"tempo": engine.preset.condition("tempo").default})
    assert np.isfinite(audio).all() and np.abs(audio).max() > 0
    # the same command with more steps continues the GAN from its checkpoint and re-exports
    longer = train_preset(plan(setup, tmp_path, gan_steps=3))
    assert json.loads((longer / "preset.json").read_text())["training"]["gan_steps"] == 3
    # fine-tuned decoders: the same run goes on, decoder2 learns the folder, and the preset ships its own networks
    own = train_preset(plan(setup, tmp_path, gan_steps=3, decoder_steps=2))
    assert {"decoder1.onnx", "decoder2.onnx", "encoder1.onnx", "encoder2.onnx"} <= {p.name for p in own.iterdir()}
    ft = load_checkpoint(tmp_path / "run" / "decoders" / "ae" / "checkpoint.pt")["networks"]
    shared = load_checkpoint(setup[0] / "checkpoint.pt")["networks"]
    moved = {net: any(not torch.equal(ft[net][k].float(), shared[net][k].float()) for k in ft[net]) for net in shared}
    assert moved["decoder2"] and not any(moved[n] for n in ("encoder1", "encoder2", "decoder1"))  # latents valid
    engine = Engine.load(own, threads=1)
    assert np.isfinite(engine.generate(1.0, seed=0)).all()


def test_a_prepared_dataset_is_trained_as_it_is_and_checked_like_a_folder(setup, tmp_path, caplog) -> None:
    with caplog.at_level(logging.INFO, logger="training.latent_data"):
        train_preset(plan(setup, tmp_path, gan_steps=1, balance=True))  # prepares run/data from the folder
    assert "balancing tempo" in caplog.text  # every tempo range of the folder drawn equally often
    dataset = str(tmp_path / "run" / "data")
    again = train_preset(plan(setup, tmp_path, folder=dataset, run=str(tmp_path / "again"), name="again", gan_steps=1))
    assert not (tmp_path / "again" / "data").exists()  # not prepared a second time
    assert (again / "generator.onnx").is_file()
    # the same run, its GAN then fine-tuned with the beat-onset term, exported from that
    beat = train_preset(plan(setup, tmp_path, folder=dataset, run=str(tmp_path / "again"), name="again", gan_steps=1,
                             beat_steps=2))
    stored = load_checkpoint(tmp_path / "again" / "beat" / "gan" / "checkpoint.pt")
    assert stored["step"] == 2 and "gan/beat_onsets" in stored["metrics"]
    assert json.loads((beat / "preset.json").read_text())["training"]["gan_steps"] == 2
    # snapshots asked for later: the beat-onset fine-tune starts again from the snapshot that now plays
    train_preset(plan(setup, tmp_path, folder=dataset, run=str(tmp_path / "again"), name="again", gan_steps=2,
                      select_every=1, beat_steps=2))
    stored = load_checkpoint(tmp_path / "again" / "beat" / "gan" / "checkpoint.pt")
    assert Path(stored["config"]["init_from"]).parent.name == "snapshots" and stored["step"] == 2
    with pytest.raises(TrainingError, match=r"holds 1\.3 minutes of usable audio .* at least 30 minutes"):
        train_preset(plan(setup, tmp_path, folder=dataset, run=str(tmp_path / "short"), min_minutes=30.0))
    assert not (tmp_path / "short" / "gan").exists()


def test_the_gan_snapshot_that_follows_the_tempo_best_plays_and_a_rerun_measures_nothing_again(setup, tmp_path):
    preset = train_preset(plan(setup, tmp_path, gan_steps=4, select_every=2))
    run = tmp_path / "run"
    assert sorted(p.name for p in (run / "gan" / "snapshots").iterdir()) == ["step_2.pt", "step_4.pt"]
    store = run / "select" / "scores.json"
    scores = json.loads(store.read_text())["scores"]
    assert set(scores) == {"2", "4"} and all(0.0 <= s["within_tolerance"] <= 1.0 for s in scores.values())
    best = max(scores, key=lambda k: (scores[k]["score"], int(k)))
    training = json.loads((preset / "preset.json").read_text())["training"]
    assert training["gan_steps"] == int(best)  # the preset plays the chosen snapshot
    assert training["gan_snapshot"].startswith(f"step {int(best):,} of 2 snapshots, chosen on seeds 100-101 by clips")
    measured = store.stat().st_mtime_ns
    train_preset(plan(setup, tmp_path, gan_steps=4, select_every=2))
    assert store.stat().st_mtime_ns == measured


def test_what_cannot_work_is_refused_before_training(setup, tmp_path) -> None:
    with pytest.raises(SharedAutoencoderError, match="no shared autoencoder at .*nowhere: the folder does not exist"):
        train_preset(plan(setup, tmp_path, autoencoder_dir=str(tmp_path / "nowhere")))
    with pytest.raises(TrainingError, match="--condition 'loudness'"):
        plan(setup, tmp_path, condition="loudness")
    with pytest.raises(TrainingError, match="--lr must be a finite number above 0, got nan"):
        plan(setup, tmp_path, lr=float("nan"))
    with pytest.raises(TrainingError, match="--decoder-steps and --beat-steps must be 0 .off. or more, got -1"):
        plan(setup, tmp_path, decoder_steps=-1)
    with pytest.raises(TrainingError, match="--condition density has no beat to strengthen"):
        plan(setup, tmp_path, condition="density", beat_steps=100)
    with pytest.raises(TrainingError, match="--condition none has none"):
        plan(setup, tmp_path, condition="none", balance=True)
    with pytest.raises(TrainingError, match="--select-every must be 0 .the last step plays. or more, got -1"):
        plan(setup, tmp_path, select_every=-1)
    with pytest.raises(TrainingError, match="--half-len must be a power of two"):
        plan(setup, tmp_path, half_len=48)
    with pytest.raises(Exception, match="minutes"):
        train_preset(plan(setup, tmp_path, min_minutes=30.0))
    assert not (tmp_path / "run" / "gan").exists()


def test_tempo_adds_the_beat_position_only_when_the_data_has_a_beat_grid() -> None:
    assert gan_conditions("tempo", {"tempo", "first_downbeat_s", "beats_per_bar"}) == ("tempo", "beat")
    assert gan_conditions("tempo", {"tempo", "first_beat_s"}) == ("tempo", "beat")  # recordings: a beat grid
    assert gan_conditions("tempo", {"tempo"}) == ("tempo",)
    assert gan_conditions("none", {"tempo"}) == ()
