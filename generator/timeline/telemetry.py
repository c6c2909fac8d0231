"""A snapshot of the live engine's health, and a one-line status formatter (pure)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Telemetry:
    """What the live stream reports (all plain numbers, NaN when not known yet).

    state: "stopped" | "playing". bpm: host tempo in force at the play head; bpm_confidence 0..1 from the sync
    source. bar, beat: play head position (bar counted from 0, beat within the bar from 0). buffer_ms: audio
    queued for the device. lookahead_ms: the adaptive render-ahead target. rtf: render time / audio time
    (smoothed; < 1 is faster than real time). underruns: device reads that came up short. latency_ms: last
    control change's arrival to audible change (output latency of the sink not included).
    phase_error_ms: last measured offset of generated beats from the host grid (median of the bar, signed).
    cond_bpm: the tempo the model is conditioned on; stretch: the current time-stretch factor.
    """

    state: str = "stopped"
    bpm: float = math.nan
    bpm_confidence: float = math.nan
    sync_source: str = "internal"
    bar: int = 0
    beat: float = 0.0
    buffer_ms: float = 0.0
    lookahead_ms: float = 0.0
    rtf: float = math.nan
    underruns: int = 0
    latency_ms: float = math.nan
    phase_error_ms: float = math.nan
    preset: str = ""
    seed: int = 0
    cond_bpm: float = math.nan
    stretch: float = 1.0

    def to_dict(self) -> dict[str, float | int | str]:
        return asdict(self)


def _f(x: float, fmt: str) -> str:
    return "--" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, fmt)


def format_status(t: Telemetry) -> str:
    """One line for a terminal, e.g.
    ``playing 128.0 bpm (midi 0.98) 12.3 | buf 480 ms | rtf 0.31 | xrun 0 | lat 512 ms | phase +1.2 ms | techno``"""
    return (
        f"{t.state} {_f(t.bpm, '.1f')} bpm ({t.sync_source} {_f(t.bpm_confidence, '.2f')}) "
        f"{t.bar + 1}.{int(t.beat) + 1} | buf {_f(t.buffer_ms, '.0f')} ms | rtf {_f(t.rtf, '.2f')} | "
        f"xrun {t.underruns} | lat {_f(t.latency_ms, '.0f')} ms | phase {_f(t.phase_error_ms, '+.1f')} ms | "
        f"{t.preset} seed {t.seed}"
    )
