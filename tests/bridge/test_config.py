from pathlib import Path

import pytest

from bridge.config import Config, load_config, with_overrides
from bridge.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "musika.toml"


def test_example_config_loads_with_the_density_knob():
    cfg = load_config(EXAMPLE)
    assert cfg.preset == "piano"
    knob = cfg.midi.cc[0]
    assert (knob.control, knob.channel, knob.cc, knob.range, knob.curve) == ("density", 1, 74, (1.0, 7.5), "exp")
    from generator.runtime.preset import load_preset

    density = load_preset("piano").condition("density")  # the knob stays inside what the shipped preset learned
    assert density.min <= min(knob.range) and max(knob.range) <= density.max
    assert cfg.osc.host == "127.0.0.1" and cfg.osc.port == 9000


def test_defaults_without_a_file():
    cfg = load_config(None)
    assert cfg == Config() and cfg.sync.quantise == "bar" and cfg.output.kind == "auto"


@pytest.mark.parametrize(
    "text, message",
    [
        ("[[midi.cc]]\ncontrol = 'density'\ncc = 200\n", r"midi\.cc\[0\]\.cc: 200 is out of range 0-127"),
        ("[osc]\nprot = 9000\n", r"osc\.prot: unknown key; valid keys in \[osc\]"),
        ("[sync]\nbpm = 'fast'\n", r"sync\.bpm: 'fast' must be a number"),
        ("[sync]\nbpm = 900.0\n", r"sync\.bpm: 900.0 is out of range 20-300"),
        ("[sync]\nsnap_ms = -5\n", r"sync\.snap_ms: -5.0 is out of range 0-50"),
        ("[output]\nkind = 'alsa'\n", r"output\.kind: 'alsa' is not one of auto, jack"),
        ("preset = \n", r"invalid TOML: .*line 1"),
        ("[sync]\nmeter = [4, 5]\n", r"sync\.meter\[1\]: 5 is not a note value"),
        ("phase = 'griffin'\n", r"phase: 'griffin' is not one of preset, decoder, vocoder, vocoder-joins"),
    ],
)
def test_bad_values_name_file_key_value_and_what_is_allowed(tmp_path, text, message):
    path = tmp_path / "musika.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as info:
        load_config(path)
    assert str(path) in str(info.value)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot be read"):
        load_config(tmp_path / "nope.toml")


def test_command_line_overrides_are_validated_like_the_file():
    cfg = with_overrides(Config(), {"osc.port": 9100, "sync.source": "midi", "preset": None})
    assert cfg.osc.port == 9100 and cfg.sync.source == "midi" and cfg.preset == "techno"
    with pytest.raises(ConfigError, match="sync.source"):
        with_overrides(Config(), {"sync.source": "clock"})
