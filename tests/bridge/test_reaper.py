"""Reaper's native OSC feedback: pure decoding, and Reaper-style messages over real UDP to the OSC server."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from bridge.events import MeterEvent, PositionEvent, TempoEvent, TransportEvent
from bridge.osc_addresses import reaper_file
from bridge.reaper import ReaperState, parse_beat_string
from tests.bridge.osc_client import bundle, of_type, running

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("text", "num", "den", "beats"), [
    ("1.1.00", 4, 4, 0.0), ("5.3.50", 4, 4, 18.5), ("2.1.00", 3, 4, 3.0), ("2.1.00", 6, 8, 3.0),
    ("1.2.5", 4, 4, 1.5), ("0.4.00", 4, 4, -1.0), (" 3.1.25 ", 4, 4, 8.25)])
def test_beat_string_to_quarter_beats(text: str, num: int, den: int, beats: float) -> None:
    assert parse_beat_string(text, num, den) == pytest.approx(beats)


@pytest.mark.parametrize("text", ["", "1.1", "a.b.c", "1.5.00", "1.0.00", "1.1.00.0", "1e3.1.00"])
def test_bad_beat_strings_say_what_is_expected(text: str) -> None:
    with pytest.raises(ValueError, match="bar.beat.hundredths|beat"):
        parse_beat_string(text)


def test_transport_feedback_emits_only_changes() -> None:
    s = ReaperState()
    acts = []
    for which, on in [("stop", True), ("play", True), ("play", True), ("play", False), ("pause", True),
                      ("play", True), ("stop", True), ("stop", True), ("play", True)]:
        acts += [e.action for e in s.transport(which, on, 0.0)]
    assert acts == ["stop", "play", "stop", "continue", "stop", "play"]


def test_time_is_used_only_without_beat_string() -> None:
    s = ReaperState(sample_rate=48000)
    assert s.seconds(2.0, 0.0) == []  # tempo unknown yet
    s.tempo(90.0, 0.0)
    assert s.seconds(2.0, 1.0)[0].beat == pytest.approx(3.0)
    assert s.samples(96000.0, 1.0)[0].beat == pytest.approx(3.0)
    s.beat_string("2.1.00", 1.0)
    assert s.seconds(2.0, 1.0) == []


def test_reaper_style_messages_over_udp() -> None:
    async def body() -> tuple[list, dict]:
        async with running() as (server, client, events):
            # Reaper sends feedback as floats for t-flagged patterns, often bundled
            client.send_raw(bundle(0, ("/tempo/raw", 100.351), ("/play", 1.0), ("/stop", 0.0)))
            client.send("/beat/str", "5.3.50")
            client.send("/time", 12.0)  # redundant once /beat/str arrives
            client.send("/musika/meter", 3, 4)
            await client.expect("/musika/meter")
            client.send("/beat/str", "2.1.00")
            client.send("/pause", 1.0)
            client.send("/play", 1.0)
            client.send("/tempo/raw", float("nan"))  # counted, but no /musika/error sent to Reaper
            client.send("/track/1/volume", 0.5)  # Default.ReaperOSC feedback we do not use: dropped
            await client.roundtrip()
            assert client.inbox.empty()
            return events, dict(server.stats)

    events, stats = asyncio.run(asyncio.wait_for(body(), 60))
    assert [(e.bpm, e.source) for e in of_type(events, TempoEvent)] == [(pytest.approx(100.351), "osc/reaper")]
    assert [e.action for e in of_type(events, TransportEvent)] == ["play", "stop", "continue"]
    assert [e.beat for e in of_type(events, PositionEvent)] == [18.5, 3.0]
    assert all(not e.exact for e in of_type(events, PositionEvent))
    assert of_type(events, MeterEvent) == [MeterEvent(3, 4, "osc")]
    assert stats["bad"] == 2


def test_shipped_surface_file_lists_the_reaper_rows() -> None:
    text = (REPO / "docs/daw/Musika.ReaperOSC").read_text(encoding="utf-8")
    assert text == reaper_file()
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    assert all(re.fullmatch(r"[A-Z_]+( (\d+|[nfbtrsi]/[a-z/@]+))+", ln) for ln in lines), lines
    for line in ("TEMPO f/tempo/raw", "PLAY t/play", "STOP t/stop", "PAUSE t/pause", "BEAT s/beat/str",
                 "TIME f/time", "SAMPLES f/samples"):
        assert line in lines
    assert (REPO / "docs/daw/reaper.md").exists()
