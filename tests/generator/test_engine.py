import json
import shutil

import numpy as np
import pytest

from generator.errors import ConditioningError, PresetError
from generator.runtime.coords import CoordinateStream
from generator.runtime.engine import Engine
from generator.runtime.preset import load_preset


@pytest.fixture(scope="module")
def engine(tiny_preset):
    return Engine.load(tiny_preset, threads=1)


def test_generate_is_stereo_exact_length_and_deterministic(engine):
    a = engine.generate(3.0, {"tempo": 130.0, "density": 3.0}, seed=5)
    b = engine.generate(3.0, {"tempo": 130.0, "density": 3.0}, seed=5)
    c = engine.generate(3.0, {"tempo": 130.0, "density": 3.0}, seed=6)
    assert a.shape == (2, 3 * 44100) and a.dtype == np.float32
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    assert np.abs(a).max() <= 1.0 and np.abs(a).max() > 0


@pytest.mark.parametrize("phase", ["decoder", "vocoder", "vocoder-joins"])
def test_streaming_decode_equals_one_pass(tiny_preset, phase):
    engine = Engine.load(tiny_preset, threads=1, phase=phase)
    cfg = engine.config
    coords = CoordinateStream(cfg.gan, seed=1).halves(0, 4)
    lat = engine.latents(coords, {"tempo": 140.0}, seed=1)
    whole = engine.decode(lat, seed=1)
    state = engine.new_decode_state()
    parts = [engine.decode(lat[i : i + n], seed=1, state=state) for i, n in ((0, 4), (4, 12), (16, 32), (48, 16))]
    # equal up to float32 rounding: ONNX Runtime's GEMM blocking depends on the batch size (and the vocoder's phase
    # sums run in float64 per call)
    np.testing.assert_allclose(np.concatenate(parts, axis=1), whole, atol=1e-5)
    with pytest.raises(PresetError, match="phase must be one of decoder, vocoder, vocoder-joins"):
        Engine.load(tiny_preset, threads=1, phase="griffin-lim")


def test_halves_are_independent_and_chunking_does_not_change_latents(engine):
    stream = CoordinateStream(engine.config.gan, seed=2)
    all4 = engine.latents(stream.halves(0, 4), seed=2)
    last2 = engine.latents(stream.halves(2, 2), seed=2, first_half=2)
    assert np.allclose(all4[2 * 16 :], last2, atol=1e-6)


def test_conditioning_changes_output_and_is_validated(engine):
    coords = CoordinateStream(engine.config.gan, seed=0).halves(0, 2)
    slow = engine.latents(coords, {"tempo": 120.0}, seed=0)
    fast = engine.latents(coords, {"tempo": 160.0}, seed=0)
    uncond = engine.latents(coords, {"tempo": float("nan"), "density": float("nan")}, seed=0)
    assert not np.allclose(slow, fast) and np.all(np.isfinite(uncond))
    curve = np.linspace(1.0, 10.0, 32)
    assert engine.latents(coords, {"density": curve}, seed=0).shape == (32, 2 * engine.config.autoencoder.latent_dim)
    with pytest.raises(ConditioningError, match="118..162"):
        engine.latents(coords, {"tempo": -5.0})
    with pytest.raises(ConditioningError, match="not a finite"):
        engine.latents(coords, {"tempo": float("inf")})
    with pytest.raises(ConditioningError, match="no conditioning"):
        engine.latents(coords, {"swing": 0.5})


def test_corrupt_model_file_is_named(tiny_preset, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_preset, broken)
    with open(broken / "decoder1.onnx", "r+b") as fh:
        fh.seek(100)
        fh.write(b"\x00\x01\x02\x03")
    with pytest.raises(PresetError, match=r"decoder1\.onnx fails its integrity check.*musika export"):
        load_preset(broken)


def test_invalid_preset_json_and_unknown_format(tiny_preset, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(tiny_preset, bad)
    (bad / "preset.json").write_text("{ not json")
    with pytest.raises(PresetError, match="not valid JSON"):
        load_preset(bad)
    data = json.loads((tiny_preset / "preset.json").read_text())
    data["format"] = "musika-preset/9"
    (bad / "preset.json").write_text(json.dumps(data))
    with pytest.raises(PresetError, match="musika-preset/1"):
        load_preset(bad)
    del data["models"]["decoder2"]
    data["format"] = "musika-preset/1"
    (bad / "preset.json").write_text(json.dumps(data))
    with pytest.raises(PresetError, match="decoder2"):
        load_preset(bad)


def test_missing_model_file_and_unknown_preset(tiny_preset, tmp_path):
    gone = tmp_path / "gone"
    shutil.copytree(tiny_preset, gone)
    (gone / "generator.onnx").unlink()
    with pytest.raises(PresetError, match="generator model file .* is missing"):
        load_preset(gone)
    with pytest.raises(PresetError, match="unknown preset 'nope'"):
        load_preset("nope")
