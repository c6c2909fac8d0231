"""Offline rendering with the tiny random-weight preset: lengths, bar alignment, effects, determinism, mix, replay.

The tiny preset makes quiet noise (about -60 dBFS), so chains start with a Gain; that is enough to check the
mechanics (grid placement, effect tails, dynamics, summing, loudness), not musical quality."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest
import soundfile as sf

from generator.errors import ConditioningError
from generator.offline.render import (
    pan_gains,
    render_replay,
    render_session,
    stem_records,
    unknown_conditioning_message,
)
from generator.offline.session import parse_session
from generator.runtime.engine import Engine
from generator.runtime.mastering import MasteringError, loudness_lufs, true_peak_db
from generator.runtime.preset import load_preset
from generator.timeline.control_log import ControlLogWriter, ControlRecord, SessionHeader
from generator.timeline.stream import render_offline

BPM = 128.0
SR = 44100
BAR = 4 * 60.0 / BPM  # seconds


def session_text(preset, extra="", fmt='format = "wav"\nbits = "float"\nsample_rate = 44100\n', only=None):
    """Three stems (comp, dry, verb), or only the one named `only`."""
    text = _session_text(preset, extra, fmt)
    if only is None:
        return text
    head, *stems = text.split("\n[[stems]]\n")
    return head + "".join("\n[[stems]]\n" + st for st in stems if f'name = "{only}"' in st)


def _session_text(preset, extra, fmt):
    return f"""
[session]
tempo = {BPM}
bars = 4

[output]
{fmt}spectrograms = true
tail_bars = 1

{extra}

[[stems]]
name = "comp"
preset = "{preset}"
seed = 3
[stems.conditioning]
density = [[1, 2.0], [3, 6.0]]
[[stems.effects]]
type = "Gain"
gain_db = 40.0
[[stems.effects]]
type = "Compressor"
threshold_db = -40.0
ratio = 20.0
attack_ms = 0.5
release_ms = 30.0

[[stems]]
name = "dry"
preset = "{preset}"
seed = 3
[stems.conditioning]
density = [[1, 2.0], [3, 6.0]]
[[stems.effects]]
type = "Gain"
gain_db = 40.0

