"""A separate process that plays a DAW: MIDI clock at a tempo, SPP, Continue, a CC and Stop, over JACK MIDI.

Run by tests/bridge/test_midi_jack.py as ``python -m tests.bridge.midi_sender PORT BPM`` with JACK_DEFAULT_SERVER
set. It waits (up to 10 s) until an input port whose name contains PORT exists, opens it by that name through
mido's rtmidi/UNIX_JACK backend, sends, and exits 0; "sent" on stdout marks the end.
"""

from __future__ import annotations

import sys
import time

import mido


def _sleep_until(target: float) -> None:
    while True:
        left = target - time.perf_counter()
        if left <= 0:
            return
        time.sleep(left - 0.001 if left > 0.002 else 0)


def main(port: str, bpm: float) -> int:
    backend = mido.Backend("mido.backends.rtmidi/UNIX_JACK", load=True)
    deadline = time.monotonic() + 10.0
    while True:
        names = [n for n in backend.get_output_names() if port in n]
        if names:
            break
        if time.monotonic() > deadline:
            print(f"no output port matching {port!r}", file=sys.stderr)
            return 1
        time.sleep(0.05)
    period = 60.0 / (24 * bpm)
    with backend.open_output(names[0]) as out:
        t0 = time.perf_counter() + 0.05
        n = 0

        def clocks(count: int) -> None:
            nonlocal n
            for _ in range(count):
                _sleep_until(t0 + n * period)
                out.send(mido.Message("clock"))
                n += 1

        clocks(48)  # two beats while stopped: the receiver learns the tempo
        out.send(mido.Message("songpos", pos=32))  # 32 sixteenths = beat 8 (bar 3 of 4/4)
        out.send(mido.Message("continue"))
        clocks(97)  # the first clock is beat 8, then 96 more = 4 beats
        out.send(mido.Message("control_change", channel=0, control=74, value=127))
        _sleep_until(t0 + n * period)
        out.send(mido.Message("stop"))
        time.sleep(0.1)  # let JACK deliver the last period before the port closes
    print("sent", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], float(sys.argv[2])))
