"""Control specs, CC mappings (curves, ranges, pickup, 14-bit), MIDI learn, rate-limited logging, and a fuzz of
random bytes through the MIDI decoding path (bridge.midi.MidiDecoder, no port needed)."""

from __future__ import annotations

import logging
import random
import tomllib

import pytest

from bridge.ccmap import CCMapper
from bridge.controls import (
    CCMapping,
    RateLimitedLog,
    apply_curve,
    control_specs,
    invert_curve,
)
from bridge.errors import ConfigError
from bridge.events import BadInput, ControlEvent, PresetEvent, SeedEvent, TempoEvent, TransportEvent
from bridge.midi import MidiDecoder
from bridge.smoothing import ControlSmoother
from generator.errors import MusikaError
from generator.runtime.preset import Condition

DENSITY = Condition("density", "curve", "notes/s", 0.5, 12.0, 4.0)
PIANO_TOML = """
[[midi.cc]]
control = "density"
channel = 1
cc = 74
range = [1.0, 8.0]
curve = "exp"
smoothing_ms = 50
pickup = "pickup"
"""


def piano_mapper(**kwargs) -> CCMapper:
    table = tomllib.loads(PIANO_TOML)["midi"]["cc"][0]
    return CCMapper([CCMapping.from_dict(table, "midi.cc[0]")], control_specs([DENSITY]), **kwargs)


def test_toml_mapping_round_trip() -> None:
    table = tomllib.loads(PIANO_TOML)["midi"]["cc"][0]
    m = CCMapping.from_dict(table, "midi.cc[0]")
    assert (m.control, m.channel, m.cc, m.range, m.curve, m.pickup) == ("density", 1, 74, (1.0, 8.0), "exp", "pickup")
    assert CCMapping.from_dict(m.to_dict()) == m


