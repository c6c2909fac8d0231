"""The one simulated-clock harness for the live stream: a LiveStream on a ring, a device that reads one period per
tick, and a clock that only the ticks move, so a test controls time exactly, whatever the machine's load."""

from __future__ import annotations

import io
import itertools
from typing import Any

import numpy as np

from bridge.audio.ring import AudioRing
from generator.timeline.control_log import ControlLogWriter, SessionHeader, parse_lines
from generator.timeline.live import LiveStream

SR = 44100
PERIOD = 512


class SimulatedStream:
    """Each tick the render worker runs until it is idle (unless `busy`: a device read with the worker starved),
    then the device reads PERIOD frames and the clock advances by them. Every render takes `render_s` seconds as
    the stream measures it. `self.t` is the host time (from `t0`)."""

    def __init__(self, engine_or_loader: Any, header: SessionHeader, t0: float = 0.0, render_s: float = 0.02,
                 **live: Any):
        renders = itertools.count()
        live.setdefault("render_timer", lambda: next(renders) * render_s)
        self.header = header
        self.log = io.StringIO()
        self.ring = AudioRing(SR * 8)
        self.t = self.t0 = t0
        self.live = LiveStream(engine_or_loader, self.ring, header, log=ControlLogWriter(self.log, header),
                               clock=lambda: self.t, **live)
        self.out: list[np.ndarray] = []

    def tick(self, n: int, busy: bool = False) -> None:
        for _ in range(n):
            while not busy and self.live.step(now=self.t):
                pass
            o = np.zeros((2, PERIOD), np.float32)
            self.ring.read_into(o, channels_first=True)
            self.out.append(o)
            self.t += PERIOD / SR

    def audio(self) -> np.ndarray:
        """Everything the device read, (2, ticks * PERIOD)."""
        return np.concatenate(self.out, axis=1)

    def records(self):
        """(header, control records) of the stream's log."""
        return parse_lines(self.log.getvalue().splitlines())
