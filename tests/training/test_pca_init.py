"""Level 1 started as the training frames' principal components: the first step already keeps the harmonics a
linear projection keeps, and training goes on from there."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from tests.training.tiny_dataset import clicks_and_sine, make_tiny_dataset, tiny_model
from training import spectral_torch as S
from training.errors import TrainingError
from training.loop_ae import run_autoencoder
from training.loop_utils import read_metrics
from training.models import Decoder1, Encoder1
from training.pca_init import principal_frames, start_level1
from training.run_configs import AeTrainConfig

MODEL = tiny_model()
LINEAR = dataclasses.replace(MODEL, autoencoder=dataclasses.replace(MODEL.autoencoder, level1_linear=True))


@pytest.fixture(autouse=True)
def one_thread():
    torch.set_num_threads(1)


def frames_of(audio: np.ndarray) -> torch.Tensor:
    return S.spectrogram(torch.from_numpy(audio), MODEL.audio).clamp(-1.0, 1.0)  # (channels, T, bins)


def harmonic_frames() -> torch.Tensor:
    """Clicks and sines at several pitches, with their harmonics (the tiny dataset's material), (T, bins)."""
    parts = [frames_of(clicks_and_sine(120.0 + 8 * i, 2.0, 110.0 * (1 + i), seed=i)) for i in range(6)]
    return torch.cat([p.reshape(-1, MODEL.audio.bins) for p in parts])


def level1(encoder1: Encoder1, decoder1: Decoder1, frames: torch.Tensor) -> torch.Tensor:
    """Frames through encoder1 and decoder1's magnitude, whole decoder windows, the noise at zero."""
    win = MODEL.autoencoder.dec1_window
    t = (frames.shape[0] // win) * win
    with torch.no_grad():
        z = encoder1(frames[None, :t]).reshape(-1, win, MODEL.autoencoder.frame_dim)
        mag, _ = decoder1(z, torch.zeros(z.shape[0], decoder1.noise_len))
    return mag.reshape(t, -1)


def test_the_first_step_reconstructs_what_the_principal_components_keep():
    frames = harmonic_frames()
    pca = principal_frames(frames.numpy(), MODEL.autoencoder.frame_dim)
    torch.manual_seed(0)
    enc, dec = Encoder1(LINEAR.autoencoder, LINEAR.audio), Decoder1(LINEAR.autoencoder, LINEAR.audio)
    x = frames.numpy()
    linear = (x - pca.mean) @ pca.components.T @ pca.components + pca.mean
    at_random = level1(enc, dec, frames).numpy()
    start_level1(enc, dec, pca)
    started = level1(enc, dec, frames).numpy()
    n = started.shape[0]
    err = lambda y: float(np.mean(np.abs(y - x[:n])) * MODEL.audio.db_sigma)  # noqa: E731 - dB of power
    # the linear projection's quality, less what the encoder's tanh takes from the components' tails
    assert err(started) < err(linear[:n]) + 2.0
    assert err(started) < 0.3 * err(at_random)
    # the harmonics are there: the spectrum's peaks and valleys, not an envelope
    peaky = lambda y: float(np.mean(np.abs(np.diff(y[:, 5:200], axis=1))))  # noqa: E731
    assert peaky(started) > 0.7 * peaky(x[:n])


def test_bad_starts_are_refused_with_the_reason():
    with pytest.raises(ValueError, match="needs at least 64 frames"):
        principal_frames(np.zeros((10, MODEL.audio.bins)), 64)
    with pytest.raises(ValueError, match="vary along fewer than 64 directions"):
        principal_frames(np.ones((200, MODEL.audio.bins)), 64)
    pca = principal_frames(harmonic_frames().numpy(), 64)
    plain = Encoder1(MODEL.autoencoder, MODEL.audio), Decoder1(MODEL.autoencoder, MODEL.audio)
    with pytest.raises(ValueError, match="no linear paths"):
        start_level1(*plain, pca)
    pca = principal_frames(harmonic_frames().numpy(), 32)  # 32 components for a 64-float level 1
    with pytest.raises(ValueError, match="32 components of 513 bins do not fit"):
        start_level1(Encoder1(LINEAR.autoencoder, LINEAR.audio), Decoder1(LINEAR.autoencoder, LINEAR.audio), pca)


def config(data, run, **kw) -> AeTrainConfig:
    base = dict(dataset=str(data), run_dir=str(run), model=MODEL, batch=4, lr=1e-3, device="cpu",
                steps_level1=3, steps_level2=0, adversarial_from=10, checkpoint_every=1000, preview_every=0,
                log_every=1, tensorboard=False, progress=False)
    return AeTrainConfig(**{**base, **kw})


def test_training_starts_from_the_components_and_refuses_a_second_start(tmp_path):
    data = make_tiny_dataset(tmp_path / "data")
    run_autoencoder(config(data, tmp_path / "random"))
    run_autoencoder(config(data, tmp_path / "pca", model=LINEAR, level1_init="pca", steps_level1=12, lr=1e-4))
    rows = {name: [r["ae1/magnitude"] for r in read_metrics(tmp_path / name / "ae" / "metrics.jsonl")]
            for name in ("random", "pca")}
    assert rows["pca"][0] < 0.3 * rows["random"][0], rows
    assert max(rows["pca"]) < 1.5 * rows["pca"][0], rows  # the first steps keep the start
    with pytest.raises(TrainingError, match="no --init-from"):
        run_autoencoder(config(data, tmp_path / "both", level1_init="pca", init_from=str(tmp_path / "x.pt")))
    with pytest.raises(TrainingError, match="one choice is 'pca'"):
        run_autoencoder(config(data, tmp_path / "odd", level1_init="svd"))


def test_the_linear_path_is_written_only_when_on_and_survives_the_export_rewrite():
    from generator.runtime.model_config import ModelConfig
    from training.export_opt import fast_network

    assert "level1_linear" not in MODEL.to_dict()["autoencoder"]  # older configurations read the same
    assert ModelConfig.from_dict(LINEAR.to_dict()) == LINEAR
    torch.manual_seed(3)
    dec = Decoder1(LINEAR.autoencoder, LINEAR.audio).eval()
    start_level1(Encoder1(LINEAR.autoencoder, LINEAR.audio), dec,
                 principal_frames(harmonic_frames().numpy(), MODEL.autoencoder.frame_dim))
    with torch.no_grad():
        dec.mag.weight.normal_(0, 0.01)  # both paths carry something
        x = torch.rand(3, MODEL.autoencoder.dec1_window, MODEL.autoencoder.frame_dim) * 0.6 - 0.3
        noise = torch.randn(3, dec.noise_len)
        (mag, phs), (fmag, fphs) = dec(x, noise), fast_network("decoder1", dec)(x, noise)
    assert float((mag - fmag).abs().max()) < 1e-5 and float((phs - fphs).abs().max()) < 1e-5


def test_a_level_2_run_from_a_linear_level_1_keeps_its_paths(tmp_path):
    """`musika train ae --init-from CKPT --steps-level1 0` on a principal-component level 1: the linear paths come
    over (the configuration is read from the checkpoint), and level 2 trains on them."""
    from musika.cli import build_parser
    from training.checkpoint import load_checkpoint
    from training.cli import _ae_config

    data = make_tiny_dataset(tmp_path / "data")
    run_autoencoder(config(data, tmp_path / "l1", model=LINEAR, level1_init="pca", steps_level1=2, lr=1e-4))
    first = load_checkpoint(tmp_path / "l1" / "ae" / "checkpoint.pt")
    a = build_parser().parse_args(["train", "ae", "--run", str(tmp_path / "l2"), "--data", str(data), "--ae-scale",
                                   "0.125", "--init-from", str(tmp_path / "l1" / "ae" / "checkpoint.pt"),
                                   "--steps-level1", "0", "--steps-level2", "2", "--batch", "2", "--device", "cpu"])
    run_autoencoder(dataclasses.replace(_ae_config(a), tensorboard=False, progress=False))
    second = load_checkpoint(tmp_path / "l2" / "ae" / "checkpoint.pt")
    assert second["model"]["autoencoder"]["level1_linear"] is True
    for name in ("encoder1", "decoder1"):
        a, b = first["networks"][name], second["networks"][name]
        assert all(torch.equal(a[k], b[k]) for k in a)  # level 1 frozen, carried over whole