@pytest.mark.parametrize("table,message", [
    ({"control": "gain", "cc": 200}, "midi.cc[0].cc: 200 is out of range 0-127"),
    ({"control": "gain", "cc": 7, "channel": 0}, "midi.cc[0].channel: 0 is out of range 1-16"),
    ({"control": "gain", "cc": 7, "lsb_cc": 7}, "lsb_cc: 7 equals cc; use cc + 32"),
    ({"control": "gain", "cc": 7, "curve": "cubic"}, "curve: 'cubic' is not one of lin, log, exp"),
    ({"control": "gain", "cc": 7, "pickup": "soft"}, "pickup: 'soft' is not one of jump, pickup"),
    ({"control": "gain", "cc": 7, "range": [1, 1]}, "range: (1, 1) must be two different numbers"),
    ({"control": "gain", "cc": 7, "smoothing_ms": -5}, "smoothing_ms: -5 is out of range 0-10000"),
    ({"control": "gain", "cc": 7.5}, "cc: 7.5 is not a whole number; use 0-127"),
    ({"control": "gain", "cc": 7, "knob": 1}, "unknown key 'knob'; valid keys: control, channel, cc"),
    ({"cc": 7}, "missing key 'control'"),
])
def test_mapping_errors_name_key_value_and_range(table: dict, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        CCMapping.from_dict(table, "midi.cc[0]")
    assert message in str(info.value)
    assert isinstance(info.value, MusikaError)


def test_curves_are_monotonic_and_invertible() -> None:
    for curve in ("lin", "log", "exp"):
        ys = [apply_curve(i / 100, curve) for i in range(101)]
        assert ys[0] == pytest.approx(0.0) and ys[-1] == pytest.approx(1.0)
        assert all(b > a for a, b in zip(ys, ys[1:], strict=False))
        for x in (0.1, 0.5, 0.9):
            assert invert_curve(apply_curve(x, curve), curve) == pytest.approx(x)
    assert apply_curve(0.5, "exp") < 0.5 < apply_curve(0.5, "log")


def test_piano_density_mapping_with_range_curve_and_pickup() -> None:
    mapper = piano_mapper()
    [ev] = mapper.handle_cc(1, 74, 127, 0.0)  # no current value known yet: applies at once
    assert ev == ControlEvent("density", 8.0, "midi", None, smoothing_ms=50.0)  # the mapping's glide time
    assert mapper.handle_cc(1, 74, 0, 0.1)[0].value == pytest.approx(1.0)
    assert mapper.handle_cc(2, 74, 64, 0.1) == []  # other channel
    assert mapper.smoothing_ms("density") == 50
    mapper.set_current("density", 6.0)  # changed over OSC: the knob (at 0) must pick it up
    assert mapper.handle_cc(1, 74, 20, 0.2) == []
    assert mapper.handle_cc(1, 74, 60, 0.3) == []
    knob = round(mapper.mappings[0].to_knob(6.0, mapper.specs["density"]) * 127)
    [ev] = mapper.handle_cc(1, 74, knob + 9, 0.4)  # jumped across the value: picked up
    assert ev.value > 6.0
    assert mapper.handle_cc(1, 74, 10, 0.5)[0].value < 2.0  # now it follows freely
    assert mapper.knob_position("density") == (mapper.mappings[0], 10)


def test_jump_mode_and_inactive_control() -> None:
    mapper = CCMapper([CCMapping("density", 1, 1), CCMapping("gain", 1, 7, range=(-24.0, 6.0))])
    assert mapper.handle_cc(1, 1, 100, 0.0) == []  # no preset declares density yet
    mapper.set_current("gain", 0.0)
    assert mapper.handle_cc(1, 7, 0, 0.0)[0].value == -24.0  # jump: applies at once
    mapper.set_specs(control_specs([DENSITY]))
    assert mapper.handle_cc(1, 1, 127, 0.0)[0].value == 12.0


def test_14bit_pair() -> None:
    mapper = CCMapper([CCMapping("variation", 3, 1, lsb_cc=33, range=(0.5, 4.0))], control_specs())
    assert mapper.handle_cc(3, 33, 5, 0.0) == []  # LSB before any MSB means nothing
    [coarse] = mapper.handle_cc(3, 1, 64, 0.0)
    assert coarse.value == pytest.approx(0.5 + 3.5 * (64 << 7) / 16383)
    [fine] = mapper.handle_cc(3, 33, 100, 0.0)
    assert fine.value == pytest.approx(0.5 + 3.5 * ((64 << 7) | 100) / 16383)
    assert mapper.handle_cc(3, 1, 127, 0.0)[0].value == pytest.approx(0.5 + 3.5 * (127 << 7) / 16383)


def test_seed_and_preset_are_discrete_and_fire_on_change() -> None:
    names = ["techno", "piano", "classical"]
    mapper = CCMapper([CCMapping("preset", 1, 20), CCMapping("seed", 1, 21, range=(0, 127))],
                      preset_names=names)
    assert mapper.handle_cc(1, 20, 127, 0.0) == [PresetEvent("classical", "midi", None)]
    assert mapper.handle_cc(1, 20, 126, 0.0) == []  # still index 2
    assert mapper.handle_cc(1, 20, 60, 0.0) == [PresetEvent("piano", "midi", None)]
    assert mapper.handle_cc(1, 21, 42, 0.0) == [SeedEvent(42, "midi", None)]


def test_midi_learn_binds_the_knob_that_moves_and_keeps_settings() -> None:
    learned = []
    mapper = piano_mapper(on_learned=learned.append)
    with pytest.raises(ConfigError, match="learn: 'tempo' is not a control"):
        mapper.start_learn("tempo", 0.0)
    mapper.start_learn("density", 1.0)
    assert mapper.learning == "density"
    assert mapper.handle_cc(1, 74, 30, 1.1) == []  # the old knob: a single touch only makes it a candidate
    assert mapper.handle_cc(5, 16, 40, 1.2) == []  # another knob: new candidate
    [ev] = mapper.handle_cc(5, 16, 45, 1.3)  # it moves: bound, and applied
    assert mapper.learning is None
    m = learned[0].mapping
    assert (m.channel, m.cc, m.range, m.curve) == (5, 16, (1.0, 8.0), "exp")
    assert [r.cc for r in learned[0].replaced] == [74]
    assert ev.name == "density"
    assert mapper.handle_cc(1, 74, 127, 1.4) == []  # the old CC is unbound


def test_midi_learn_14bit_and_timeout() -> None:
    mapper = CCMapper(specs=control_specs())
    mapper.start_learn("gain", 0.0)
    for value, lsb in ((10, 3), (11, 90)):  # LSB first, as some controllers interleave
        mapper.handle_cc(2, 39, lsb, 0.1)
        mapper.handle_cc(2, 7, value, 0.1)
    m = mapper.mappings[0]
    assert (m.control, m.channel, m.cc, m.lsb_cc) == ("gain", 2, 7, 39)
    mapper.start_learn("variation", 10.0, timeout_s=5.0)
    mapper.handle_cc(1, 50, 1, 16.0)  # too late: learn is over, and the CC is not mapped
    assert mapper.learning is None


def test_smoother_ramps_linearly() -> None:
    sm = ControlSmoother()
    assert sm.value_at("gain", 0.0, default=-1.0) == -1.0
    sm.set_target("gain", 0.0, 0.0)
    sm.set_target("gain", -10.0, 1.0, smoothing_ms=100)
    assert sm.value_at("gain", 1.05) == pytest.approx(-5.0)
    assert sm.value_at("gain", 2.0) == -10.0


def test_rate_limited_log(caplog: pytest.LogCaptureFixture) -> None:
    log = RateLimitedLog(logging.getLogger("test.ratelimit"), interval=5.0)
    with caplog.at_level(logging.WARNING, logger="test.ratelimit"):
        assert log.warning(0.0, "bad %s", "a")
        assert not log.warning(1.0, "bad %s", "b")
        assert not log.warning(2.0, "bad %s", "c")
        assert log.warning(6.0, "bad %s", "d")
    assert [r.getMessage() for r in caplog.records] == ["bad a", "bad d (2 similar messages suppressed)"]
    assert log.count == 4


def _decoder() -> tuple[MidiDecoder, list]:
    events: list = []
    mapper = CCMapper([CCMapping("gain", 1, 7)], control_specs())
    return MidiDecoder(events.append, mapper=mapper), events


def test_decoder_routes_clock_transport_and_cc() -> None:
    dec, events = _decoder()
    t = 0.0
    dec.feed([0xF2, 0x10, 0x00], t)  # SPP 16 sixteenths = beat 4
    dec.feed([0xFB], t)
    for i in range(49):
        t = i * 0.02
        dec.feed([0xF8], t)
    dec.feed([0xB0, 7, 127], t)
    kinds = [type(e).__name__ for e in events]
    assert "BadInput" not in kinds
    assert [e.action for e in events if isinstance(e, TransportEvent)] == ["locate", "continue"]
    assert dec.tracker.beat == 6.0
    assert [e for e in events if isinstance(e, TempoEvent)][-1].bpm == pytest.approx(125.0)
    assert events[-1] == ControlEvent("gain", 12.0, "midi", None)


def test_decoder_logs_garbage_rate_limited(caplog: pytest.LogCaptureFixture) -> None:
    dec, events = _decoder()
    with caplog.at_level(logging.WARNING, logger="bridge.midi"):
        dec.feed([0x07, 0x40], 0.0)  # running status with no status byte
        dec.feed([0xB0, 7], 0.1)  # incomplete
        dec.feed("not bytes", 0.2)  # type: ignore[arg-type]
        dec.feed([300], 0.3)
    bad = [e for e in events if isinstance(e, BadInput)]
    assert len(bad) == 4 and all(e.source == "midi" for e in bad)
    assert "undecodable" in bad[0].reason
    assert len(caplog.records) == 1  # one logged, the rest suppressed (counted)
    assert dec.bad.count == 4


def test_decoder_clock_flood_is_dropped() -> None:
    dec, events = _decoder()
    for i in range(5000):  # 10 kHz for 0.5 s
        dec.feed([0xF8], i * 1e-4)
    bad = [e for e in events if isinstance(e, BadInput)]
    assert bad and "faster than" in bad[0].reason
    assert not [e for e in events if isinstance(e, TempoEvent)]


@pytest.mark.parametrize("seed", range(4))
def test_fuzz_random_bytes_never_crash(seed: int) -> None:
    rng = random.Random(seed)
    dec, events = _decoder()
    t = 0.0
    for _ in range(3000):
        t += rng.choice([0.0, 1e-5, 0.02, 0.3])
        kind = rng.random()
        if kind < 0.4:
            chunk = [rng.randrange(256) for _ in range(rng.randrange(1, 6))]
        elif kind < 0.6:  # running status abuse: data bytes after a channel message
            chunk = [0xB0, rng.randrange(128), rng.randrange(128)] + [rng.randrange(128) for _ in range(3)]
        elif kind < 0.8:  # SPP with out-of-range data bytes (>127 is a status byte, not data)
            chunk = [0xF2, rng.randrange(256), rng.randrange(256)]
        else:
            chunk = [rng.choice([0xF8, 0xFA, 0xFB, 0xFC])]
        dec.feed(chunk, t)
    assert any(isinstance(e, BadInput) for e in events)
    assert 0 <= dec.tracker.beat <= 16383 / 4 + 10_000


def test_timestamps_come_from_backend_deltas_not_callback_time() -> None:
    from bridge.midi import _Stamper

    now = iter([10.004, 10.050, 10.051, 10.052, 10.081, 12.5])  # callback entry times (late, bunched)
    stamp = _Stamper(lambda: next(now))
    assert stamp(0.0) == 10.004  # first event: anchored to the clock
    assert stamp(0.020) == pytest.approx(10.024)  # then the backend's deltas, not the (late) callback time
    assert stamp(0.020) == pytest.approx(10.044)
    # a callback that came sooner after its event than the first one did: every stamp moves 8 ms earlier
    assert stamp(0.020) == pytest.approx(10.052)
    assert stamp(0.020) == pytest.approx(10.072)
    assert stamp(2.0) == 12.5  # a stall of ~2 s: re-anchored
