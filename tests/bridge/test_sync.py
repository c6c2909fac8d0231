"""SyncArbiter: auto picks the alive source, falls back when it goes silent, says why."""

from __future__ import annotations

import logging

import pytest

from bridge.errors import ConfigError
from bridge.sync import SyncArbiter


def test_auto_starts_internal_then_follows_midi_and_falls_back(caplog: pytest.LogCaptureFixture) -> None:
    arb = SyncArbiter(timeout_s=2.0)
    d = arb.update(0.0)
    assert (d.source, d.changed) == ("internal", False)
    assert "internal" in d.reason
    for i in range(10):  # MIDI clock at 50 Hz
        arb.seen("midi", 1.0 + i * 0.02)
    with caplog.at_level(logging.INFO, logger="bridge.sync"):
        d = arb.update(1.2)
    assert (d.source, d.changed) == ("midi", True)
    assert arb.accepts("midi") and not arb.accepts("link")
    assert "sync source: internal -> midi" in caplog.text
    arb.seen("link", 2.0)
    assert arb.update(3.0).source == "midi"  # still alive (1.82 s < 2 s), and first in priority
    arb.seen("link", 3.5)
    d = arb.update(3.6)  # midi silent for 2.42 s
    assert (d.source, d.changed) == ("link", True)
    assert d.reason == "link (auto: midi silent for 2.4 s)"
    d = arb.update(6.0)  # link silent too
    assert d.source == "internal"
    assert d.reason == "internal (auto: link silent for 2.5 s; no other source alive)"
    status = arb.status(6.0)
    assert status["source"] == "internal" and status["mode"] == "auto"
    assert status["last_heard_s"] == {"midi": pytest.approx(4.82), "link": pytest.approx(2.5), "osc": None,
                                      "jack": None}


def test_priority_order_and_return_of_a_preferred_source() -> None:
    arb = SyncArbiter(priority=("osc", "midi"))
    assert arb.priority == ("osc", "midi", "link", "jack")
    arb.seen("midi", 0.0)
    arb.seen("osc", 0.0)
    assert arb.update(0.1).source == "osc"
    arb.seen("midi", 2.5)
    assert arb.update(2.6).source == "midi"  # osc silent
    arb.seen("osc", 2.7)
    assert arb.update(2.8).source == "osc"  # preferred source is back


def test_forced_source_holds_and_says_it_is_silent() -> None:
    arb = SyncArbiter(mode="link")
    arb.seen("midi", 0.0)
    d = arb.update(0.5)
    assert d.source == "link"
    assert d.reason == "link (forced) is silent: never heard; holding the last tempo"
    arb.seen("link", 1.0)
    assert arb.update(1.5).reason == "link (forced)"
    d = arb.set_mode("auto", 1.6)
    assert d is not None and (d.source, d.changed) == ("midi", True)  # midi (0.0) is alive and comes first
    assert arb.set_mode("internal", 1.7).source == "internal"


def test_time_going_backwards_does_not_revive_a_source() -> None:
    arb = SyncArbiter(timeout_s=1.0)
    arb.seen("midi", 10.0)
    arb.seen("midi", 5.0)
    assert arb.age("midi", 10.5) == pytest.approx(0.5)


@pytest.mark.parametrize("kwargs,match", [
    ({"mode": "mtc"}, "sync source: 'mtc' is not one of auto, midi, link, osc, jack, internal"),
    ({"timeout_s": 0}, "sync timeout: 0 s must be > 0"),
    ({"priority": ("midi", "midi")}, "must list distinct names"),
])
def test_bad_configuration_is_named(kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        SyncArbiter(**kwargs)
    with pytest.raises(ConfigError, match="'udp' is not one of"):
        SyncArbiter().seen("udp", 0.0)
