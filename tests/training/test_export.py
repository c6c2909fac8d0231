"""ONNX export of every network, ONNX Runtime vs PyTorch parity, and writing a whole preset."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from generator.runtime.onnx_io import INPUTS, NETWORKS, OUTPUTS
from generator.runtime.preset import Condition, load_preset
from tests.training.test_models import TOY, toy_nets
from training.errors import ExportError
from training.export import PARITY_TOL, export_onnx, export_preset, parity_check

torch.set_num_threads(1)

TEMPO = Condition(name="tempo", kind="scalar", unit="BPM", min=90, max=160, default=128, normalise="log")
DENSITY = Condition(name="density", kind="curve", unit="notes/s", min=0, max=20, default=4)


@pytest.mark.parametrize("conditioned", [False, True], ids=["plain", "conditioned"])
@pytest.mark.parametrize("net_name", NETWORKS)
def test_export_and_parity(net_name: str, conditioned: bool, tmp_path: Path) -> None:
    cfg = TOY.with_conditioning(1, 1) if conditioned else TOY
    net = toy_nets(cfg)[net_name]
    path = tmp_path / f"{net_name}.onnx"
    export_onnx(net_name, net, cfg, path)
    assert parity_check(net_name, net, path, cfg) <= PARITY_TOL
    assert parity_check(net_name, net, path, cfg, batch=3, seed=5) <= PARITY_TOL  # batch is dynamic
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    expected = [n for n in INPUTS[net_name] if conditioned or not n.startswith("cond_")]
    assert names == expected
    assert [o.name for o in session.get_outputs()] == list(OUTPUTS[net_name])
    for out in session.get_outputs():
        assert out.shape[0] == "batch" and all(isinstance(d, int) for d in out.shape[1:])
    if "noise" in names:
        assert session.get_inputs()[-1].shape == ["batch", net.noise_len]


def test_generator_onnx_treats_nan_as_absent(tmp_path: Path) -> None:
    cfg = TOY.with_conditioning(1, 0)
    gen = toy_nets(cfg)["generator"]
    path = tmp_path / "generator.onnx"
    export_onnx("generator", gen, cfg, path)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    feeds = {
        "coords": rng.standard_normal((1, cfg.gan.half_len, cfg.gan.coord_dim)).astype(np.float32),
        "cond_scalar": np.full((1, 1), np.nan, np.float32),
        "noise": np.zeros((1, gen.noise_len), np.float32),
    }
    (absent,) = session.run(None, feeds)
    with torch.no_grad():
        want = gen(torch.from_numpy(feeds["coords"]), None, None, torch.zeros(1, gen.noise_len)).numpy()
    assert np.isfinite(absent).all()
    np.testing.assert_allclose(absent, want, atol=PARITY_TOL)


def test_broken_export_fails_parity_with_a_clear_message(tmp_path: Path) -> None:
    net = toy_nets()["decoder2"]
    path = tmp_path / "decoder2.onnx"
    export_onnx("decoder2", net, TOY, path)
    with torch.no_grad():
        net.out.bias.add_(0.01)  # the ONNX file no longer matches the module
    with pytest.raises(ExportError, match=r"decoder2: ONNX Runtime and PyTorch outputs differ by 0\.01"):
        parity_check("decoder2", net, path, TOY)


def test_parity_refuses_wrong_inputs(tmp_path: Path) -> None:
    gen = toy_nets()["generator"]
    path = tmp_path / "generator.onnx"
    export_onnx("generator", gen, TOY, path)
    with pytest.raises(ExportError, match=r"generator: .* has inputs \['coords', 'noise'\]"):
        parity_check("generator", gen, path, TOY.with_conditioning(1, 0))


def test_export_preset_writes_a_loadable_preset(tmp_path: Path) -> None:
    cfg = TOY.with_conditioning(1, 1)
    nets = toy_nets(cfg)
    out = export_preset(
        nets,
        cfg,
        tmp_path,
        "toy",
        "a toy preset",
        [TEMPO, DENSITY],
        training={"steps": 0},
        metrics={"fad": None},
        license="CC0-1.0",
    )
    assert out == tmp_path / "toy"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["toy"]  # no temp dirs left
    preset = load_preset(out)  # checks every sha256
    assert set(preset.models) == set(NETWORKS)
    assert preset.config == cfg and [c.name for c in preset.conditioning] == ["tempo", "density"]
    data = json.loads((out / "preset.json").read_text())
    assert set(data["metrics"]["onnx_parity_max_abs"]) == set(NETWORKS)
    assert max(data["metrics"]["onnx_parity_max_abs"].values()) <= PARITY_TOL
    assert data["training"] == {"steps": 0} and data["license"] == "CC0-1.0"
    assert "tempo" in (out / "MODEL_CARD.md").read_text()
    # Re-exporting replaces the preset in place.
    export_preset(nets, cfg, tmp_path, "toy", "second", [TEMPO, DENSITY])
    assert load_preset(out).description == "second"


def test_export_preset_refuses_mismatch_and_leaves_nothing(tmp_path: Path) -> None:
    nets = toy_nets(TOY)
    with pytest.raises(ExportError, match="declares 1 scalar and 0 curve channels but the model was built with"):
        export_preset(nets, TOY, tmp_path, "bad", "", [TEMPO])
    nets.pop("decoder1")
    with pytest.raises(ExportError, match=r"missing required networks \['decoder1'\]"):
        export_preset(nets, TOY, tmp_path, "bad", "")
    assert list(tmp_path.iterdir()) == []
