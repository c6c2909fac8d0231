"""An Ableton Link peer as the host for scripts/live_phase.py's ``--sync link``, and the grid it states.

The peer (`PEER`, run as ``python -c PEER BPM OUT SECONDS PLAN``) joins the session at BPM, starts the session's
transport once the daemon has joined (start/stop sync), changes the session's tempo as PLAN says (JSON: [seconds
after the start, "tempo" or "ramp", BPM]; a ramp glides there over RAMP_S in 50 ms steps), and notes
(time.monotonic(), session beat) every 10 ms for SECONDS into OUT (JSON). `link_grid` turns those notes and the
recorder's per-period host times into the session's beat at every recorded sample: the grid the daemon's beats are
measured against. Link multicasts on the network: live_phase runs all of it inside a loopback-only network
namespace of its own.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

RAMP_S = 8.0

PEER = """
import asyncio, json, sys, time
import aalink

async def main():
    bpm, out, seconds, plan = float(sys.argv[1]), sys.argv[2], float(sys.argv[3]), json.loads(sys.argv[4])
    link = aalink.Link(bpm)
    link.quantum = 4
    link.start_stop_sync_enabled = True
    link.enabled = True
    until = time.monotonic() + 30
    while link.num_peers < 1 and time.monotonic() < until:
        await asyncio.sleep(0.05)
    print(json.dumps({"peers": link.num_peers}), flush=True)
    await asyncio.sleep(1.0)
    link.playing = True
    notes, start, ramp = [], time.monotonic(), None  # ramp: (from time, from bpm, to bpm)
    while time.monotonic() < start + seconds:
        now = time.monotonic()
        while plan and now >= start + plan[0][0]:
            _, kind, to = plan.pop(0)
            ramp = (now, link.tempo, to) if kind == "ramp" else None
            if kind == "tempo":
                link.tempo = to
        if ramp is not None and len(notes) % 5 == 0:
            x = min((now - ramp[0]) / RAMP_S, 1.0)
            link.tempo = ramp[1] + (ramp[2] - ramp[1]) * x
            ramp = None if x >= 1.0 else ramp
        notes.append((time.monotonic(), link.beat))
        await asyncio.sleep(0.01)
    link.playing = False
    with open(out, "w") as f:
        json.dump(notes, f)
    link.enabled = False

asyncio.run(main())
""".replace("RAMP_S", repr(RAMP_S))


def tempo_plan(bpm: float, seconds: float) -> list[tuple[float, str, float]]:
    """Every 30 s from 20 s: a step 5 % up, a ramp to 5 % down, a step back, a ramp to 3 % up, and so on."""
    moves = (("tempo", 1.05), ("ramp", 0.95), ("tempo", 1.0), ("ramp", 1.03))
    return [(float(t), moves[k % 4][0], round(bpm * moves[k % 4][1], 3))
            for k, t in enumerate(np.arange(20.0, seconds, 30.0))]


def link_grid(stamps: list[tuple[int, int, float]], n: int, notes_path: Path, sr: int) -> np.ndarray:
    """Session beat of each of `n` recorded samples (NaN outside the peer's notes).

    stamps: per period (recorded index, JACK frame, host time of the period's first frame); the host time of a
    frame is the median of (time - frame / sr) over the periods plus frame / sr, so a late callback does not move
    it. Between the peer's notes (10 ms apart) the session's beat is interpolated."""
    notes = np.asarray(json.loads(Path(notes_path).read_text()), np.float64)
    idx, frame, t = (np.asarray(c, np.float64) for c in zip(*stamps, strict=True))
    anchor = float(np.median(t - frame / sr))
    out = np.full(n, np.nan)
    for k in range(idx.size):
        a = int(idx[k])
        b = int(idx[k + 1]) if k + 1 < idx.size else n
        if b > a:
            host = anchor + (frame[k] + np.arange(b - a)) / sr
            out[a:b] = np.interp(host, notes[:, 0], notes[:, 1], left=np.nan, right=np.nan)
    return out