[[stems]]
name = "verb"
preset = "{preset}"
seed = 9
start_bar = 2
end_bar = 3
pan = 0.5
[[stems.effects]]
type = "Gain"
gain_db = 40.0
[[stems.effects]]
type = "Reverb"
room_size = 0.9
wet_level = 0.6
"""


@pytest.fixture(scope="module")
def rendered(tiny_preset, tmp_path_factory):
    out = tmp_path_factory.mktemp("render")
    session = parse_session(session_text(tiny_preset), "test.toml")
    result = render_session(session, out, threads=1)
    audio = {name: sf.read(path, dtype="float32", always_2d=True)[0].T for name, path in result.stems.items()}
    audio["mix"] = sf.read(result.mix, dtype="float32", always_2d=True)[0].T
    return session, result, audio


def at_bar(bar, sr=SR):
    return int(round((bar - 1) * BAR * sr))


def test_files_and_lengths(rendered):
    session, result, audio = rendered
    n = at_bar(6)  # 4 bars + 1 tail bar
    names = {p.name for p in result.out_dir.iterdir()}
    assert names == {"comp.wav", "dry.wav", "verb.wav", "mix.wav", "comp.png", "dry.png", "verb.png", "mix.png",
                     "render.json"}
    for x in audio.values():
        assert x.shape == (2, n)
    report = json.loads((result.out_dir / "render.json").read_text())
    assert report["samples"] == n and report["bar_starts"] == [at_bar(b) for b in range(1, 7)]
    assert report["stems"]["comp"]["realtime_factor"] > 0
    assert (result.out_dir / "mix.png").read_bytes()[:4] == b"\x89PNG"


def test_stems_sit_on_the_bar_grid(rendered):
    _, _, audio = rendered
    dry, verb = audio["dry"], audio["verb"]
    assert np.abs(dry[:, : 64]).max() > 0  # starts at bar 1 (after a 64-sample fade-in)
    assert np.abs(dry[:, at_bar(5) - 2000 : at_bar(5) - 1000]).max() > 0
    assert not np.any(dry[:, at_bar(5) :])  # ends exactly where bar 5 starts
    assert not np.any(verb[:, : at_bar(2)])  # silent before bar 2 ...
    assert np.abs(verb[:, at_bar(2) : at_bar(2) + 256]).max() > 0  # ... and playing from its first samples


def test_reverb_tail_rings_past_the_stem_end(rendered):
    _, _, audio = rendered
    verb = audio["verb"]
    body = np.sqrt(np.mean(verb[:, at_bar(2) : at_bar(3)] ** 2))
    tail = np.sqrt(np.mean(verb[:, at_bar(3) + 2000 : at_bar(3) + 20000] ** 2))
    assert 0.01 * body < tail < body  # the dry source is zero there (see the dry stem)


def test_pan_moves_the_stem_right(rendered):
    _, _, audio = rendered
    verb = audio["verb"]
    gl, gr = pan_gains(0.5)
    rms = np.sqrt(np.mean(verb[:, at_bar(2) : at_bar(3)] ** 2, axis=1))
    assert gr > 1 > gl and rms[1] > rms[0]


def test_compressor_acts_on_its_stem_only(rendered):
    """The tiny preset's noise is steady (no dynamics to even out), so the check is the compressor's gain
    reduction: 40 dB of gain into a -40 dB threshold at 20:1 comes out far quieter than the same stem dry."""
    _, _, audio = rendered
    comp, dry = audio["comp"], audio["dry"]  # same preset, seed and automation: only the compressor differs
    body = slice(at_bar(1) + 4096, at_bar(5) - 4096)
    level = {k: 20 * np.log10(np.sqrt(np.mean(x[:, body] ** 2))) for k, x in (("comp", comp), ("dry", dry))}
    assert level["comp"] < level["dry"] - 12.0


def test_mix_is_the_sum_of_processed_stems(rendered):
    _, result, audio = rendered
    total = audio["comp"] + audio["dry"] + audio["verb"]
    np.testing.assert_allclose(audio["mix"], total, atol=1e-6)
    np.testing.assert_allclose(result.premaster, total, atol=1e-6)


def test_rendering_is_deterministic(rendered, tmp_path):
    session, result, audio = rendered
    again = render_session(replace(session, output=replace(session.output, spectrograms=False)), tmp_path, threads=1)
    # bit-identical samples (float WAV headers carry libsndfile's PEAK chunk with a time stamp, so compare data)
    for name in ("comp", "dry", "verb"):
        assert np.array_equal(sf.read(again.stems[name], dtype="float32")[0], audio[name].T)
    assert np.array_equal(sf.read(again.mix, dtype="float32")[0], audio["mix"].T)


def test_automation_becomes_bar_quantised_records(tiny_preset):
    session = parse_session(session_text(tiny_preset), "t.toml")
    bpm, recs = stem_records(session.grid, session.stems[0])
    assert bpm == BPM
    assert [(r.beat, r.name, r.value, r.quantise) for r in recs] == [(4.0, "density", 4.0, "bar"),
                                                                      (8.0, "density", 6.0, "bar")]


def test_loudness_normalisation_and_true_peak_at_48k_flac(tiny_preset, tmp_path):
    fmt = 'format = "flac"\nbits = "24"\nsample_rate = 48000\n'
    text = session_text(tiny_preset, "[mix]\nlufs = -16.0\ntrue_peak_db = -1.0", fmt, only="verb")
    text = text.replace("spectrograms = true", "spectrograms = false")
    result = render_session(parse_session(text, "t.toml"), tmp_path, threads=1)
    mix, sr = sf.read(result.mix, dtype="float32", always_2d=True)
    assert sr == 48000 and sf.info(str(result.mix)).subtype == "PCM_24"
    assert mix.shape[0] == int(round(5 * BAR * 48000))
    assert loudness_lufs(mix.T, sr) == pytest.approx(-16.0, abs=1.0)
    assert true_peak_db(mix.T) <= -1.0 + 0.01
    master = result.report["master"]
    assert master["lufs_in"] + master["gain_db"] == pytest.approx(-16.0) and master["true_peak_out"] <= -1.0


def test_tempo_map_sets_the_grid(tiny_preset, tmp_path):
    text = session_text(tiny_preset, only="dry").replace(f"tempo = {BPM}", "tempo = [[1, 120.0], [3, 150.0]]")
    text = text.replace("spectrograms = true", "spectrograms = false")
    result = render_session(parse_session(text, "t.toml"), tmp_path, threads=1)
    expect = [0, 88200, 176400, 246960, 317520, 388080]  # 2 bars at 120, then 150 BPM
    assert result.report["bar_starts"] == expect
    dry = sf.read(result.stems["dry"], dtype="float32", always_2d=True)[0].T
    assert dry.shape[1] == expect[-1]
    assert not np.any(dry[:, expect[4] :]) and np.abs(dry[:, expect[4] - 3000 : expect[4] - 2000]).max() > 0


def test_bad_conditioning_fails_before_writing(tiny_preset, tmp_path):
    text = session_text(tiny_preset).replace("density = [[1, 2.0], [3, 6.0]]", "density = [[1, 2.0], [3, 60.0]]", 1)
    with pytest.raises(ConditioningError, match=r"stems\[0\] \(comp\)\.conditioning\.density: .*0\.5\.\.12"):
        render_session(parse_session(text, "t.toml"), tmp_path / "out", threads=1)
    assert not (tmp_path / "out").exists()
    text = session_text(tiny_preset).replace("density = [[1, 2.0], [3, 6.0]]", "brightness = 1", 1)
    with pytest.raises(ConditioningError, match=r"has no conditioning 'brightness'; it is conditioned on tempo "
                       r"\(.* from \[session\] tempo\), density \(.*\); set density here instead"):
        render_session(parse_session(text, "t.toml"), tmp_path / "out", threads=1)



def test_a_wrong_conditioning_key_names_what_the_shipped_preset_is_conditioned_on():
    techno = load_preset("techno", verify=False)  # tempo (scalar) and beat (phase): nothing a stem may set
    msg = unknown_conditioning_message(techno, "density")
    assert msg.startswith("preset 'techno' has no conditioning 'density'; it is conditioned on tempo (118.143-161.67")
    assert "beat (the position in the bar, from the session's bar grid)" in msg and "none" not in msg
    assert msg.endswith("remove this key: 'techno' takes no conditioning per stem")
    assert unknown_conditioning_message(techno, "tempo").startswith("tempo is not set per stem: give [session] tempo")
    assert unknown_conditioning_message(techno, "beat").startswith("'beat' follows the session's bar grid")
    piano = load_preset("piano", verify=False)
    assert unknown_conditioning_message(piano, "tempo").endswith("set density here instead")


def test_failure_mid_render_leaves_nothing_behind(tiny_preset, tmp_path):
    # the stems render and are written to .partial-XXXX; normalising the (silent) mix then fails
    text = f"""
