"""Underruns at a host's tempo changes: the live engine in process, in real time, following a DAW's tempo map.

`python scripts/ramp_probe.py [--seconds 120] [--hogs 1] [--preset techno]`

A device thread reads the engine's ring one 512-frame period at a time, paced by the wall clock, as a sound card
does. The host's tempo repeats every 40 s: 126 BPM, a step to 132.3, a ramp down to 119.7 over 8 s, then 126 again,
stated every 50 ms through the JACK transport follower's hysteresis and ramp slope (bridge.tempo, bridge.tempo_ramp)
as `musika serve --sync jack` passes them on. ``--hogs N`` keeps N other processes busy (numpy matrix products,
stopped at the end) as a loaded laptop would. Prints the underruns, and around each one the tempo statements and
renders before it (time s, and for a render its seconds and the audio then queued ahead of the play head).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bridge.audio.ring import AudioRing  # noqa: E402
from bridge.tempo_hysteresis import TempoHysteresis  # noqa: E402
from bridge.tempo_ramp import RampSlope  # noqa: E402
from generator.errors import MusikaError  # noqa: E402
from generator.runtime.engine import Engine  # noqa: E402
from generator.timeline.control_log import SessionHeader  # noqa: E402
from generator.timeline.live import LiveStream  # noqa: E402

SR, PERIOD = 44100, 512
HOG = "import numpy as np\na = np.random.rand(400, 400)\nwhile True:\n    a = (a @ a) / 400.0\n"


def host_bpm(t: float) -> float:
    """The host's tempo map, repeating every 40 s."""
    k = t % 40.0
    if k < 10.0:
        return 126.0
    if k < 25.0:
        return 132.3
    if k < 33.0:
        return 132.3 + (119.7 - 132.3) * (k - 25.0) / 8.0
    return 119.7 if k < 36.0 else 126.0


def probe(seconds: float, hogs: int, preset: str) -> tuple[int, list[tuple]]:
    engine = Engine.load(preset, threads=1)
    ring = AudioRing(SR * 10)
    live = LiveStream(engine, ring, SessionHeader(preset, 1, 126.0, (4, 4), SR, {}), sync_source="probe")
    events: list[tuple] = []
    t0 = time.perf_counter()
    stop = threading.Event()

    def device() -> None:
        buf, t_next = np.zeros((PERIOD, 2), np.float32), time.perf_counter()
        while not stop.is_set():
            before = ring.underruns
            ring.read_into(buf)
            if ring.underruns != before:
                events.append(("UNDERRUN", round(time.perf_counter() - t0, 3)))
            t_next += PERIOD / SR
            time.sleep(max(0.0, t_next - time.perf_counter()))

    render = live.renderer.render

    def timed_render(run_id, piece):  # noqa: ANN001, ANN202 (the renderer's own signature)
        a = time.perf_counter()
        res = render(run_id, piece)
        ahead = (live.playout.end - live.playout.head()) / SR
        events.append(("render", round(a - t0, 3), round(time.perf_counter() - a, 3), round(ahead, 3)))
        return res

    live.renderer.render = timed_render
    busy = [subprocess.Popen([sys.executable, "-c", HOG]) for _ in range(hogs)]
    reader = threading.Thread(target=device, daemon=True)
    hysteresis, ramp = TempoHysteresis(0.3), RampSlope()
    hysteresis.current = 126.0
    try:
        live.start()
        live.play(0.0)
        reader.start()
        while (now := time.perf_counter() - t0) < seconds:
            time.sleep(0.05)
            bpm = round(host_bpm(now), 3)
            slope = ramp.update(now, bpm)
            told = hysteresis.update(bpm, slope=slope)
            if told is not None:
                live.set_tempo(told, slope=slope)
                events.append(("tempo", round(now, 3), told, round(slope, 2)))
    finally:
        stop.set()
        live.close()
        reader.join(2.0)
        for p in busy:
            p.terminate()
            p.wait()
    return int(ring.underruns), events


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=120.0)
    p.add_argument("--hogs", type=int, default=1, help="busy processes beside the engine (default 1)")
    p.add_argument("--preset", default="techno")
    a = p.parse_args(argv)
    if not 0 < a.seconds <= 3600:
        p.error(f"--seconds {a.seconds:g} is out of range: give more than 0 and at most 3600")
    if not 0 <= a.hogs <= 16:
        p.error(f"--hogs {a.hogs} is out of range 0-16 (busy processes beside the engine)")
    try:
        underruns, events = probe(a.seconds, a.hogs, a.preset)
    except MusikaError as exc:
        print(f"ramp_probe: {exc}", file=sys.stderr)
        return 2
    print(f"underruns: {underruns} in {a.seconds:g} s ({a.hogs} busy process(es) beside the engine)")
    for k, e in enumerate(events):
        if e[0] == "UNDERRUN":
            print("---", *events[max(0, k - 8) : k + 1], sep="\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
