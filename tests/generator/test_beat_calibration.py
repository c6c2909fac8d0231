"""Beats heard where an outside tracker hears them, and a beat-phase preset calibrated so they land on the host's:
the daemon's heard-onset measure against librosa's, the preset's recorded offset, and every player applying it."""

from __future__ import annotations

import json
import shutil

import librosa
import numpy as np
import pytest

from generator.errors import PresetError
from generator.runtime.conditioning import beat_positions, played_positions
from generator.runtime.engine import Engine
from generator.runtime.preset import REPO_PRESETS, Condition
from generator.timeline.beat_calibration import calibrate_beat_offset, measure_beat_offset
from generator.timeline.beat_grid import HEARD_CENTRE, heard_envelope, heard_offsets
from tests.generator.beats_audio import SR, kick_track, steady_beats


def test_the_heard_envelope_is_librosas_onset_strength_and_peaks_on_a_kicks_first_sample() -> None:
    beats = steady_beats(128.0, 0.5, 12.0)
    audio = kick_track(beats, 12.0, seed=3)
    ref = librosa.onset.onset_strength(y=audio.mean(axis=0), sr=SR, hop_length=64, n_fft=512, n_mels=40)
    # librosa centres frame j's window on sample (j - 4) * 64 (its own padding): this module's on j * 64 + HEARD_CENTRE
    delayed = heard_envelope(np.pad(audio, ((0, 0), (4 * 64 + HEARD_CENTRE, 0))), SR)
    n = min(delayed.size, ref.size)
    assert np.corrcoef(delayed[8:n], ref[8:n])[0, 1] > 0.9999
    found = heard_offsets(audio, SR, beats * SR, 60.0 / 128.0 * SR) * 1000.0
    assert np.nanmax(np.abs(found[1:])) < 1.0  # ms: the kicks are heard where they start


def test_a_phase_offset_conditions_that_much_later() -> None:
    engine = Engine.load(REPO_PRESETS / "techno", threads=1)
    cfg = engine.config
    beat = engine.preset.condition("beat")
    early = Condition(**{**beat.to_dict(), "offset_ms": -10.0})
    shift = beat_positions(cfg, 0, 8, 120.0) - played_positions(early, cfg, 0, 8, 120.0)
    assert shift == pytest.approx(np.full(8, 0.010 * 2.0))  # 10 ms at 2 beats a second, later
    with pytest.raises(PresetError, match="offset_ms 5.0 must be a phase's"):
        Condition(**{**engine.preset.condition("tempo").to_dict(), "offset_ms": 5.0})
    with pytest.raises(PresetError, match=r"within \+-100 ms"):
        Condition(**{**beat.to_dict(), "offset_ms": 250.0})


def test_calibrating_the_techno_preset_puts_its_heard_beats_on_the_grid(tmp_path) -> None:
    preset = tmp_path / "techno"
    shutil.copytree(REPO_PRESETS / "techno", preset)
    (tmp_path / "_autoencoders").symlink_to(REPO_PRESETS / "_autoencoders")  # the shared autoencoder it plays on
    info = json.loads((preset / "preset.json").read_text())
    for c in info["conditioning"]:
        c.pop("offset_ms", None)  # as exported: the conditioned beat taken as the heard one
    (preset / "preset.json").write_text(json.dumps(info))
    before = measure_beat_offset(Engine.load(preset, threads=1), seeds=(0, 1), tempi=2)
    assert -15.0 < before["residual_ms"] < -1.0  # its decoders smear kicks ahead: heard early
    report = calibrate_beat_offset(preset)
    assert report is not None and report["offset_ms"] == pytest.approx(report["residual_ms"])
    recorded = json.loads((preset / "preset.json").read_text())["conditioning"]
    assert [c.get("offset_ms") for c in recorded if c["kind"] == "phase"] == [report["offset_ms"]]
    after = measure_beat_offset(Engine.load(preset, threads=1), seeds=(0, 1), tempi=2)
    # played that much later: the same clips' beats moved by the offset, towards the grid
    assert after["residual_ms"] == pytest.approx(before["residual_ms"] - report["offset_ms"], abs=1.5)
    assert abs(after["residual_ms"]) < abs(before["residual_ms"])
    assert calibrate_beat_offset(REPO_PRESETS / "piano") is None  # no beat phase, nothing to calibrate