[session]
tempo = {BPM}
bars = 2
[mix]
lufs = -14.0
[[stems]]
name = "quiet"
preset = "{tiny_preset}"
gain_db = -120.0
[[stems.effects]]
type = "Gain"
gain_db = -120.0
"""
    (tmp_path / "keep.txt").write_text("user file")
    with pytest.raises(MasteringError, match=r"silent"):
        render_session(parse_session(text, "t.toml"), tmp_path, threads=1)
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_replay_equals_the_live_path_and_the_equivalent_session(tiny_preset, tmp_path):
    engine = Engine.load(tiny_preset, threads=1)
    header = SessionHeader(preset=engine.preset.name, seed=3, bpm=BPM, meter=(4, 4), sample_rate=SR,
                           controls={"density": 2.0})
    records = [ControlRecord(0.0, "transport", "play", 0.0),
               ControlRecord(8.0, "control", "density", 6.0, "bar", at=6.7),
               ControlRecord(16.0, "transport", "stop")]
    log = tmp_path / "perf.jsonl"
    with ControlLogWriter(log, header) as w:
        for r in records:
            w.write(r)
    result = render_replay(log, tmp_path / "out", threads=1, search=[tiny_preset.parent])
    out = sf.read(result.stems["tiny"], dtype="float32", always_2d=True)[0].T
    live = render_offline(engine, header, records)
    assert out.shape == live.shape == (2, at_bar(5))
    np.testing.assert_allclose(out, live, atol=2**-23)  # 24-bit file: within quantisation
    # the same performance written as a session (density steps to 6 at bar 3) renders the same audio
    text = f"""
[session]
tempo = {BPM}
bars = 4
[output]
bits = "float"
spectrograms = false
[[stems]]
name = "s"
preset = "{tiny_preset}"
seed = 3
conditioning = {{ density = [[1, 2.0], [2, 2.0], [3, 6.0]] }}
"""
    session_out = render_session(parse_session(text, "t.toml"), tmp_path / "sess", threads=1)
    s = sf.read(session_out.stems["s"], dtype="float32", always_2d=True)[0].T
    np.testing.assert_array_equal(s, live)
    assert math.isfinite(loudness_lufs(s, SR))
