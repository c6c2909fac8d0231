"""Latent codec and cache: any length, mono-safe, labels and curves aligned, interrupted runs resume."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tests.training.tiny_dataset import make_tiny_dataset, tiny_model
from training.encode import LatentCache, decode_latents, encode_audio, encode_dataset, fit_curve, load_autoencoder
from training.errors import CheckpointError, TrainingError
from training.loop_ae import run_autoencoder
from training.run_configs import AeTrainConfig


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("enc")
    data = make_tiny_dataset(root / "data", seconds=2.0, chunks=2)
    ae = run_autoencoder(AeTrainConfig(dataset=str(data), run_dir=str(root / "run"), model=tiny_model(),
                                       steps_level1=1, steps_level2=1, batch=2, device="cpu", preview_every=0,
                                       tensorboard=False, progress=False))
    return data, ae.checkpoint


@pytest.mark.parametrize("samples,steps", [(1, 1), (4096, 1), (4097, 2), (44100, 11)])
def test_any_length_gives_ceil_steps(setup, samples, steps):
    cfg, nets = load_autoencoder(setup[1])
    audio = np.random.default_rng(0).uniform(-0.5, 0.5, (2, samples)).astype(np.float32)
    lat = encode_audio(nets["encoder1"], nets["encoder2"], audio, cfg)
    assert lat.shape == (steps, 2 * cfg.autoencoder.latent_dim) and lat.dtype == np.float32
    assert np.all(np.abs(lat) <= 1)


def test_mono_is_two_identical_channels_and_decodes(setup):
    cfg, nets = load_autoencoder(setup[1])
    mono = np.sin(np.arange(20000) * 0.05).astype(np.float32)
    d = cfg.autoencoder.latent_dim
    for audio in (mono, mono[None]):
        lat = encode_audio(nets["encoder1"], nets["encoder2"], audio, cfg)
        assert np.array_equal(lat[:, :d], lat[:, d:])
    out = decode_latents(nets["decoder2"], nets["decoder1"], lat, cfg, seed=0)
    assert out.shape == (2, lat.shape[0] * 4096 + 768) and np.abs(out).max() <= 1
    assert np.array_equal(out, decode_latents(nets["decoder2"], nets["decoder1"], lat, cfg, seed=0))
    with pytest.raises(TrainingError, match=r"\(3, 100\)"):
        encode_audio(nets["encoder1"], nets["encoder2"], np.zeros((3, 100), np.float32), cfg)


def test_cache_holds_latents_labels_and_curves_and_resumes(setup, tmp_path):
    data, ckpt = setup
    cache = encode_dataset(data, ckpt, tmp_path / "lat", progress=False)
    index = json.loads((tmp_path / "lat" / "latents.json").read_text())
    assert index["format"] == "musika-latents/1" and len(cache) == 2  # the held-out chunk is not encoded
    for entry in cache.entries():
        steps = entry.latents.shape[0]
        assert steps == int(np.ceil(2.0 * 44100 / 4096))
        assert entry.curves["density"].shape == (steps,)
        assert entry.labels["tempo"] in (120.0, 128.0)
    # an interrupted run: one file missing -> only it is encoded again, the others are reused untouched
    first = tmp_path / "lat" / "c00.npy"
    second = tmp_path / "lat" / "c01.npy"
    mtime = second.stat().st_mtime_ns
    before = np.load(first)
    first.unlink()
    (tmp_path / "lat" / "latents.json").unlink()
    encode_dataset(data, ckpt, tmp_path / "lat", progress=False)
    assert second.stat().st_mtime_ns == mtime
    assert np.array_equal(np.load(first), before)
    assert LatentCache(tmp_path / "lat").model == tiny_model()


def test_errors_name_the_problem(setup, tmp_path):
    with pytest.raises(TrainingError, match="not a latent cache"):
        LatentCache(tmp_path)
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_autoencoder(tmp_path / "missing.pt")


def test_fit_curve():
    assert np.array_equal(fit_curve(np.arange(5), 3), [0, 1, 2])
    assert np.array_equal(fit_curve(np.arange(2), 4), [0, 1, 1, 1])
    assert np.isnan(fit_curve(np.zeros(0), 2)).all()


def test_previews_of_a_gan_on_a_shared_autoencoder_play_the_phase_vocoder_as_its_presets_do(setup, tmp_path):
    from training.encode import default_phase

    shared = tmp_path / "_autoencoders" / "mine"
    shared.mkdir(parents=True)
    (shared / "checkpoint.pt").write_bytes(b"")
    assert default_phase(setup[1]) == "decoder" and default_phase(None) == "decoder"  # a preset's own autoencoder
    assert default_phase(shared / "checkpoint.pt") == "decoder"  # not a shared folder yet
    (shared / "autoencoder.json").write_text("{}")
    assert default_phase(shared / "checkpoint.pt") == "vocoder"
    cfg, nets = load_autoencoder(setup[1])
    lat = np.random.default_rng(1).uniform(-1, 1, (3, 2 * cfg.autoencoder.latent_dim)).astype(np.float32)
    own = decode_latents(nets["decoder2"], nets["decoder1"], lat, cfg, seed=0)
    made = decode_latents(nets["decoder2"], nets["decoder1"], lat, cfg, seed=0, phase="vocoder")
    assert made.shape == own.shape and np.isfinite(made).all() and np.abs(made).max() <= 1
    assert not np.allclose(made, own)  # the phase is made from the magnitudes, not decoder1's
