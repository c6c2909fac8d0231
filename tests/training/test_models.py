"""The PyTorch networks: reference parameter counts, shapes, halves, noise, conditioning, layer details."""

from __future__ import annotations

import pytest
import torch

from generator.runtime.model_config import ModelConfig
from training.models import build_networks, count_params
from training.models.layers import ConvSame, NoiseInjection, pixel_shuffle_1d

torch.set_num_threads(1)

REFERENCE = {
    "generator": 15_499_530,
    "critic": 20_786_689,
    "decoder1": 12_673_291,
    "decoder2": 6_639_303,
    "encoder1": 4_790_336,
    "encoder2": 3_984_960,
}
TOY = ModelConfig().scaled(ae=0.125, gan=0.125, half_len=16)


def toy_nets(cfg: ModelConfig = TOY, seed: int = 0, noise_weight: float = 0.5) -> dict[str, torch.nn.Module]:
    """Toy networks with nonzero noise scalars so that noise matters."""
    torch.manual_seed(seed)
    nets = build_networks(cfg)
    for net in nets.values():
        for m in net.modules():
            if isinstance(m, NoiseInjection):
                m.weight.data.fill_(noise_weight)
    return nets


def test_full_size_parameter_counts_match_reference() -> None:
    with torch.device("meta"):  # no memory, no forward pass
        nets = build_networks(ModelConfig())
    for name, want in REFERENCE.items():
        got = count_params(nets[name])
        assert abs(got - want) <= 0.005 * want, f"{name}: {got} parameters, reference {want}"


def test_conditioning_only_widens_the_input_layers() -> None:
    with torch.device("meta"):
        plain = build_networks(ModelConfig())
        cond = build_networks(ModelConfig().with_conditioning(1, 1))
    assert count_params(cond["decoder1"]) == count_params(plain["decoder1"])
    extra_g = count_params(cond["generator"]) - count_params(plain["generator"])
    assert 0 < extra_g < 0.01 * REFERENCE["generator"]
    assert count_params(cond["critic"]) > count_params(plain["critic"])


