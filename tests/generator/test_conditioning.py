"""Conditioning values -> generator inputs: scalars, curves and the beat phase that ties a model's bars to the
host's, from the preset schema to the live epoch source."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bridge.controls import control_specs
from generator.errors import ConditioningError, PresetError
from generator.runtime.conditioning import beat_positions, model_inputs, stream_values
from generator.runtime.engine import Engine
from generator.runtime.model_config import ModelConfig
from generator.runtime.preset import Condition, load_preset
from generator.timeline.planner import EpochDef
from generator.timeline.stream import EpochSource, LockSettings

TEMPO = Condition("tempo", "scalar", "BPM", 118.0, 162.0, 128.0, "log")
DENSITY = Condition("density", "curve", "onsets/s", 0.5, 12.0, 4.0, "log")
BEAT = Condition("beat", "phase", "beats", 0.0, 4.0, 0.0, periods=(1.0, 4.0))


def test_a_phase_is_sin_and_cos_of_the_position_in_each_period() -> None:
    assert BEAT.channels == 4 and TEMPO.channels == 1
    m = BEAT.to_model(np.array([0.0, 0.25, 1.0, 2.0, 5.0]))
    assert m.shape == (5, 4)
    np.testing.assert_allclose(m[0], [0, 1, 0, 1], atol=1e-6)  # a bar line
    np.testing.assert_allclose(m[1], [1, 0, math.sin(math.pi / 8), math.cos(math.pi / 8)], atol=1e-6)
    np.testing.assert_allclose(m[2], [0, 1, 1, 0], atol=1e-6)  # beat 2 of the bar: on a beat, a quarter bar in
    np.testing.assert_allclose(m[3], [0, 1, 0, -1], atol=1e-6)  # half a bar in
    np.testing.assert_allclose(m[4], m[2], atol=1e-6)  # a bar later, the same place in the bar
    assert BEAT.check(np.array([-3.0, 1e6])).dtype == np.float32  # any finite position is valid
    with pytest.raises(ConditioningError, match="not a finite number"):
        BEAT.check(np.array([np.inf]))


def test_periods_belong_to_phases_only() -> None:
    with pytest.raises(PresetError, match="'beat': a 'phase' condition needs positive periods"):
        Condition("beat", "phase", "beats", 0.0, 4.0, 0.0)
    with pytest.raises(PresetError, match="'density': a 'phase' condition needs positive periods"):
        Condition("density", "curve", "onsets/s", 0.5, 12.0, 4.0, periods=(1.0,))
    with pytest.raises(PresetError, match="kind must be 'scalar', 'curve' or 'phase'"):
        Condition("x", "knob", "", 0.0, 1.0, 0.5)  # type: ignore[arg-type]


def test_model_inputs_stack_curve_and_phase_channels_in_order() -> None:
    conds = (TEMPO, DENSITY, BEAT)
    positions = np.arange(32) * 0.5
    feeds = model_inputs(conds, {"tempo": 130.0, "density": 4.0, "beat": positions}, halves=2, half_len=16)
    assert feeds["cond_scalar"].shape == (2, 1) and feeds["cond_curve"].shape == (2, 16, 5)
    np.testing.assert_allclose(feeds["cond_scalar"][:, 0], TEMPO.to_model(130.0))
    np.testing.assert_allclose(feeds["cond_curve"][..., 0], DENSITY.to_model(4.0))
    np.testing.assert_allclose(feeds["cond_curve"][..., 1:].reshape(32, 4), BEAT.to_model(positions), atol=1e-6)
    # a phase nobody gave is "unconditioned" (NaN: the model sees presence flag 0); scalars take defaults
    feeds = model_inputs(conds, None, halves=1, half_len=16)
    assert np.isnan(feeds["cond_curve"][..., 1:]).all() and not np.isnan(feeds["cond_curve"][..., 0]).any()
    assert feeds["cond_scalar"][0, 0] == pytest.approx(TEMPO.to_model(128.0))
    with pytest.raises(ConditioningError, match=r"no conditioning named \['brightness'\]"):
        model_inputs(conds, {"brightness": 1.0}, 1, 16)
    with pytest.raises(ConditioningError, match=r"beat: expected \(1, 16\) values"):
        model_inputs(conds, {"beat": np.zeros(5)}, 1, 16)


def test_a_stream_starts_on_a_bar_line_at_its_tempo() -> None:
    cfg = ModelConfig()
    values = stream_values((TEMPO, BEAT), {"tempo": 120.0}, cfg, 0, 64)
    seconds = np.arange(64) * cfg.samples_per_latent / cfg.audio.sample_rate
    np.testing.assert_allclose(values["beat"], seconds * 2.0)  # 120 BPM: two beats a second from beat 0
    assert stream_values((TEMPO, BEAT), {"beat": 1.5}, cfg, 0, 8)["beat"] == 1.5  # given positions are kept
    np.testing.assert_allclose(stream_values((TEMPO, BEAT), None, cfg, 0, 4)["beat"],
                               beat_positions(cfg, 0, 4, 128.0))  # the tempo's default
    later = beat_positions(cfg, 10, 3, 140.0, downbeat_s=10 * cfg.samples_per_latent / cfg.audio.sample_rate)
    assert later[0] == pytest.approx(0.0) and np.all(np.diff(later) > 0)


def test_a_beat_preset_round_trips_and_hides_its_phase_from_the_controls(tiny_preset_beat) -> None:
    preset = load_preset(tiny_preset_beat)
    beat = preset.condition("beat")
    assert (beat.kind, beat.periods, beat.channels) == ("phase", (1.0, 4.0), 4)
    assert preset.config.gan.cond_curves == 4 and [c.name for c in preset.controls] == ["tempo"]
    assert "beat" not in control_specs(preset.controls) and "tempo" in control_specs(preset.controls)
    engine = Engine.load(tiny_preset_beat, threads=1)
    a = engine.generate(1.0, {"tempo": 130.0}, seed=1)
    assert a.shape == (2, 44100) and np.isfinite(a).all()


def test_the_live_epoch_tells_the_model_where_the_host_bars_are(tiny_preset_beat) -> None:
    engine = Engine.load(tiny_preset_beat, threads=1)
    cfg = engine.config
    # an epoch that starts on host beat 6 (bar 2, beat 3 of 4/4) at stream step 40, conditioned on 130 BPM
    epoch = EpochDef(start_beat=6.0, preset="beat", seed=2, coord_step=40, values=(("tempo", 130.0),))
    src = EpochSource(engine, epoch, LockSettings())
    assert beat_positions(cfg, 40, 1, 130.0, src.downbeat_s)[0] == pytest.approx(6.0)
    src.ensure(1)
    h0, half = src.n_start // cfg.gan.half_len, cfg.gan.half_len
    got = src._latents[: 2 * half]
    coords = src.coords.halves(h0, 2)
    positions = beat_positions(cfg, h0 * half, 2 * half, 130.0, src.downbeat_s)
    want = engine.latents(coords, {"tempo": 130.0, "beat": positions}, seed=2, first_half=h0)
    np.testing.assert_array_equal(got, want)
    unconditioned = engine.latents(coords, {"tempo": 130.0}, seed=2, first_half=h0)
    assert np.abs(got - unconditioned).max() > 1e-4  # the phase reached the model


def test_guidance_pushes_the_latents_along_the_conditioning(tiny_preset) -> None:
    from generator.runtime.coords import CoordinateStream

    plain = Engine.load(tiny_preset, threads=1)
    cfg = plain.config
    assert plain.guidance == cfg.gan.default_guidance == 1.0
    coords = CoordinateStream(cfg.gan, seed=4).halves(0, 2)
    values = {"tempo": 150.0, "density": 9.0}
    c = plain.latents(coords, values, seed=4)
    u = plain.latents(coords, {"tempo": np.nan, "density": np.nan}, seed=4)
    for g in (0.0, 2.5):
        got = Engine.load(tiny_preset, threads=1, guidance=g).latents(coords, values, seed=4)
        np.testing.assert_allclose(got, u + g * (c - u), atol=1e-5)
    with pytest.raises(PresetError, match="guidance must be between 0 and 10"):
        Engine.load(tiny_preset, threads=1, guidance=-1.0)


def test_the_preset_list_says_where_a_phase_comes_from(tiny_preset_beat) -> None:
    from bridge.commands.presets import list_presets

    rows = {r["name"]: r for r in list_presets(search=(str(tiny_preset_beat.parent),))}
    assert rows["beat"]["conditioning"] == ["tempo (scalar, 118-162 BPM)",
                                            "beat (phase: position in the bar, from the host's transport)"]
