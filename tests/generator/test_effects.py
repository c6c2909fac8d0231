"""Effect chains: built-ins by name with checked parameters, VST3 plugins from Debian's zam-plugins."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from generator.offline.effects import EffectChain, EffectError, build_builtin, builtin_effects, builtin_params
from generator.offline.session import EffectSpec

SR = 44100
VST3_DIR = Path("/usr/lib/vst3")
ZAMCOMPX2 = VST3_DIR / "ZamCompX2.vst3"
ZAMCOMP = VST3_DIR / "ZamComp.vst3"
needs_zam = pytest.mark.skipif(not ZAMCOMPX2.exists(), reason="zam-plugins not installed (apt install zam-plugins)")


def fx(builtin=None, **params):
    return EffectSpec(where="stems[0].effects[0]", builtin=builtin, params=params)


def noise_bursts(seconds=1.0, seed=0):
    """Stereo noise with alternating loud/quiet 100 ms bursts (dynamics for a compressor to reduce)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, int(seconds * SR))).astype(np.float32) * 0.1
    env = np.where((np.arange(x.shape[1]) // (SR // 10)) % 2 == 0, 1.0, 0.05).astype(np.float32)
    return x * env


def test_builtins_listed_with_parameters():
    names = builtin_effects()
    for n in ("Compressor", "Reverb", "Delay", "Distortion", "Chorus", "Limiter", "LadderFilter", "HighpassFilter"):
        assert n in names
    assert "Pedalboard" not in names and "VST3Plugin" not in names
    assert set(builtin_params("Compressor")) == {"threshold_db", "ratio", "attack_ms", "release_ms"}
    assert builtin_params("LadderFilter")["mode"].choices[:2] == ("LPF12", "HPF12")


def test_unknown_effect_lists_available():
    with pytest.raises(EffectError, match=r"unknown effect 'Reverbb'.*built-in effects: .*Compressor.*Reverb"):
        build_builtin(fx("Reverbb"))
    with pytest.raises(EffectError, match=r"did you mean 'Reverb'"):
        build_builtin(fx("reverb"))


def test_unknown_parameter_lists_parameters():
    pattern = r"\(Reverb\): unknown parameter 'size'; Reverb has: room_size \(default 0\.5\)"
    with pytest.raises(EffectError, match=pattern):
        build_builtin(fx("Reverb", size=0.5))


@pytest.mark.parametrize(
    ("name", "params", "pattern"),
    [
        ("Reverb", {"room_size": 1.5}, r"room_size = 1\.5 is out of range; valid: \[0, 1\]"),
        ("Compressor", {"ratio": 0.5}, r"ratio = 0\.5 is out of range; valid: \[1, 100\]"),
        ("Delay", {"feedback": "lots"}, r"feedback = 'lots' must be a number"),
        ("LadderFilter", {"mode": "LP"}, r"mode = 'LP' is not valid; use one of LPF12, HPF12"),
        ("Convolution", {"impulse_response_filename": "ir.wav"}, r"file .*ir\.wav does not exist"),
        ("Convolution", {}, r"parameter impulse_response_filename is required"),
    ],
)
def test_bad_parameter_values(name, params, pattern):
    with pytest.raises(EffectError, match=pattern):
        build_builtin(fx(name, **params), Path("/nonexistent"))


def test_chain_processes_and_is_deterministic():
    specs = (fx("LadderFilter", mode="LPF24", cutoff_hz=800.0), fx("Chorus"), fx("Reverb", room_size=0.7),
             EffectSpec(where="x", builtin="Distortion", bypass=True))
    chain = EffectChain(specs, SR)
    assert len(chain) == 3  # bypassed effect left out
    x = noise_bursts()
    a, b = chain.process(x), chain.process(x)
    assert a.shape == x.shape and a.dtype == np.float32
    assert np.array_equal(a, b)  # reset between calls
    assert not np.allclose(a, x)
    assert np.array_equal(EffectChain((), SR).process(x), x)


def test_compressor_reduces_dynamics():
    x = noise_bursts()
    y = EffectChain((fx("Compressor", threshold_db=-40.0, ratio=10.0, attack_ms=1.0, release_ms=20.0),), SR).process(x)

    def loud_quiet_db(z):
        seg = SR // 10
        rms = [np.sqrt(np.mean(z[:, i * seg + seg // 2 : (i + 1) * seg] ** 2)) for i in range(10)]
        return 20 * np.log10(np.mean(rms[0::2]) / np.mean(rms[1::2]))

    assert loud_quiet_db(x) == pytest.approx(26.0, abs=0.5)
    assert loud_quiet_db(y) < loud_quiet_db(x) - 10.0


@needs_zam
def test_vst3_stereo_plugin_loads_sets_parameters_and_compresses():
    spec = EffectSpec(where="stems[0].effects[1]", vst3=ZAMCOMPX2,
                      params={"threshold_db": -40.0, "ratio": 10.0, "attack_ms": 1.0})
    chain = EffectChain((spec,), SR)
    assert chain.board[0].threshold_db == pytest.approx(-40.0)
    x = noise_bursts()
    y = chain.process(x)
    assert y.shape == x.shape and np.isfinite(y).all()
    assert np.sqrt(np.mean(y**2)) < 0.7 * np.sqrt(np.mean(x**2))
    assert np.array_equal(y, chain.process(x))


@needs_zam
def test_vst3_mono_only_plugin_is_a_clear_error():
    spec = EffectSpec(where="stems[0].effects[0]", vst3=ZAMCOMP)
    with pytest.raises(EffectError, match=r"stems\[0\]\.effects\[0\] \(ZamComp\).*mono-only.*ZamCompX2"):
        EffectChain((spec,), SR)


@needs_zam
def test_vst3_bad_parameter_and_value():
    with pytest.raises(EffectError, match=r"unknown parameter 'thresh'; ZamCompX2 has: .*threshold_db"):
        EffectChain((EffectSpec(where="e", vst3=ZAMCOMPX2, params={"thresh": 1}),), SR)
    with pytest.raises(EffectError, match=r"parameter ratio = 1000.*out of range"):
        EffectChain((EffectSpec(where="e", vst3=ZAMCOMPX2, params={"ratio": 1000}),), SR)


@needs_zam
def test_vst3_raw_state_round_trip(tmp_path):
    chain = EffectChain((EffectSpec(where="e", vst3=ZAMCOMPX2, params={"ratio": 7.0}),), SR)
    state = tmp_path / "comp.state"
    state.write_bytes(chain.board[0].raw_state)
    default = EffectChain((EffectSpec(where="e", vst3=ZAMCOMPX2),), SR)
    restored = EffectChain((EffectSpec(where="e", vst3=ZAMCOMPX2, state=state),), SR)
    assert default.board[0].ratio != pytest.approx(7.0, abs=0.1)
    assert restored.board[0].ratio == pytest.approx(chain.board[0].ratio) == pytest.approx(7.0, abs=0.01)


def test_vst3_missing_or_broken_plugin(tmp_path):
    with pytest.raises(EffectError, match=r"VST3 plugin .*Nope\.vst3 does not exist"):
        EffectChain((EffectSpec(where="e", vst3=tmp_path / "Nope.vst3"),), SR)
    fake = tmp_path / "Fake.vst3"
    fake.write_text("not a plugin")
    with pytest.raises(EffectError, match=r"\(Fake\): VST3 plugin .*Fake\.vst3 failed to load"):
        EffectChain((EffectSpec(where="e", vst3=fake),), SR)
    if ZAMCOMPX2.exists():
        with pytest.raises(EffectError, match=r"state file .*missing\.vstpreset does not exist"):
            EffectChain((EffectSpec(where="e", vst3=ZAMCOMPX2, state=tmp_path / "missing.vstpreset"),), SR)
