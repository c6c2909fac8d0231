"""What the live stream's control side asks of its render worker: one frozen dataclass per kind of request.

The control methods (:class:`generator.timeline.live_control.LiveControl`) build them on any thread and queue
them with the host time they were made at; the worker (:class:`generator.timeline.live.LiveStream`) applies them
in order, dispatching on the type. Beats are host quarter notes, times seconds on the daemon's monotonic clock.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

TransportAction = Literal["play", "continue", "locate", "stop", "stop_bar"]
ChangeKind = Literal["control", "seed", "preset"]


@dataclass(frozen=True)
class Transport:
    """play/continue/locate: the host is at `beat` (None: where the stream is) at host time `at_time` (None: when
    requested); stop: now; stop_bar: at the next bar line that can still be rendered."""

    action: TransportAction
    beat: float | None = None
    at_time: float | None = None


@dataclass(frozen=True)
class Join:
    """Another sync source takes over: the host is at `beat` at host time `at_time`, at `bpm`."""

    beat: float
    bpm: float
    at_time: float


@dataclass(frozen=True)
class Tempo:
    """The host's tempo `bpm` (None: unchanged, a phase sync only) with the estimate's `confidence`, from host
    `beat` at host time `at_time` on (None: the beat heard when requested); `slope`: BPM per second while the host
    ramps (generator.timeline.host_line), 0 when it holds its tempo."""

    bpm: float | None
    confidence: float | None = None
    beat: float | None = None
    at_time: float | None = None
    slope: float = 0.0


@dataclass(frozen=True)
class Meter:
    """The host's meter from its next bar line that can still be rendered."""

    numerator: int
    denominator: int


@dataclass(frozen=True)
class Change:
    """A control, the seed or the preset: `value` in the control's unit (or a glide: a function of the host time the
    change is heard at), placed by `quantise` (None: the stream's default)."""

    kind: ChangeKind
    name: str
    value: float | int | str | Callable[[float], float]
    quantise: str | None = None


Request = Transport | Join | Tempo | Meter | Change
