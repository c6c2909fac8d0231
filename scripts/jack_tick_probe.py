"""What JACK delivers to a late MIDI callback: jack_midi_clock's ticks into bridge.jack_midi.JackMidiPort while
this process holds the GIL for a while (as a busy render thread does), and what MidiClockTracker counts of them.

`python scripts/jack_tick_probe.py [--stalls 3] [--stall-s 1.0] [--server-stalls] [--bpm 126] [--hog-s 0]
[--keep FILE.npz]`

Starts its own JACK dummy server (unique name, stopped at the end), jack_transport as the transport master and
jack_midi_clock into the probe's port. Prints the tick intervals that are not one tick long, the ticks received,
the ticks the frame clock says were sent over that span, and the count MidiClockTracker makes of them. The port
also reads the transport every period, so each tick's own position on the sender's transport is known
(jack_midi_clock puts every tick exactly on one): ``positions`` is how far they span, and ``count_errors`` lists
where the count parts from them (tick index, count minus position, and the intervals around it). ``--hog-s N``
instead runs N seconds with two CPU hogs (numpy loops in child processes, stopped by their PIDs) and no GIL stalls.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bridge.jack_midi import JackMidiPort  # noqa: E402
from bridge.transport import MidiClockTracker  # noqa: E402

HOG = "import numpy as np\na = np.random.rand(600, 600)\nwhile True:\n    a = (a @ a) / 600.0\n"


class _PositionPort(JackMidiPort):
    """The daemon's port, also noting the transport frame of every clock tick (same stamps as the daemon's)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.ticks: list[tuple[float, int]] = []  # (stamp s, transport frame)

    def _receive(self, client, data: bytes, start: float, offset: int) -> None:
        if data == b"\xf8":
            _, pos = client.transport_query()
            self.ticks.append((start + offset / client.samplerate, int(pos["frame"]) + offset))


def probe(stalls: int, stall_s: float, bpm: float, hog_s: float = 0.0, keep: str | None = None,
          server_stalls: bool = False) -> dict:
    name = "tickprobe-" + uuid.uuid4().hex[:6]
    server = subprocess.Popen(["jackd", "-n", name, "-d", "dummy", "-r", "44100", "-p", "512"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    env = {"JACK_DEFAULT_SERVER": name, "PATH": "/usr/bin:/bin"}
    hog = None
    try:
        time.sleep(2)
        port = _PositionPort("clk", "probe", lambda data, t: None, servername=name)
        port.start()
        transport = subprocess.Popen(["jack_transport"], stdin=subprocess.PIPE, env=env, text=True,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        transport.stdin.write(f"master\ntempo {bpm:g}\nplay\n")
        transport.stdin.flush()
        clock = subprocess.Popen(["jack_midi_clock", "probe:clk"], env=env, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
        time.sleep(3)
        if hog_s > 0:
            hog = [subprocess.Popen([sys.executable, "-c", HOG]) for _ in range(2)]
            time.sleep(hog_s)
            for h in hog:
                h.terminate()
                h.wait()
            hog = None
        for _ in range(stalls if hog_s <= 0 else 0):
            time.sleep(3)
            if server_stalls:  # the JACK server itself misses its deadlines (frozen): it skips the periods it missed
                server.send_signal(signal.SIGSTOP)
                time.sleep(stall_s)
                server.send_signal(signal.SIGCONT)
                continue
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
        for h in hog or ():
            h.terminate()
        server.terminate()
        server.wait()
    s = np.asarray([t for t, _ in port.ticks])
    positions = np.round(np.asarray([f for _, f in port.ticks]) / 44100 * bpm / 60 * 24).astype(int)
    if keep:
        np.savez(keep, stamps=s, positions=positions)
    tick_ms = 60000.0 / bpm / 24
    d = np.diff(s) * 1000.0
    tracker = MidiClockTracker(lambda event: None)
    tracker.start(s[0] - 0.001)
    errors, last = [], 0
    for i, t in enumerate(s):
        tracker.clock(t)
        err = tracker.ticks - 1 - int(positions[i] - positions[0])
        if err != last:
            errors.append((i, err, [round(float(x), 1) for x in d[max(0, i - 3):i + 2]],
                           [int(x) for x in np.diff(positions[max(0, i - 3):i + 3])]))
            last = err
    return {"received": int(s.size), "sent_by_frame_clock": round(float((s[-1] - s[0]) * 1000 / tick_ms + 1), 1),
            "positions": int(positions[-1] - positions[0] + 1), "counted": tracker.ticks,
            "odd_intervals_ms": [round(float(x), 2) for x in d if abs(x - tick_ms) > 2][:30],
            "count_errors": errors[:40]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--stalls", type=int, default=3)
    p.add_argument("--stall-s", type=float, default=1.0)
    p.add_argument("--bpm", type=float, default=126.0)
    p.add_argument("--hog-s", type=float, default=0.0, help="seconds under a CPU hog instead of GIL stalls")
    p.add_argument("--server-stalls", action="store_true",
                   help="stall the JACK server (SIGSTOP for --stall-s) instead of this process's callback")
    p.add_argument("--keep", default=None, help="save the stamps and positions here (.npz)")
    a = p.parse_args()
    print(probe(a.stalls, a.stall_s, a.bpm, a.hog_s, a.keep, a.server_stalls))


if __name__ == "__main__":
    main()
