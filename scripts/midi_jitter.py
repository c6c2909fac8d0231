"""A MIDI route with timing jitter around a steady grid, as a USB MIDI interface or a busy driver delivers.

`python scripts/midi_jitter.py --scatter-ms 4 [--to CLIENT:PORT]`

A JACK client ``midi-jitter`` with a MIDI input ``in`` and output ``out``: every event arriving at frame F leaves at
F plus a delay drawn anew for each event, uniformly from 0 to ``--scatter-ms`` (events keep their order, as on a
wire). Unlike jack_midi_clock's ``-J`` (each tick placed after the last jittered one, so its clock walks away from
the transport), the delays do not add up: the ticks scatter around the sender's grid, late by half the scatter on
average. scripts/live_phase.py ``--scatter-ms`` puts it between jack_midi_clock and the daemon. Runs until SIGTERM
or SIGINT; prints ``ready`` once connected.
"""

from __future__ import annotations

import argparse
import collections
import random
import signal
import sys
import threading


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scatter-ms", type=float, required=True, help="largest delay added to an event (ms, 0-50)")
    p.add_argument("--to", default=None, help="connect the output to this JACK MIDI input port")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    if not 0.0 <= a.scatter_ms <= 50.0:
        p.error(f"--scatter-ms {a.scatter_ms:g} is out of range 0-50")
    import jack

    client = jack.Client("midi-jitter", no_start_server=True)
    inport, outport = client.midi_inports.register("in"), client.midi_outports.register("out")
    rng = random.Random(a.seed)
    scatter = a.scatter_ms / 1000.0 * client.samplerate
    queue: collections.deque[tuple[int, bytes]] = collections.deque()  # (frame to leave at, event), in order
    last = [0]

    @client.set_process_callback
    def process(frames: int) -> None:
        start = client.last_frame_time
        for offset, data in inport.incoming_midi_events():
            leave = max(start + offset + int(rng.random() * scatter), last[0])  # never overtakes the one before
            last[0] = leave
            queue.append((leave, bytes(data)))
        outport.clear_buffer()
        while queue and queue[0][0] < start + frames:
            leave, data = queue.popleft()
            outport.write_midi_event(max(0, leave - start), data)

    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    with client:
        if a.to:
            client.connect(outport, a.to)
        print("ready", flush=True)
        done.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
