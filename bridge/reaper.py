"""Reaper's native OSC control-surface messages, decoded into typed events (pure logic, no I/O).

Reaper sends feedback to a "device" (our OSC server) according to a `.ReaperOSC` pattern file. We ship
`docs/daw/Musika.ReaperOSC`, generated from the one address table (bridge.osc_addresses) by
:func:`surface_file`, so Reaper only sends what we understand:

- `/tempo/raw f` (BPM), `/play t`, `/stop t`, `/pause t` (1.0 = that state is on),
- `/beat/str s` ("bar.beat.hundredths", e.g. "5.3.50", 1-based bar and beat),
- `/time f` (seconds from the project start), `/samples f` (samples from the project start).

Reaper's TIME/BEAT feedback runs at display rate: positions are coarse (``PositionEvent.exact=False``).
Positions are quarter-note beats; the meter (numerator/denominator) converts Reaper's beat string.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass

from bridge.events import PositionEvent, TempoEvent, TransportEvent
from generator.runtime.model_config import SAMPLE_RATE

SOURCE = "osc/reaper"
_BEAT_RE = re.compile(r"^\s*(-?\d{1,6})\.(\d{1,3})\.(\d{1,4})\s*$")


def parse_beat_string(text: str, numerator: int = 4, denominator: int = 4) -> float:
    """Reaper's "bar.beat.hundredths" (e.g. "1.1.00", "5.3.50") -> quarter-note beats from the song start.

    Bar and beat are 1-based; the last field is the fraction of a beat in hundredths (more digits are read as
    a decimal fraction). Raises ValueError naming the text and the expected format.
    """
    m = _BEAT_RE.match(text)
    if m is None:
        raise ValueError(f"Reaper beat string {text!r} is not 'bar.beat.hundredths' (for example '5.3.50')")
    bar, beat, frac = int(m.group(1)), int(m.group(2)), m.group(3)
    if beat < 1 or beat > numerator:
        raise ValueError(f"Reaper beat string {text!r}: beat {beat} is outside 1..{numerator} of the meter")
    in_beats = (bar - 1) * numerator + (beat - 1) + int(frac) / 10 ** len(frac)
    return in_beats * 4.0 / denominator


@dataclass
class ReaperState:
    """What Reaper told us so far; :meth:`handle` turns one message into events (time passed in).

    sample_rate: Reaper's project rate, used for `/samples`. numerator/denominator: the meter used to read
    `/beat/str` (Reaper does not send it; set it from config or `/musika/meter`).
    """

    sample_rate: int = SAMPLE_RATE
    numerator: int = 4
    denominator: int = 4
    bpm: float | None = None
    playing: bool | None = None
    paused: bool = False
    beat_string_seen: bool = False

    def tempo(self, bpm: float, now: float) -> list[TempoEvent]:
        """`/tempo/raw bpm` (already range-checked)."""
        changed = self.bpm != bpm
        self.bpm = bpm
        return [TempoEvent(bpm=bpm, source=SOURCE, time=now)] if changed else []

    def transport(self, which: str, on: bool, now: float) -> list[TransportEvent]:
        """`/play`, `/stop`, `/pause` feedback: 1 = that state is on. Emits only on a change of state."""
        if not on:
            return []
        if which == "play":
            if self.playing:
                return []
            action = "continue" if self.paused else "play"
            self.playing, self.paused = True, False
            return [TransportEvent(action=action, source=SOURCE, time=now)]
        if self.playing is False and self.paused == (which == "pause"):
            return []
        self.playing, self.paused = False, which == "pause"
        return [TransportEvent(action="stop", source=SOURCE, time=now)]

    def beat_string(self, text: str, now: float) -> list[PositionEvent]:
        beat = parse_beat_string(text, self.numerator, self.denominator)
        self.beat_string_seen = True
        return [PositionEvent(beat=beat, source=SOURCE, time=now, exact=False)]

    def seconds(self, seconds: float, now: float) -> list[PositionEvent]:
        """`/time`: used only while no `/beat/str` arrives and the tempo is known (assumes a constant tempo)."""
        if self.beat_string_seen or self.bpm is None or not math.isfinite(seconds):
            return []
        return [PositionEvent(beat=seconds * self.bpm / 60.0, source=SOURCE, time=now, exact=False)]

    def samples(self, samples: float, now: float) -> list[PositionEvent]:
        return self.seconds(samples / self.sample_rate, now)


_HEADER = """\
# Musika.ReaperOSC: Reaper control-surface pattern file for Musika Bridge.
# Generated from bridge/osc_addresses.py (python -m bridge.osc_addresses); do not edit by hand.
# Copy it into Reaper's OSC config directory (Preferences > Control/OSC/web > Add > OSC >
# Pattern config > "open config directory"), then choose "Musika" as the pattern config.
# Reaper sends these as feedback to the device IP/port (the Musika daemon, default 127.0.0.1:9000) and
# accepts them from the daemon on its local listen port. Everything else is left out on purpose:
# track, FX and VU feedback would flood the daemon.

DEVICE_TRACK_COUNT 1
DEVICE_SEND_COUNT 0
DEVICE_RECEIVE_COUNT 0
DEVICE_FX_COUNT 0
DEVICE_FX_PARAM_COUNT 0
DEVICE_FX_INST_PARAM_COUNT 0
DEVICE_MARKER_COUNT 0
DEVICE_REGION_COUNT 0
"""


def surface_file(rows: Iterable[tuple[str, str, str]]) -> str:
    """The `.ReaperOSC` text for (reaper action, type flag, address) rows, e.g. ("TEMPO", "f", "/tempo/raw").

    Rows sharing an action become one line: `ACTION flag/address flag/address`.
    """
    lines: dict[str, list[str]] = {}
    for action, flag, address in rows:
        lines.setdefault(action, []).append(f"{flag}{address}")
    body = "\n".join(f"{action} {' '.join(patterns)}" for action, patterns in lines.items())
    return _HEADER + "\n" + body + "\n"
