"""Shared fixtures: a real JACK server (dummy driver), started and stopped by PID."""

from __future__ import annotations

import pytest

from tests.jack_server import JackServer, jackd_available, running_jack


@pytest.fixture
def jack_server() -> JackServer:
    """A fresh `jackd -d dummy -r 44100 -p 512`; JACK_DEFAULT_SERVER points at it for the test."""
    if not jackd_available():
        pytest.skip("jackd is not installed (apt install jackd2); make test installs it when run as root")
    with running_jack() as server:
        yield server


def build_tiny_preset(root, name: str = "tiny", conditioning: str = "tempo+density", seed: int = 0):
    """A tiny random-weight preset built through the real export path (torch -> ONNX -> parity -> preset.json)."""
    import torch

    from generator.runtime.model_config import ModelConfig
    from generator.runtime.preset import Condition
    from training.export import export_preset
    from training.models import build_networks

    conds = []
    if "tempo" in conditioning:
        conds.append(Condition("tempo", "scalar", "BPM", 118.0, 162.0, 128.0, "log"))
    if "density" in conditioning:
        conds.append(Condition("density", "curve", "onsets/s", 0.5, 12.0, 4.0, "log"))
    if "beat" in conditioning:
        conds.append(Condition("beat", "phase", "beats", 0.0, 4.0, 0.0, periods=(1.0, 4.0)))
    scalars = sum(c.kind == "scalar" for c in conds)
    curves = sum(c.channels for c in conds if c.kind != "scalar")
    cfg = ModelConfig().scaled(ae=0.125, gan=0.125, half_len=16).with_conditioning(scalars, curves)
    torch.manual_seed(seed)
    torch.set_num_threads(1)
    nets = build_networks(cfg)
    return export_preset(
        nets, cfg, root, name, "tiny random-weight preset for tests", conditioning=conds, license="GPL-3.0-or-later"
    )


@pytest.fixture(scope="session")
def tiny_preset(tmp_path_factory):
    """Path of a tiny random-weight preset conditioned on tempo (scalar) and density (curve)."""
    pytest.importorskip("torch")
    return build_tiny_preset(tmp_path_factory.mktemp("presets"))


@pytest.fixture(scope="session")
def tiny_preset_beat(tmp_path_factory):
    """Path of a tiny random-weight preset conditioned on tempo (scalar) and the beat phase (4 channels)."""
    pytest.importorskip("torch")
    return build_tiny_preset(tmp_path_factory.mktemp("presets-beat"), name="beat", conditioning="tempo+beat")


@pytest.fixture(scope="session")
def tiny_preset_plain(tmp_path_factory):
    """Path of a tiny random-weight unconditioned preset."""
    pytest.importorskip("torch")
    return build_tiny_preset(tmp_path_factory.mktemp("presets-plain"), name="plain", conditioning="")
