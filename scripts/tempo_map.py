"""A DAW's tempo map on the JACK transport, for scripts/live_phase.py: tempo steps and ramps a host makes while the
musical position stays continuous, stated to JACK by a timebase master.

jack_transport's own ``tempo`` command re-derives the position from frame 0 at the new tempo, so each of its tempo
changes is also a jump in beats, which no DAW makes and MIDI clock cannot carry. :class:`TempoMap` is the tempo as a
function of the transport's frame (steps and linear ramps at given transport seconds) and the beat of every frame,
continuous across each change. ``python scripts/tempo_map.py BPM PLAN`` (PLAN: JSON [[seconds, "tempo" or "ramp",
BPM], ...], as link_peer.tempo_plan makes it) registers as the JACK timebase master and states the map's bar, beat,
tick and tempo in every period (4/4), so jack_midi_clock's clock and the daemon's ``--sync jack`` both follow it,
while jack_transport still plays, stops and locates. It prints "ready" once it is the master.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np

RAMP_S = 8.0  # as link_peer's ramps
TICKS = 1920.0


class TempoMap:
    """Tempo and beat as functions of the transport frame (rate ``sr``): ``bpm`` from frame 0, then each plan entry
    (transport seconds, "tempo" | "ramp", to BPM): a step there, or a linear glide there over ``ramp_s``."""

    def __init__(self, bpm: float, plan: list, sr: float, ramp_s: float = RAMP_S):
        self.sr = float(sr)
        t, b = [0.0], [float(bpm)]  # knots: the tempo at each second, piecewise linear in between
        for at, kind, to in sorted(plan):
            now = float(self._tempo(np.asarray(t), np.asarray(b), float(at)))
            t += [float(at), float(at) + (0.0 if kind == "tempo" else ramp_s)]
            b += [now, float(to)]
        self.t, self.b = np.asarray(t), np.asarray(b)
        self.beat0 = np.concatenate([[0.0], np.cumsum(np.diff(self.t) * (self.b[1:] + self.b[:-1]) / 120.0)])

    @staticmethod
    def _tempo(t: np.ndarray, b: np.ndarray, s: np.ndarray | float) -> np.ndarray:
        k = np.searchsorted(t, s, side="right") - 1  # the last knot at or before s (after a step: its new tempo)
        nxt = np.minimum(k + 1, len(t) - 1)
        span = t[nxt] - t[k]
        x = np.where(span > 0, (s - t[k]) / np.where(span > 0, span, 1.0), 0.0)
        return b[k] + x * (b[nxt] - b[k])

    def bpm(self, frame: np.ndarray | float) -> np.ndarray:
        return self._tempo(self.t, self.b, np.asarray(frame, np.float64) / self.sr)

    def beat(self, frame: np.ndarray | float) -> np.ndarray:
        """Quarter notes from frame 0 to ``frame`` (the tempo integrated: continuous across every change)."""
        s = np.asarray(frame, np.float64) / self.sr
        k = np.searchsorted(self.t, s, side="right") - 1
        return self.beat0[k] + (s - self.t[k]) * (self.b[k] + self._tempo(self.t, self.b, s)) / 120.0

    def frame_of_beat(self, beat: float) -> int:
        """The frame where the map reaches ``beat`` (a locate's target)."""
        lo, hi = 0.0, self.sr * 36000.0
        for _ in range(80):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if float(self.beat(mid)) < beat else (lo, mid)
        return int(round(lo))


def main() -> int:
    import jack

    client = jack.Client("tempo-map", no_start_server=True)
    tempo_map = TempoMap(float(sys.argv[1]), json.loads(sys.argv[2]), client.samplerate)

    def timebase(state: int, blocksize: int, pos, new_pos: bool) -> None:  # noqa: ANN001 (a cffi struct)
        beats = float(tempo_map.beat(pos.frame))
        bar, in_bar = divmod(beats, 4.0)
        pos.valid = pos.valid | jack._lib.JackPositionBBT
        pos.bar, pos.beat = int(bar) + 1, int(in_bar) + 1
        pos.tick = int((in_bar - int(in_bar)) * TICKS)
        pos.bar_start_tick = bar * 4.0 * TICKS
        pos.beats_per_bar, pos.beat_type, pos.ticks_per_beat = 4.0, 4.0, TICKS
        pos.beats_per_minute = float(tempo_map.bpm(pos.frame))

    client.set_process_callback(lambda frames: None)
    client.activate()
    if not client.set_timebase_callback(timebase):
        print("another client is the timebase master", file=sys.stderr)
        return 1
    print("ready", flush=True)
    try:
        while True:
            time.sleep(1.0)
    except KeyboardInterrupt:
        pass
    finally:
        client.deactivate()
        client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
