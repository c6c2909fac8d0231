"""JackSink against a real JACK server (dummy driver), recorded exactly by a second JACK client."""

from __future__ import annotations

import logging
import time

import numpy as np
import pytest

from bridge.audio.base import AudioSinkError
from bridge.audio.jack_sink import JackSink, jack_server_running
from tests.bridge.audio.recorder import (
    SR,
    JackRecorder,
    continuity_errors,
    dominant_hz,
    glitch_allowance,
    mismatched_frames,
    stereo_sine,
)
from tests.jack_server import start_jack

pytestmark = pytest.mark.jack


def wait_until(predicate, timeout: float = 15.0) -> bool:
    """Poll a readiness condition (not a timing assertion): True as soon as it holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def test_fed_ahead_plays_exact_stereo_without_underruns(jack_server):
    reference = stereo_sine(2 * SR, start=1000)
    sink = JackSink(servername=jack_server.name)
    with sink, JackRecorder(SR // 2, servername=jack_server.name) as rec:
        rec.connect(sink.port_names)
        sink.ring.write(reference)  # 2 s ahead of the 0.5 s recorded
        audio = rec.record()
        stats = sink.stats()
    errors = continuity_errors(audio, reference)  # analysed after recording: no GIL contention meanwhile
    assert errors <= glitch_allowance(jack_server.period, rec.xruns), f"{errors} frames differ from the signal"
    assert stats["underruns"] == 0 and stats["connected"] and stats["block_size"] == jack_server.period
    assert np.sqrt(np.mean(audio**2, axis=1)).min() > 0.1, "recording is silent on a channel"
    assert dominant_hz(audio[0]) == pytest.approx(440, abs=5), "left channel is not out_L's 440 Hz"
    assert dominant_hz(audio[1]) == pytest.approx(660, abs=5), "right channel is not out_R's 660 Hz"


def test_starved_sink_plays_silence_and_counts_underruns(jack_server, caplog):
    caplog.set_level(logging.WARNING, logger="bridge.audio")
    reference = stereo_sine(SR // 10, start=1000)
    sink = JackSink(servername=jack_server.name)
    with sink, JackRecorder(SR // 2, servername=jack_server.name) as rec:
        rec.connect(sink.port_names)
        assert sink.ring.underruns == 0, "an empty ring that was never fed must not count underruns"
        rec.arm()  # start capturing, then feed only 0.1 s
        sink.ring.write(reference)
        audio = rec.record(arm=False)
    first = int(np.argmax(np.abs(audio[0]) > 0))
    expected = np.zeros_like(audio[:, first:])
    expected[:, : reference.shape[1]] = reference  # the 0.1 s fed, then silence after the underrun
    errors = mismatched_frames(audio[:, first:], expected)
    assert errors <= glitch_allowance(jack_server.period, rec.xruns), f"{errors} frames differ"
    assert sink.ring.underruns > 0 and sink.ring.underrun_frames > 0
    assert "audio underrun on jack" in caplog.text


def test_server_killed_then_restarted_reconnects(jack_server, caplog):
    caplog.set_level(logging.INFO, logger="bridge.audio")
    sink = JackSink(servername=jack_server.name, retry_interval=0.2)
    sink.ring.write(stereo_sine(SR, start=1000))
    sink.start()
    second = None
    try:
        assert sink.connected
        jack_server.stop()
        assert wait_until(lambda: "shut down" in caplog.text), "no clear message after the server died"
        assert not sink.connected and sink.running
        second = start_jack(name=jack_server.name)
        assert wait_until(lambda: sink.connected), "the sink did not reconnect to the restarted server"
        assert sink.stats()["reconnects"] == 1
        sink.ring.write(stereo_sine(SR, start=5000))
        with JackRecorder(SR // 5, servername=jack_server.name) as rec:
            rec.connect(sink.port_names)
            audio = rec.record()
        assert np.sqrt(np.mean(audio**2, axis=1)).min() > 0.1, "no audio after reconnecting"
        assert "reconnected to JACK server" in caplog.text
    finally:
        sink.stop()
        if second is not None:
            second.stop()


def test_wrong_sample_rate_and_missing_server_are_clear_errors(jack_server):
    with pytest.raises(AudioSinkError, match="runs at 44100 Hz but the audio is 48000 Hz"):
        JackSink(servername=jack_server.name, sample_rate=48000).start()
    assert jack_server_running(jack_server.name)
    assert not jack_server_running("musika-no-such-server")
    with pytest.raises(AudioSinkError, match="cannot connect to JACK server 'musika-no-such-server'"):
        JackSink(servername="musika-no-such-server").start()
    with pytest.raises(AudioSinkError, match="cannot connect JACK port"):
        JackSink(servername=jack_server.name, connect=["nobody:in_1", "nobody:in_2"]).start()


def test_autoconnect_to_system_playback(jack_server):
    sink = JackSink(servername=jack_server.name, connect=True)
    with sink, JackRecorder(16, servername=jack_server.name) as rec:
        links = rec.client.get_all_connections(sink.port_names[0])
        assert [p.name for p in links] == ["system:playback_1"]
