"""A shared autoencoder: exported once, presets point at it, loading checks its files, mismatches are refused."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from generator.errors import PresetError
from generator.runtime.engine import Engine
from generator.runtime.preset import load_preset
from tests.training.test_models import TOY, toy_nets
from training.autoencoder_export import export_autoencoder
from training.checkpoint import save_checkpoint
from training.encode import load_autoencoder
from training.export import export_preset
from training.shared_autoencoder import (
    AE_NETWORKS,
    CHECKPOINT,
    SharedAutoencoderError,
    read_autoencoder,
)

torch.set_num_threads(1)


def _ae_checkpoint(path: Path, cfg=TOY) -> Path:
    nets = toy_nets(cfg)
    state = {"kind": "autoencoder", "format": 1, "step": 7, "model": cfg.to_dict(), "config": {"steps_level1": 4},
             "networks": {k: v.state_dict() for k, v in nets.items() if k in AE_NETWORKS},
             "optimizers": {}, "metrics": {"ae1/stft": 1.0}}
    return save_checkpoint(path, state)


@pytest.fixture(scope="module")
def shared(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("shared")
    ckpt = _ae_checkpoint(root / "train.pt")
    rng = np.random.default_rng(0)
    audio = [(0.1 * rng.standard_normal((2, 44100))).astype(np.float32) for _ in range(2)]
    return export_autoencoder(ckpt, "toy-ae", audio, out_root=root / "presets" / "_autoencoders",
                              description="toy", license="CC0-1.0", training={"notes": ["a note"]})


def test_export_writes_onnx_int8_a_weights_only_checkpoint_and_a_manifest(shared: Path) -> None:
    data = read_autoencoder(shared)
    assert set(data["models"]) == set(AE_NETWORKS) and data["training"]["steps"] == 7
    assert set(data["int8"]["files"]) == {"decoder1", "decoder2"} and "passed" in data["int8"]["quality"]
    state = torch.load(shared / CHECKPOINT, weights_only=True)
    assert state["weights_only"] and "optimizers" not in state and "critic" not in state["networks"]
    assert all(v.dtype == torch.float16 for v in state["networks"]["decoder1"].values() if v.is_floating_point())
    cfg, nets = load_autoencoder(shared / CHECKPOINT)  # what `musika train gan --autoencoder` reads
    assert cfg.autoencoder == TOY.autoencoder and next(nets["decoder1"].parameters()).dtype == torch.float32


def test_a_preset_on_the_shared_autoencoder_plays_and_checks_its_files(shared: Path, tmp_path: Path) -> None:
    presets = shared.parent.parent
    gen = {"generator": toy_nets(TOY)["generator"]}
    out = export_preset(gen, TOY, presets, "toy", "on the shared autoencoder", autoencoder_dir=shared)
    assert sorted(p.name for p in out.iterdir() if p.suffix == ".onnx") == ["generator.onnx"]
    entries = json.loads((out / "preset.json").read_text())["models"]
    assert entries["decoder1"]["file"] == "../_autoencoders/toy-ae/decoder1.onnx"
    audio = Engine.load(out, threads=1).generate(2.0, seed=0)
    assert audio.shape[0] == 2 and np.isfinite(audio).all() and np.abs(audio).max() > 0

    copy = tmp_path / "copy"
    shutil.copytree(presets, copy)
    target = copy / "_autoencoders" / "toy-ae" / "decoder2.onnx"
    target.write_bytes(target.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(PresetError, match=r"decoder2.onnx in the shared autoencoder .*_autoencoders/toy-ae fails"):
        load_preset(copy / "toy")
    shutil.rmtree(copy / "_autoencoders")
    with pytest.raises(PresetError, match=r"plays on the shared autoencoder .*toy-ae.*\(the folder is missing\)"
                                          r".*git checkout"):
        load_preset(copy / "toy")


def test_a_model_that_does_not_fit_the_shared_autoencoder_is_refused_with_both_configs(shared: Path,
                                                                                        tmp_path: Path) -> None:
    other = dataclasses.replace(TOY, autoencoder=dataclasses.replace(TOY.autoencoder, latent_dim=16))
    gen = {"generator": toy_nets(other)["generator"]}
    with pytest.raises(SharedAutoencoderError, match=r"autoencoder configuration does not match.*latent_dim': 64"
                                                     r".*latent_dim': 16"):
        export_preset(gen, other, tmp_path, "misfit", "", autoencoder_dir=shared)
    assert not (tmp_path / "misfit").exists()


def test_the_shipped_shared_autoencoder_verifies_fits_its_budget_and_plays_back_kicks_on_time():
    """presets/_autoencoders/universal: every file matches its hash, the folder is at most 60 MB, its card has
    figures for every domain, and its weights-only checkpoint reconstructs a kick every half second through both
    levels with the eval's own figures (training.ae_eval.clip_figures): the pulse kept, the attacks within 5 ms of
    the originals (the card's bar), nearly every onset found, and audible (these weights: -3.6 ms, onset F 0.89,
    peak 0.14; the weights before them measured -7.3 ms and peak 0.03)."""
    from training.ae_eval import clip_figures, torch_codec
    from training.preset_pipeline import DEFAULT_AUTOENCODER

    data = read_autoencoder(DEFAULT_AUTOENCODER)
    assert sum(f.stat().st_size for f in DEFAULT_AUTOENCODER.iterdir()) <= 60 * 1024 * 1024
    domains = data["metrics"]["domains"]
    assert {"techno", "piano", "classical"} <= set(domains)
    assert all(np.isfinite(d["level2"]["mr_log_spectral_distance_db"]) for d in domains.values())
    reconstruct, sr = torch_codec(DEFAULT_AUTOENCODER / CHECKPOINT)
    t = np.arange(int(0.25 * sr)) / sr
    kick = np.sin(2 * np.pi * (50 + 100 * np.exp(-t * 30)) * t) * np.exp(-t * 12)
    y = np.zeros(3 * sr)
    for start in range(sr // 4, 3 * sr - kick.size, sr // 2):
        y[start : start + kick.size] += 0.8 * kick
    audio = np.stack([y, y]).astype(np.float32)
    out = reconstruct(audio, 2)
    assert np.isfinite(out).all() and np.abs(out).max() > 0.05
    figures = clip_figures(audio, out, sr)
    assert figures["tempo_kept"] == 1.0 and abs(figures["onset_offset_ms"]) <= 5.0, figures
    assert figures["onset_f"] >= 0.8, figures


def test_musika_export_on_a_shared_autoencoder_plays_the_phase_vocoder_unless_asked(shared: Path) -> None:
    """decoder1's phase on the shared autoencoder carries a 43 Hz comb (its card: 20-5,000x the original's), so a
    preset exported on it plays the vocoder's phase, as `musika train preset` makes them, unless --phase says so."""
    from musika.cli import main

    gan = {"kind": "gan", "format": 1, "step": 3, "model": TOY.to_dict(), "conditioning": [],
           "metrics": {},
           "config": {"conditions": [], "latents": "toy", "batch": 2, "lr": 1e-4, "cond_dropout": 0.1,
                      "ema_decay": 0.99},
           "networks": {"generator_ema": toy_nets(TOY)["generator"].state_dict()}}
    ckpt = save_checkpoint(shared.parent / "gan.pt", gan)
    presets = shared.parent.parent
    for name, extra, phase in (("plain", [], "vocoder"), ("asked", ["--phase", "decoder"], "decoder")):
        assert main(["export", "--gan", str(ckpt), "--autoencoder-dir", str(shared), "--name", name,
                     "--out", str(presets), *extra]) == 0
        assert json.loads((presets / name / "preset.json").read_text())["audio"]["phase"] == phase
