"""Session file parsing: structure, grid arithmetic and error messages (pure, no audio)."""

from __future__ import annotations

from pathlib import Path

import pytest

from generator.offline.session import Grid, SessionError, load_session, parse_session

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "session.toml"

MINIMAL = """
[session]
tempo = 120
bars = 4

[[stems]]
name = "a"
preset = "tiny"
"""


def test_example_session_parses():
    s = load_session(EXAMPLE)
    assert s.bars == 8 and s.grid.meter == (4, 4) and s.grid.tempo == ((1, 128.0),)
    assert [st.name for st in s.stems] == ["beat", "keys"]
    beat, keys = s.stems
    assert (beat.start_bar, beat.end_bar, keys.start_bar, keys.end_bar) == (1, 9, 3, 9)
    assert not beat.conditioning and (beat.preset, keys.preset) == ("techno", "piano")
    assert keys.conditioning["density"].value_at(5) == pytest.approx(3.75)
    assert [e.builtin for e in keys.effects] == ["LadderFilter", "Delay", "Reverb"]
    assert keys.effects[0].params == {"mode": "LPF24", "cutoff_hz": 2500.0, "resonance": 0.2}
    assert s.output.sample_rate == 48000 and s.output.tail_bars == 1 and s.total_bars == 9
    assert s.mix.lufs == -14.0 and s.mix.true_peak_db == -1.0


def test_minimal_defaults():
    s = parse_session(MINIMAL)
    st = s.stems[0]
    assert (st.start_bar, st.end_bar, st.seed, st.gain_db, st.pan, st.variation) == (1, 5, 0, 0.0, 0.0, None)
    assert s.output.format == "wav" and s.output.bits == "24" and s.output.sample_rate == 44100
    assert s.mix.lufs is None and s.mix.true_peak_db is None


def test_grid_arithmetic_with_tempo_map_and_meter():
    g = Grid(((1, 120.0), (3, 60.0)), (6, 8))  # 3 quarter beats per bar
    assert g.beats_per_bar == 3.0
    assert g.seconds_at_bar(1) == 0.0
    assert g.seconds_at_bar(3) == pytest.approx(3.0)  # 2 bars * 3 beats * 0.5 s
    assert g.seconds_at_bar(4) == pytest.approx(6.0)  # + 3 beats * 1 s
    assert g.seconds_at_bar(3.5) == pytest.approx(4.5)
    assert g.sample_at_bar(4, 44100) == 6 * 44100
    assert g.bpm_at_bar(2) == 120.0 and g.bpm_at_bar(3) == 60.0


def test_tempo_map_parses():
    s = parse_session(MINIMAL.replace("tempo = 120", "tempo = [[1, 120], [3, 140.5]]\ntime_signature = [3, 4]"))
    assert s.grid.tempo == ((1, 120.0), (3, 140.5)) and s.grid.meter == (3, 4)


def test_invalid_toml_points_at_the_line(tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text("[session]\ntempo = 120\nbars = = 4\n")
    with pytest.raises(SessionError, match=r"bad\.toml: invalid TOML.*line 3"):
        load_session(p)


@pytest.mark.parametrize(
    ("edit", "pattern"),
    [
        (("pan = 0", "pan = 1.5"), r"stems\[0\]\.pan \(line \d+\): value 1\.5 is out of range; valid: \[-1, 1\]"),
        (("pan = 0", "colour = 3"), r"unknown key 'colour'; valid keys here: name, preset, seed"),
        (("pan = 0", "seed = -1"), r"stems\[0\]\.seed.*valid: \[0, 4294967295\]"),
        (("pan = 0", "end_bar = 1"), r"end_bar.*out of range; valid: \[2, 5\]"),
        (("pan = 0", "variation = 0"), r"variation.*valid: \(0, 10\]"),
        (("pan = 0", "conditioning = { tempo = 130 }"), r"tempo is set once per session"),
        (("pan = 0", "conditioning = { density = [[3, 1.0], [2, 2.0]] }"), r"comes before the previous point"),
        (('name = "a"', 'name = "mix"'), r"not 'mix'"),
        (("tempo = 120", "tempo = 5000"), r"session\.tempo.*valid: \[20, 999\]"),
        (("tempo = 120", "tempo = [[2, 120]]"), r"must start at bar 1"),
        (("bars = 4", "bars = 4\nbeats = 3"), r"unknown key 'beats'; valid keys here: tempo, time_signature, bars"),
        (("bars = 4", 'bars = 4\ntime_signature = "4/5"'), r"denominator one of"),
        (("bars = 4", "bars = 4\n[output]\nsample_rate = 22050"), r"22050 is not valid; use one of 44100, 48000"),
        (("bars = 4", 'bars = 4\n[output]\nformat = "flac"\nbits = "float"'), r"FLAC cannot store float"),
        (("bars = 4", "bars = 4\n[mix]\nlufs = 3"), r"mix\.lufs.*valid: \[-70, 0\]"),
    ],
)
def test_bad_values_name_key_value_and_range(edit, pattern):
    text = MINIMAL + "pan = 0\n"
    old, new = edit
    with pytest.raises(SessionError, match=pattern):
        parse_session(text.replace(old, new, 1), where="s.toml")


def test_structure_errors():
    with pytest.raises(SessionError, match=r"stems: missing"):
        parse_session("[session]\ntempo = 120\nbars = 2\n")
    with pytest.raises(SessionError, match=r"session\.bars.*missing"):
        parse_session(MINIMAL.replace("bars = 4", ""))
    dup = MINIMAL + '\n[[stems]]\nname = "a"\npreset = "tiny"\n'
    with pytest.raises(SessionError, match=r"'a' appears 2 times"):
        parse_session(dup)
    fx = MINIMAL + '[[stems.effects]]\ntype = "Reverb"\nvst3 = "x.vst3"\n'
    with pytest.raises(SessionError, match=r"exactly one of type"):
        parse_session(fx)


def test_effect_specs_and_relative_paths(tmp_path):
    text = MINIMAL + (
        '[[stems.effects]]\ntype = "Compressor"\nratio = 4\nbypass = true\n'
        '[[stems.effects]]\nvst3 = "plugins/X.vst3"\nparams = { ratio = 2 }\nstate = "x.vstpreset"\n'
    )
    s = parse_session(text, path=tmp_path / "s.toml")
    comp, vst = s.stems[0].effects
    assert comp.builtin == "Compressor" and comp.params == {"ratio": 4} and comp.bypass
    assert vst.vst3 == tmp_path / "plugins" / "X.vst3" and vst.state == tmp_path / "x.vstpreset"
    assert vst.where == "stems[0].effects[1]"


def test_unreadable_file(tmp_path):
    with pytest.raises(SessionError, match=r"cannot read the session file .*nope\.toml"):
        load_session(tmp_path / "nope.toml")
