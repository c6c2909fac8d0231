import numpy as np
import pytest

from generator.runtime import spectral


@pytest.fixture
def frames():
    rng = np.random.default_rng(0)
    s = rng.uniform(-1, 0.6, (300, 513)).astype(np.float32)
    p = rng.uniform(-1, 1, (300, 513)).astype(np.float32)
    return s, p


def test_stft_frame_count_and_no_centering():
    x = np.zeros(44100, np.float32)
    x[5000] = 1.0
    spec = spectral.stft(x)
    assert spec.shape == ((44100 - 1024) // 256 + 1, 513)
    # the impulse at sample 5000 lies in frames 16..19 only (frame t covers [256 t, 256 t + 1024))
    energy = np.abs(spec).sum(axis=1)
    assert set(np.nonzero(energy > 1e-6)[0]) == {16, 17, 18, 19}


def test_db_normalisation_constants():
    silence = spectral.spectrogram(np.zeros(4096, np.float32))
    assert np.allclose(silence, (-100 + 25) / 75)
    t = np.arange(44100) / 44100
    sine = spectral.spectrogram(np.sin(2 * np.pi * 1000 * t).astype(np.float32))
    assert 0.9 < sine.max() < 1.05  # full-scale sine ~ 48 dB -> ~0.98


def test_magnitude_and_phase_round_trip_reconstructs_audio():
    rng = np.random.default_rng(1)
    x = (0.3 * rng.standard_normal(30000)).astype(np.float32)
    spec = spectral.stft(x)
    y = spectral.istft(spectral.db_norm(spec), np.angle(spec) / np.pi)
    assert y.shape == ((spec.shape[0] - 1) * 256 + 1024,)
    # away from the un-normalised edges, the reconstruction is exact up to float32 precision
    assert np.abs(y[1024:-1024] - x[1024 : y.shape[0] - 1024]).max() < 1e-4


def test_synthesis_window_is_hann_over_1_5():
    assert np.allclose(spectral.synthesis_window(), spectral.hann_periodic(1024) / 1.5, atol=1e-7)


@pytest.mark.parametrize("sizes", [[1, 63, 64, 65, 107], [300], [8, 8, 8, 276], [299, 1], [127, 1, 128, 44]])
def test_streaming_istft_equals_one_pass(frames, sizes):
    s, p = frames
    one = spectral.istft(s, p)
    stream = spectral.StreamingIstft(channels=2)
    out, i = [], 0
    for n in sizes:
        chunk = stream.process(np.stack([s[i : i + n]] * 2), np.stack([p[i : i + n]] * 2))
        assert chunk.shape == (2, n * 256)
        out.append(chunk)
        i += n
    out.append(stream.flush())
    joined = np.concatenate(out, axis=1)
    assert joined.shape == (2, one.shape[0])
    assert np.abs(joined[0] - one).max() < 1e-6
    assert np.array_equal(joined[0], joined[1])


def test_istft_rejects_wrong_shapes(frames):
    s, p = frames
    with pytest.raises(ValueError, match="513"):
        spectral.istft(s[:, :100], p[:, :100])


def test_streaming_istft_matches_the_naive_complex128_rebuild(frames):
    from bench.measure import naive_istft

    s, p = frames
    fast = spectral.StreamingIstft(channels=1, workers=2)
    out = np.concatenate([fast.process(s[None], p[None]), fast.flush()], axis=1)[0]
    naive = naive_istft(s, p, spectral.DEFAULT)
    assert np.abs(out - naive).max() < 1e-5 * max(1.0, float(np.abs(naive).max()))
