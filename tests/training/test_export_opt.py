"""Exactness of the export-time decoder rewrite, the int8 variants and their selection by the engine."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from generator.errors import PresetError  # noqa: E402
from generator.runtime.engine import Engine  # noqa: E402
from generator.runtime.model_config import ModelConfig  # noqa: E402
from generator.runtime.preset import Condition  # noqa: E402
from training.errors import ExportError  # noqa: E402
from training.export import export_preset  # noqa: E402
from training.export_opt import fast_network, quantise_int8  # noqa: E402
from training.models import build_networks  # noqa: E402

CONDS = [Condition("tempo", "scalar", "BPM", 118.0, 162.0, 128.0, "log")]


def _nets(seed: int = 0, noise: float = 0.2):
    """Tiny random networks; noise-injection scalars set non-zero so the noise path is exercised."""
    torch.manual_seed(seed)
    torch.set_num_threads(1)
    cfg = ModelConfig().scaled(ae=0.125, gan=0.125, half_len=16).with_conditioning(1, 0)
    nets = {k: v for k, v in build_networks(cfg).items() if k in ("generator", "decoder2", "decoder1")}
    with torch.no_grad():
        for net in nets.values():
            for m in net.modules():
                if m.__class__.__name__ == "NoiseInjection":
                    m.weight.fill_(noise)
    return nets, cfg


@pytest.fixture(scope="module")
def presets(tmp_path_factory):
    """The same weights exported three ways: faithful, exact rewrite, exact rewrite + static int8."""
    root = tmp_path_factory.mktemp("opt")
    nets, cfg = _nets()
    kw = dict(conditioning=CONDS, license="GPL-3.0-or-later")
    return {
        "none": export_preset(nets, cfg, root, "faithful", "faithful graphs", optimise="none", **kw),
        "exact": export_preset(nets, cfg, root, "exact", "exact rewrite", **kw),
        "int8": export_preset(nets, cfg, root, "int8", "exact rewrite + int8", int8="static", **kw),
    }


@pytest.mark.parametrize("name", ["decoder1", "decoder2"])
def test_rewrite_matches_the_original_network_in_torch(name):
    nets, cfg = _nets(seed=3)
    original = nets[name].eval()
    fast = fast_network(name, original)
    assert fast is not None and fast_network("generator", nets["generator"]) is None
    x_shape = (5, cfg.autoencoder.dec1_window, cfg.autoencoder.frame_dim) if name == "decoder1" else (
        5, cfg.autoencoder.dec2_window, cfg.autoencoder.latent_dim)
    x = torch.rand(x_shape) * 2 - 1
    noise = torch.randn(5, original.noise_len)
    with torch.no_grad():
        a, b = original(x, noise), fast(x, noise)
    for u, v in zip(a if isinstance(a, tuple) else (a,), b if isinstance(b, tuple) else (b,), strict=True):
        assert u.shape == v.shape
        assert float((u - v).abs().max()) < 1e-5


def test_exact_rewrite_decodes_like_the_faithful_graphs(presets):
    faithful = Engine.load(presets["none"], threads=1)
    exact = Engine.load(presets["exact"], threads=1)
    assert exact.precision == "fp32"
    lat = np.tanh(np.random.default_rng(0).standard_normal((32, 2 * faithful.config.autoencoder.latent_dim)))
    a = faithful.decode(lat.astype(np.float32), seed=4)
    b = exact.decode(lat.astype(np.float32), seed=4)
    assert np.max(np.abs(a - b)) < 1e-4
    # and the whole chain, generator included (the generator graph is the same in both)
    ga = faithful.generate(2.0, {"tempo": 140.0}, seed=2)
    gb = exact.generate(2.0, {"tempo": 140.0}, seed=2)
    assert np.max(np.abs(ga - gb)) < 1e-4 and np.abs(ga).max() > 0


def test_fast_istft_matches_the_reference_istft(presets):
    fast = Engine.load(presets["exact"], threads=1)
    ref = Engine.load(presets["exact"], threads=1, istft="reference")
    lat = np.tanh(np.random.default_rng(1).standard_normal((64, 2 * fast.config.autoencoder.latent_dim)))
    a = fast.decode(lat.astype(np.float32), seed=1)
    b = ref.decode(lat.astype(np.float32), seed=1)
    assert np.max(np.abs(a - b)) < 1e-5


def test_int8_variant_is_recorded_checked_and_selected(presets):
    data = json.loads((presets["int8"] / "preset.json").read_text())
    note = data["metrics"]["optimisation"]["int8"]
    assert set(note["files"]) == {"decoder1", "decoder2"}
    q = note["quality"]
    assert q["noise_seed_lsd_db"] > 0 and q["int8_lsd_db"] > 0
    assert q["passed"] == (q["int8_lsd_db"] < 0.1 * q["noise_seed_lsd_db"])
    auto = Engine.load(presets["int8"], threads=1)
    fp32 = Engine.load(presets["int8"], threads=1, precision="fp32")
    assert fp32.precision == "fp32" and fp32.model_files["decoder1"].name == "decoder1.onnx"
    assert auto.precision == ("int8" if q["passed"] else "fp32")
    forced = Engine.load(presets["int8"], threads=1, precision="int8")
    assert forced.model_files["decoder1"].name == "decoder1.int8.onnx"
    a = forced.generate(2.0, seed=3)
    b = fp32.generate(2.0, seed=3)
    assert a.shape == b.shape and np.all(np.isfinite(a)) and not np.array_equal(a, b)
    # static scales: decoding in chunks gives the same audio as one call (up to float32 rounding)
    lat = np.tanh(np.random.default_rng(2).standard_normal((32, 2 * forced.config.autoencoder.latent_dim)))
    lat = lat.astype(np.float32)
    whole = forced.decode(lat, seed=5)
    state = forced.new_decode_state()
    parts = np.concatenate([forced.decode(lat[i : i + 8], seed=5, state=state) for i in range(0, 32, 8)], axis=1)
    assert np.mean(np.abs(parts - whole) > 1e-4) < 1e-3


def test_int8_errors_name_the_problem(presets, tmp_path):
    with pytest.raises(PresetError, match="ships no int8"):
        Engine.load(presets["exact"], threads=1, precision="int8")
    with pytest.raises(PresetError, match="precision must be"):
        Engine.load(presets["exact"], threads=1, precision="fp16")
    bad = tmp_path / "bad"
    import shutil

    shutil.copytree(presets["int8"], bad)
    with open(bad / "decoder1.int8.onnx", "ab") as fh:
        fh.write(b"\0")
    with pytest.raises(PresetError, match="integrity"):
        Engine.load(bad, threads=1, precision="int8")
    nets, cfg = _nets()
    with pytest.raises(ExportError, match="int8 must be"):
        export_preset(nets, cfg, tmp_path, "x", "x", conditioning=CONDS, optimise="none", int8="static")
    with pytest.raises(ExportError, match="optimise must be"):
        export_preset(nets, cfg, tmp_path, "x", "x", conditioning=CONDS, optimise="fast")
    with pytest.raises(ExportError, match="method"):
        quantise_int8(presets["exact"] / "decoder1.onnx", tmp_path / "q.onnx", None, method="int4")
