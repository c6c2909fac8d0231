"""JACK MIDI input through JACK-Client: ticks written at exact frames by another JACK client arrive stamped with
their own frame (not their period's start), on the same clock as the JACK audio sink's periods."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from bridge.midi import MidiInput

pytestmark = pytest.mark.jack


def test_ticks_are_stamped_to_the_frame(jack_server) -> None:
    import jack

    stamps: list[float] = []
    midi = MidiInput("Musika", virtual=True, backend="jack", client_name="musika-midi")
    midi.decoder.feed = lambda data, t: stamps.append(t) if bytes(data) == b"\xf8" else None  # type: ignore
    midi.start()
    sender = jack.Client("clock-sender", no_start_server=True)
    out = sender.midi_outports.register("out")
    interval = 60.0 / (24 * 126.0) * jack_server.rate  # 126 BPM: 1050 frames apart, never on a period boundary
    state = {"next": 0.0, "frame": 0, "sent": 0}
    done = threading.Event()

    def process(frames: int) -> None:
        out.clear_buffer()
        while state["next"] < state["frame"] + frames and state["sent"] < 200:
            out.write_midi_event(int(state["next"]) - state["frame"], b"\xf8")
            state["next"] += interval
            state["sent"] += 1
        state["frame"] += frames
        if state["sent"] >= 200:
            done.set()

    sender.set_process_callback(process)
    try:
        assert midi.opened_backend == "jack" and midi.opened_port == "Musika"
        sender.activate()
        sender.connect(out, "musika-midi:Musika")
        assert done.wait(20.0)
        threading.Event().wait(0.2)
    finally:
        sender.deactivate()
        sender.close()
        midi.close()
    d = np.diff(stamps[5:]) * jack_server.rate  # frames between ticks (whole frames: the sender rounds down)
    assert len(d) > 150
    assert np.median(np.abs(d - interval)) < 2.0  # rtmidi's stamps step by whole periods (512 frames) here
