"""Does the live lock trust a phase-conditioned preset's own beat grid?

    python scripts/lock_trust.py [--preset techno] [--seeds 8] [--bpm 120 128 135 143 150] [--bars 16]

Renders each seed at each tempo through the live renderer (generator.timeline.stream.render_offline, the
tempo lock on) and prints, per render, whether the beat lock trusted the conditioned grid or followed measured
beats, with the heard deviation (beats) it measured per bar. The figures of docs/BENCHMARKS.md (2026-12-05).
"""

from __future__ import annotations

import argparse

import numpy as np

from generator.runtime.engine import Engine
from generator.timeline import stretch
from generator.timeline.control_log import SessionHeader
from generator.timeline.stream import LockSettings, render_offline


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="techno")
    p.add_argument("--seeds", type=int, default=8)
    p.add_argument("--bpm", type=float, nargs="+", default=[120.0, 128.0, 135.0, 143.0, 150.0])
    p.add_argument("--bars", type=float, default=16)
    a = p.parse_args()
    trackers: list[stretch.BarTracker] = []
    init = stretch.BarTracker.__init__

    def keep(self, *args, **kwargs):
        init(self, *args, **kwargs)
        trackers.append(self)

    stretch.BarTracker.__init__ = keep
    engine = Engine.load(a.preset, threads=1)
    trusting = 0
    for bpm in a.bpm:
        for seed in range(a.seeds):
            trackers.clear()
            render_offline(engine, SessionHeader(preset=a.preset, seed=seed, bpm=bpm), bars=a.bars,
                           settings=LockSettings(lock=True))
            t = trackers[0]
            trusting += not t._following
            dev = np.median(t.deviations) if t.deviations else float("nan")
            print(f"{bpm:g} BPM seed {seed}: {'following' if t._following else 'trusting'}, median deviation "
                  f"{dev:+.3f} beats, per bar {[round(d, 2) for d in t.deviations]}")
    print(f"trusting: {trusting} of {len(a.bpm) * a.seeds}")


if __name__ == "__main__":
    main()
