"""Typed events that every input (MIDI, OSC, Link, CLI) hands to the daemon core.

Input layers only decode what arrives into these values; the core (bridge.daemon) decides what they do.
Times are host clock seconds (time.monotonic() domain, or the backend's event timestamp mapped into it),
positions are in quarter-note beats from the song start.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Quantise = Literal["bar", "now", "phrase"]
SyncSourceName = Literal["auto", "midi", "osc", "link", "jack", "internal"]


@dataclass(frozen=True)
class TransportEvent:
    """play/stop/continue/locate from a sync source. `beat` is given for locate (and optionally play)."""

    action: Literal["play", "stop", "continue", "locate"]
    source: str
    time: float
    beat: float | None = None


@dataclass(frozen=True)
class TempoEvent:
    """The host's tempo `bpm` at host time `time`; `slope`: BPM per second while the host ramps (0: it holds)."""

    bpm: float
    source: str
    time: float
    confidence: float = 1.0
    slope: float = 0.0


@dataclass(frozen=True)
class PositionEvent:
    """A coarse or exact statement of where the host is: `beat` at host time `time`."""

    beat: float
    source: str
    time: float
    exact: bool = False


@dataclass(frozen=True)
class MeterEvent:
    numerator: int
    denominator: int
    source: str


@dataclass(frozen=True)
class ControlEvent:
    """A control change: `name` is density, variation, gain, or a preset's conditioning name (e.g. tempo).

    `value` is in the control's own unit (already mapped from CC/OSC ranges). `smoothing_ms`: glide there over
    this time instead of jumping (a CC mapping's smoothing; bridge.smoothing)."""

    name: str
    value: float
    source: str
    quantise: Quantise | None = None  # None: the configured default
    at_bar: int | None = None
    smoothing_ms: float = 0.0


@dataclass(frozen=True)
class SeedEvent:
    seed: int
    source: str
    quantise: Quantise | None = None


@dataclass(frozen=True)
class PresetEvent:
    name: str
    source: str
    quantise: Quantise | None = None


@dataclass(frozen=True)
class SyncSourceEvent:
    source_name: SyncSourceName
    source: str


@dataclass(frozen=True)
class LearnEvent:
    """Start MIDI learn for a control: the next CC that moves is bound to it."""

    control: str
    source: str


@dataclass(frozen=True)
class RenderRequest:
    session_path: str
    out_dir: str
    reply_to: tuple[str, int] | None = None


@dataclass(frozen=True)
class BadInput:
    """Something malformed arrived; counted in telemetry and logged at a limited rate."""

    source: str
    sender: str
    reason: str
    details: dict = field(default_factory=dict)


Event = (
    TransportEvent
    | TempoEvent
    | PositionEvent
    | MeterEvent
    | ControlEvent
    | SeedEvent
    | PresetEvent
    | SyncSourceEvent
    | LearnEvent
    | RenderRequest
    | BadInput
)
