"""What JACK delivers to a late MIDI callback: jack_midi_clock's ticks into bridge.jack_midi.JackMidiPort while
this process holds the GIL for a while (as a busy render thread does), and what MidiClockTracker counts of them.

`python scripts/jack_tick_probe.py [--stalls 3] [--stall-s 1.0] [--bpm 126]`

Starts its own JACK dummy server (unique name, stopped at the end), jack_transport as the transport master and
jack_midi_clock into the probe's port. Prints the tick intervals that are not one tick long, the ticks received,
the ticks the frame clock says were sent over that span, and the count MidiClockTracker makes of them.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bridge.jack_midi import JackMidiPort  # noqa: E402
from bridge.transport import MidiClockTracker  # noqa: E402


def probe(stalls: int, stall_s: float, bpm: float) -> dict:
    name = "tickprobe-" + uuid.uuid4().hex[:6]
    server = subprocess.Popen(["jackd", "-n", name, "-d", "dummy", "-r", "44100", "-p", "512"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    env = {"JACK_DEFAULT_SERVER": name, "PATH": "/usr/bin:/bin"}
    stamps: list[float] = []
    try:
        time.sleep(2)
        port = JackMidiPort("clk", "probe", lambda data, t: stamps.append(t) if data == b"\xf8" else None,
                            servername=name)
        port.start()
        transport = subprocess.Popen(["jack_transport"], stdin=subprocess.PIPE, env=env, text=True,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        transport.stdin.write(f"master\ntempo {bpm:g}\nplay\n")
        transport.stdin.flush()
        clock = subprocess.Popen(["jack_midi_clock", "probe:clk"], env=env, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
        time.sleep(3)
        for _ in range(stalls):
            time.sleep(3)
            sys.setswitchinterval(0.05)  # this thread keeps the GIL: the JACK callback waits for it
            until = time.time() + stall_s
            while time.time() < until:
                sum(range(100000))
            sys.setswitchinterval(0.005)
        time.sleep(3)
        clock.terminate()
        transport.stdin.write("stop\nquit\n")
        transport.stdin.flush()
        time.sleep(0.5)
        transport.terminate()
        port.close()
    finally:
        server.terminate()
        server.wait()
    s = np.asarray(stamps)
    tick_ms = 60000.0 / bpm / 24
    d = np.diff(s) * 1000.0
    tracker = MidiClockTracker(lambda event: None)
    tracker.start(s[0] - 0.001)
    for t in s:
        tracker.clock(t)
    return {"received": int(s.size), "sent_by_frame_clock": round(float((s[-1] - s[0]) * 1000 / tick_ms + 1), 1),
            "counted": tracker.ticks, "odd_intervals_ms": [round(float(x), 2) for x in d if abs(x - tick_ms) > 2][:30]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--stalls", type=int, default=3)
    p.add_argument("--stall-s", type=float, default=1.0)
    p.add_argument("--bpm", type=float, default=126.0)
    a = p.parse_args()
    print(probe(a.stalls, a.stall_s, a.bpm))


if __name__ == "__main__":
    main()
