"""Child process for the PortAudio tests (PortAudio must not outlive its JACK server inside pytest).

``python -m tests.bridge.audio.portaudio_child play DEVICE``: starts the sink on an empty ring, prints ``READY``;
on the first stdin line feeds 2 s of the test sine; on the second stops and prints the sink's stats as JSON.
``... bad DEVICE``: prints the AudioSinkError message for an unknown device.
"""

from __future__ import annotations

import json
import sys

from bridge.audio.base import AudioSinkError
from bridge.audio.portaudio_sink import PortAudioSink
from tests.bridge.audio.recorder import SR, stereo_sine


def main(mode: str, device: str) -> None:
    sink = PortAudioSink(device=device, block_size=512)
    if mode == "bad":
        try:
            sink.start()
        except AudioSinkError as exc:
            print("ERROR", exc, flush=True)
        return
    sink.start()
    print("READY", flush=True)
    sys.stdin.readline()
    sink.ring.write(stereo_sine(2 * SR, start=1000))
    print("FED", flush=True)
    sys.stdin.readline()
    stats = sink.stats()
    sink.stop()
    print(json.dumps(stats), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
