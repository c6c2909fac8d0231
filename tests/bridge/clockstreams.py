"""Synthesised MIDI clock tick streams for the tempo and transport tests (times in seconds)."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

PPQN = 24


def tick_times(bpms: Sequence[float], jitter_s: float = 0.0, seed: int = 0, start: float = 100.0) -> list[float]:
    """One tick per entry of ``bpms`` (the tempo of the interval that follows it), each timestamp moved by a
    uniform random amount in +-jitter_s."""
    rng = random.Random(seed)
    t, out = start, []
    for bpm in bpms:
        out.append(t + rng.uniform(-jitter_s, jitter_s))
        t += 60.0 / (PPQN * bpm)
    return out


def ramp(b0: float, b1: float, ticks: int) -> list[float]:
    return [b0 + (b1 - b0) * i / ticks for i in range(ticks)]


def drop(times: list[float], every: int, offset: int = 7) -> list[float]:
    """Lose one tick every ``every`` ticks."""
    return [t for i, t in enumerate(times) if (i - offset) % every]


def double(times: list[float], every: int, offset: int = 5) -> list[float]:
    """Deliver one tick twice (0.2 ms apart) every ``every`` ticks."""
    out = []
    for i, t in enumerate(times):
        out.append(t)
        if (i - offset) % every == 0:
            out.append(t + 0.0002)
    return out


def jack_quantised(times: list[float], period_s: float = 512 / 44100, late_every: int = 0,
                   seed: int = 0) -> list[float]:
    """Stamps as JACK MIDI through rtmidi gives them: each tick at the start of its audio period (plus up to
    0.2 ms of wake-up noise); with ``late_every``, one period in that many is processed a period late (an xrun)."""
    rng = random.Random(seed)
    out = []
    for i, t in enumerate(times):
        stamp = math.floor(t / period_s) * period_s + rng.uniform(0.0, 0.0002)
        if late_every and i % late_every == late_every // 2:
            stamp += period_s
        out.append(stamp)
    return out


def late_port(times: list[float], start: int, ticks: int, seed: int = 0) -> list[float]:
    """What a JACK MIDI port whose callbacks run late (its process busy) receives, as recorded with
    scripts/jack_tick_probe.py: for ``ticks`` ticks from ``start`` on, only every third tick arrives, most of them
    twice at the same stamp, and one in eight carries the stamp of a later period."""
    rng = random.Random(seed)
    out = list(times[:start])
    for i in range(start, start + ticks, 3):
        t = times[i] + (2.3 * 512 / 44100 if rng.random() < 0.125 else 0.0)
        out.extend([t, t] if rng.random() < 0.7 else [t])
    return out + list(times[start + ticks:])


def scattered(times: list[float], scatter_s: float, seed: int = 0) -> list[float]:
    """What a MIDI interface that delays each message by 0..scatter_s (uniform, drawn anew for each) delivers: the
    ticks late by half the scatter on average, never early (scripts/midi_jitter.py does it to a real port)."""
    rng = random.Random(seed)
    return [t + rng.uniform(0.0, scatter_s) for t in times]
