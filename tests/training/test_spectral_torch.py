"""training.spectral_torch against the numpy reference generator.runtime.spectral."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from generator.runtime import spectral as ref
from training import spectral_torch as st

torch.set_num_threads(1)


@pytest.fixture
def audio() -> np.ndarray:
    rng = np.random.default_rng(0)
    t = np.arange(6000) / 44100
    tone = 0.5 * np.sin(2 * np.pi * 440 * t) + 0.1 * rng.standard_normal(t.size)
    return np.stack([tone, 0.3 * rng.standard_normal(t.size)]).astype(np.float32)


def test_stft_matches_numpy(audio: np.ndarray) -> None:
    got = st.stft(torch.from_numpy(audio)).numpy()
    want = np.stack([ref.stft(a) for a in audio])
    assert got.shape == want.shape == (2, ref.num_frames(6000), 513)
    assert np.max(np.abs(got - want)) < 1e-4 * np.max(np.abs(want))


def test_frames_start_at_zero_without_padding() -> None:
    # An impulse at sample 0 is only in frame 0 and gets weight hann[0] = 0: no centering, no reflect padding.
    x = torch.zeros(1, 2048)
    x[0, 300] = 1.0
    spec = st.stft(x)
    assert spec.shape == (1, 5, 513)
    assert torch.allclose(spec[0, 0].abs(), torch.full((513,), float(ref.hann_periodic(1024)[300])), atol=1e-6)
    assert torch.allclose(spec[0, 1].abs(), torch.full((513,), float(ref.hann_periodic(1024)[44])), atol=1e-6)
    assert spec[0, 2:].abs().max() == 0


def test_spectrogram_and_magnitude_match_numpy(audio: np.ndarray) -> None:
    got = st.spectrogram(torch.from_numpy(audio)).numpy()
    want = np.stack([ref.spectrogram(a) for a in audio])
    assert np.max(np.abs(got - want)) < 1e-4
    s = np.linspace(-1.2, 1.0, 101, dtype=np.float32)
    np.testing.assert_allclose(st.magnitude(torch.from_numpy(s)).numpy(), ref.magnitude(s), rtol=1e-5)


def test_istft_matches_numpy() -> None:
    rng = np.random.default_rng(1)
    norm = rng.uniform(-1, 0.6, (2, 20, 513)).astype(np.float32)
    phase = rng.uniform(-1, 1, (2, 20, 513)).astype(np.float32)
    got = st.istft(torch.from_numpy(norm), torch.from_numpy(phase)).numpy()
    want = np.stack([ref.istft(n, p) for n, p in zip(norm, phase, strict=True)])
    assert got.shape == want.shape == (2, 19 * 256 + 1024)
    assert np.max(np.abs(got - want)) < 1e-5 * max(1.0, np.max(np.abs(want)))


def test_round_trip_reconstructs_interior(audio: np.ndarray) -> None:
    x = torch.from_numpy(audio)
    spec = st.stft(x)
    y = st.istft(st.db_norm(spec), torch.angle(spec) / np.pi)
    n = y.shape[1]
    assert torch.max(torch.abs(y[:, 768 : n - 768] - x[:, 768 : n - 768])) < 1e-3


def test_istft_is_differentiable() -> None:
    gen = torch.Generator().manual_seed(0)
    norm = (torch.rand(1, 8, 513, generator=gen) - 0.5).requires_grad_()
    phase = (torch.rand(1, 8, 513, generator=gen) * 2 - 1).requires_grad_()
    st.istft(norm, phase).pow(2).sum().backward()
    for grad in (norm.grad, phase.grad):
        assert torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_short_audio_and_bad_shapes() -> None:
    assert st.stft(torch.zeros(3, 1000)).shape == (3, 0, 513)
    with pytest.raises(ValueError, match=r"\(batch, samples\)"):
        st.stft(torch.zeros(1000))
    with pytest.raises(ValueError, match="513"):
        st.istft(torch.zeros(1, 4, 512), torch.zeros(1, 4, 512))
