"""PortAudioSink through PortAudio's JACK host API: the stream appears as JACK ports PortAudio:out_0/1."""

from __future__ import annotations

import numpy as np
import pytest

from bridge.audio.base import AudioSinkError
from bridge.audio.portaudio_sink import PortAudioSink, list_output_devices
from tests.bridge.audio.recorder import SR, JackRecorder, dominant_hz, locate, stereo_sine

pytestmark = pytest.mark.jack


def _jack_client_name(rec: JackRecorder) -> str:
    names = {p.name.split(":")[0] for p in rec.client.get_ports(is_audio=True, is_output=True)}
    candidates = sorted(n for n in names if n.startswith("PortAudio"))
    assert candidates, f"PortAudio's JACK client not found among {sorted(names)}"
    return candidates[-1]


def test_portaudio_output_reaches_jack_ports(jack_server):
    devices = list_output_devices(rescan=True)
    assert any(d["hostapi"] == "JACK Audio Connection Kit" for d in devices), devices
    reference = stereo_sine(2 * SR, start=1000)
    sink = PortAudioSink(device="system", block_size=jack_server.period)
    sink.ring.write(reference)
    with sink, JackRecorder(SR // 2, servername=jack_server.name) as rec:
        client = _jack_client_name(rec)
        rec.connect([f"{client}:out_0", f"{client}:out_1"])
        audio = rec.record()
        stats = sink.stats()
    assert "system" in stats["device"] and stats["underruns"] == 0
    assert np.sqrt(np.mean(audio**2, axis=1)).min() > 0.1, "recording is silent on a channel"
    assert dominant_hz(audio[0]) == pytest.approx(440, abs=5)
    assert dominant_hz(audio[1]) == pytest.approx(660, abs=5)
    offset = locate(audio, reference)
    first = int(np.argmax(np.abs(audio[0]) > 0))
    n = audio.shape[1] - first
    np.testing.assert_allclose(audio[:, first:], reference[:, offset + first : offset + first + n], atol=1e-6)


def test_unknown_device_names_the_devices(jack_server):
    with pytest.raises(AudioSinkError, match=r"no output device matching 'no such card'.*system"):
        PortAudioSink(device="no such card").start()
