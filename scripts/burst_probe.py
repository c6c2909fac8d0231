"""The tempo a MIDI clock follower states after a late JACK port's burst, against the clock's true tempo.

`python scripts/burst_probe.py [--bpm 140] [--seeds 4]`

Synthesised, as tests/bridge/test_transport.py does: a steady clock stamped as JACK MIDI through rtmidi gives it (each
tick at the start of its 512-frame period, tests.bridge.clockstreams.jack_quantised), with a dozen ticks from four
places replaced by what a late port receives (clockstreams.late_port: only every third arrives, most twice, one in
eight a few periods late, as recorded with scripts/jack_tick_probe.py). Prints, for each seed and place, how far the
tempo stated from the burst on strays from the true one at worst (BPM), and the worst of all.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bridge.events import TempoEvent  # noqa: E402
from bridge.transport import MidiClockTracker  # noqa: E402
from tests.bridge.clockstreams import jack_quantised, late_port, tick_times  # noqa: E402

PLACES = (24 * 10 + 6, 24 * 10 + 12, 24 * 10 + 30, 24 * 20 + 3)  # tick indices where a burst starts


def worst_after_burst(bpm: float, seed: int, at: int) -> float:
    """The largest |stated - true| BPM from the burst at tick ``at`` on (0 where nothing was stated)."""
    true = jack_quantised(tick_times([bpm] * (24 * 26), seed=seed), seed=seed)
    events: list = []
    tracker = MidiClockTracker(events.append)
    tracker.start(true[0] - 0.01)
    for t in late_port(true, start=at, ticks=12, seed=seed):
        tracker.clock(t)
    return max((abs(e.bpm - bpm) for e in events if isinstance(e, TempoEvent) and e.time > true[at] - 0.01),
               default=0.0)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bpm", type=float, default=140.0, help="the clock's tempo (default 140; 40-250)")
    p.add_argument("--seeds", type=int, default=4, help="seeds of the stamps and the burst (default 4; 1-100)")
    a = p.parse_args(argv)
    if not 40.0 <= a.bpm <= 250.0:
        p.error(f"--bpm {a.bpm:g} is out of range; use 40-250")
    if not 1 <= a.seeds <= 100:
        p.error(f"--seeds {a.seeds} is out of range; use 1-100")
    worst = [worst_after_burst(a.bpm, seed, at) for seed in range(a.seeds) for at in PLACES]
    for seed in range(a.seeds):
        row = worst[seed * len(PLACES):(seed + 1) * len(PLACES)]
        print(f"seed {seed}: " + "  ".join(f"tick {at}: {w:5.1f} BPM" for at, w in zip(PLACES, row, strict=True)))
    print(f"worst {max(worst):.1f} BPM off; within 0.05 BPM in {sum(w < 0.05 for w in worst)} of {len(worst)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