def test_toy_forward_shapes() -> None:
    nets = toy_nets()
    ae, g = TOY.autoencoder, TOY.gan
    with torch.no_grad():
        lat = nets["generator"](torch.randn(3, g.half_len, g.coord_dim))
        assert lat.shape == (3, g.half_len, 2 * ae.latent_dim)
        window = nets["generator"].generate_window(torch.randn(2, g.window_len, g.coord_dim))
        assert window.shape == (2, g.window_len, 2 * ae.latent_dim)
        assert nets["critic"](window).shape == (2,)
        frames = nets["decoder2"](torch.randn(5, ae.dec2_window, ae.latent_dim))
        assert frames.shape == (5, ae.dec1_window, ae.frame_dim)
        mag, phase = nets["decoder1"](frames)
        assert mag.shape == phase.shape == (5, ae.dec1_window, TOY.audio.bins)
        assert mag.abs().max() <= 1 and phase.abs().max() <= 1
        enc = nets["encoder1"](torch.randn(2, ae.enc1_window, TOY.audio.bins))
        assert enc.shape == (2, ae.enc1_window, ae.frame_dim) and enc.abs().max() <= 1
        lat2 = nets["encoder2"](enc)
        assert lat2.shape == (2, ae.enc1_window // ae.level2_frames, ae.latent_dim)


def test_generator_halves_are_independent() -> None:
    gen = toy_nets()["generator"]
    n, half = gen.noise_len, TOY.gan.half_len
    coords = torch.randn(1, 2 * half, TOY.gan.coord_dim)
    noise = torch.randn(1, 2 * n)
    changed = coords.clone()
    changed[:, half:] = torch.randn(1, half, TOY.gan.coord_dim) * 3
    with torch.no_grad():
        a = gen.generate_window(coords, noise=noise)
        b = gen.generate_window(changed, noise=noise)
        alone = gen(coords[:, :half], noise=noise[:, :n])
    assert torch.equal(a[:, :half], b[:, :half])
    assert not torch.allclose(a[:, half:], b[:, half:])
    torch.testing.assert_close(a[:, :half], alone)


def test_explicit_noise_is_deterministic_and_none_samples() -> None:
    nets = toy_nets()
    dec = nets["decoder2"]
    x = torch.randn(2, TOY.autoencoder.dec2_window, TOY.autoencoder.latent_dim)
    zeros = torch.zeros(2, dec.noise_len)
    with torch.no_grad():
        assert torch.equal(dec(x, zeros), dec(x, zeros))
        assert not torch.allclose(dec(x, None), dec(x, None))
        assert not torch.allclose(dec(x, zeros), dec(x, torch.randn(2, dec.noise_len)))
    with pytest.raises(ValueError, match=rf"decoder2: noise must have shape \(batch, {dec.noise_len}\)"):
        dec(x, torch.zeros(2, dec.noise_len + 1))


def test_noise_length_equals_what_the_layers_consume() -> None:
    nets = toy_nets()
    for name in ("generator", "decoder1", "decoder2"):
        net = nets[name]
        assert net.noise_len > 0
    # A noise tensor whose last value is huge must change the output: the final slice is really used.
    dec1 = nets["decoder1"]
    frames = torch.randn(1, TOY.autoencoder.dec1_window, TOY.autoencoder.frame_dim)
    noise = torch.zeros(1, dec1.noise_len)
    bumped = noise.clone()
    bumped[0, -1] = 50.0
    with torch.no_grad():
        assert not torch.allclose(dec1(frames, noise)[1], dec1(frames, bumped)[1])


def test_conditioning_nan_means_absent() -> None:
    cfg = TOY.with_conditioning(1, 1)
    nets = toy_nets(cfg)
    gen, critic = nets["generator"], nets["critic"]
    half = cfg.gan.half_len
    coords = torch.randn(2, half, cfg.gan.coord_dim)
    noise = torch.zeros(2, gen.noise_len)
    nan_s, nan_c = torch.full((2, 1), float("nan")), torch.full((2, half, 1), float("nan"))
    with torch.no_grad():
        absent = gen(coords, None, None, noise)
        torch.testing.assert_close(gen(coords, nan_s, nan_c, noise), absent)
        zero = gen(coords, torch.zeros(2, 1), torch.zeros(2, half, 1), noise)
        assert torch.isfinite(absent).all() and not torch.allclose(zero, absent)  # the flag tells them apart
        lat = torch.randn(2, cfg.gan.window_len, 2 * cfg.autoencoder.latent_dim)
        c_nan = critic(lat, nan_s, torch.full((2, cfg.gan.window_len, 1), float("nan")))
        torch.testing.assert_close(c_nan, critic(lat))
        assert not torch.allclose(critic(lat, torch.ones(2, 1)), critic(lat, -torch.ones(2, 1)))
    with pytest.raises(ValueError, match=r"cond_scalar must have shape \(batch, 1\)"):
        gen(coords, torch.zeros(2, 3))


def test_bad_generator_input_is_named() -> None:
    gen = toy_nets()["generator"]
    with pytest.raises(ValueError, match=r"generator: coords must have shape \(halves, 16, 128\)"):
        gen(torch.zeros(1, 32, 128))


def test_pixel_shuffle_order() -> None:
    x = torch.arange(2 * 4 * 3, dtype=torch.float32).reshape(2, 4, 3)  # (B, C, L)
    y = pixel_shuffle_1d(x)
    assert y.shape == (2, 2, 6)
    for b in range(2):
        for c in range(2):
            for w in range(3):
                for f in range(2):
                    assert y[b, c, 2 * w + f] == x[b, 2 * c + f, w]


def test_tf_same_padding() -> None:
    assert ConvSame(1, 1, 3, 2).pads == (0, 1)
    assert ConvSame(1, 1, 4, 1).pads == (1, 2)
    assert ConvSame(1, 1, 3, 1).pads == (1, 1)
    assert ConvSame(1, 1, 4, 2).pads == (1, 1)
    assert ConvSame(1, 1, 3, 2, "valid").pads == (0, 0)
    conv = ConvSame(1, 1, 3, 2, bias=False)
    conv.weight.data[:] = torch.tensor([[[1.0, 10.0, 100.0]]])
    out = conv(torch.tensor([[[1.0, 2.0, 3.0, 4.0]]]))
    # TF: windows start at 0 and 2; the right pad supplies the missing last input.
    assert out.tolist() == [[[1 + 20 + 300.0, 3 + 40 + 0.0]]]
