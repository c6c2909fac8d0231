"""What the daemon core drives besides the live stream (OSC echo, MIDI learn and pickup, offline renders, the
controls of another preset), handed to :class:`bridge.daemon.DaemonCore` at construction."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bridge.controls import ControlSpec
from bridge.events import RenderRequest

Broadcast = Callable[..., None]


def _no_broadcast(*_args: Any) -> None:
    """No OSC output: nothing to echo to."""


def _no_pickup(_name: str, _value: float) -> None:
    """No MIDI input: no knob to pick up."""


@dataclass(frozen=True)
class DaemonPorts:
    """What the core drives besides the live stream: ``broadcast(address, *args)`` echoes to OSC subscribers,
    ``learn(control, t)`` starts MIDI learn, ``set_current(name, value)`` tells the CC pickup where a control is,
    ``render(request)`` queues an offline render, ``specs_for(preset)`` gives a preset's controls. None (or the
    no-op default): that input or output is off, and a request that needs it is refused with the reason."""

    broadcast: Broadcast = _no_broadcast
    learn: Callable[[str, float], None] | None = None
    set_current: Callable[[str, float], None] = _no_pickup
    render: Callable[[RenderRequest], None] | None = None
    specs_for: Callable[[str], dict[str, ControlSpec]] | None = None
