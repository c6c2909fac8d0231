"""CC messages -> control events: pickup (soft takeover), 14-bit pairs and MIDI learn (pure logic).

Import it from :mod:`bridge.controls`. Channels are 1-16 as users see them (mido's are 0-15: add 1).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from .controls import CCMapping, ControlSpec, control_specs
from .errors import ConfigError
from .events import ControlEvent, Event, PresetEvent, SeedEvent

logger = logging.getLogger(__name__)


@dataclass
class _Learn:
    control: str
    started: float
    timeout_s: float
    candidate: tuple[int, int] | None = None  # (channel, cc)
    first_value: int = -1
    lsb: int | None = None


@dataclass(frozen=True)
class LearnResult:
    """A finished MIDI learn: the new mapping and the mappings it replaced (same control or same CC)."""

    mapping: CCMapping
    replaced: tuple[CCMapping, ...]


class CCMapper:
    """Maps CC messages to events.

    mappings: the configured CCMapping list. specs: the controls that exist now (see controls.control_specs;
    default: the built-ins); mappings to controls not in ``specs`` are kept but inactive until a preset declares
    them. preset_names: for the "preset" control (index -> PresetEvent). on_learned: called with a LearnResult
    when MIDI learn binds a CC (the daemon saves it and acknowledges over OSC).
    """

    def __init__(
        self,
        mappings: Iterable[CCMapping] = (),
        specs: dict[str, ControlSpec] | None = None,
        preset_names: Iterable[str] = (),
        source: str = "midi",
        pickup_tolerance: float = 2 / 127,
        on_learned: Callable[[LearnResult], None] | None = None,
    ):
        self.mappings: list[CCMapping] = []
        self.source, self.pickup_tolerance, self.on_learned = source, pickup_tolerance, on_learned
        self.preset_names = list(preset_names)
        self.specs = specs if specs is not None else control_specs(preset_names=self.preset_names)
        self._current: dict[str, float] = {}  # last value of each control, from us or from elsewhere
        self._picked: dict[CCMapping, bool] = {}
        self._prev_knob: dict[CCMapping, float] = {}
        self._msb: dict[CCMapping, int] = {}
        self._lsb: dict[CCMapping, int] = {}
        self._learn: _Learn | None = None
        for m in mappings:
            self.add(m)

    def add(self, mapping: CCMapping) -> tuple[CCMapping, ...]:
        """Add a mapping, replacing any for the same control or listening to the same CC; returns those."""
        own = {(mapping.channel, mapping.cc)} | ({(mapping.channel, mapping.lsb_cc)} if mapping.lsb_cc else set())
        replaced = tuple(
            m for m in self.mappings
            if m.control == mapping.control or own & {(m.channel, m.cc), (m.channel, m.lsb_cc)}
        )
        self.mappings = [m for m in self.mappings if m not in replaced] + [mapping]
        return replaced

    def set_specs(self, specs: dict[str, ControlSpec], preset_names: Iterable[str] | None = None) -> None:
        """The preset changed: a new set of controls (mappings to unknown controls go inactive)."""
        self.specs = specs
        if preset_names is not None:
            self.preset_names = list(preset_names)

    def set_current(self, name: str, value: float) -> None:
        """A control changed elsewhere (OSC, preset load): pickup mappings must pick it up again."""
        if self._current.get(name) != value:
            self._current[name] = value
            for m in self.mappings:
                if m.control == name:
                    self._picked[m] = False

    def knob_position(self, name: str) -> tuple[CCMapping, int] | None:
        """(mapping, 7-bit CC value) that shows the control's current value, for controller feedback."""
        for m in self.mappings:
            if m.control == name and name in self.specs and name in self._current:
                return m, round(m.to_knob(self._current[name], self.specs[name]) * 127)
        return None

    # -- MIDI learn ------------------------------------------------------------------------------------------
    @property
    def learning(self) -> str | None:
        """The control waiting for a CC, or None."""
        return self._learn.control if self._learn else None

    def start_learn(self, control: str, t: float, timeout_s: float = 30.0) -> None:
        """The next CC that moves (two different values) is bound to ``control``."""
        if control not in self.specs:
            raise ConfigError(f"learn: {control!r} is not a control; use one of {', '.join(sorted(self.specs))}")
        self._learn = _Learn(control, t, timeout_s)
        logger.info("MIDI learn: move a knob or fader to bind it to %s", control)

    def cancel_learn(self) -> None:
        self._learn = None

    def _learn_cc(self, channel: int, cc: int, value: int, t: float) -> LearnResult | None:
        lr = self._learn
        assert lr is not None
        key = (channel, cc)
        if lr.candidate is None or (channel != lr.candidate[0] or cc not in (lr.candidate[1], lr.candidate[1] + 32)):
            if lr.candidate is not None and channel == lr.candidate[0] and cc + 32 == lr.candidate[1]:
                lr.lsb = lr.candidate[1]  # we saw the LSB first: this is its MSB
            else:
                lr.lsb = None
            lr.candidate, lr.first_value = key, value
            return None
        if cc == lr.candidate[1] + 32:
            lr.lsb = cc
            return None
        if value == lr.first_value:
            return None
        old = next((m for m in self.mappings if m.control == lr.control), None)
        mapping = CCMapping(lr.control, channel, cc, lr.lsb, where="learned")
        if old is not None:  # keep the user's range, curve, smoothing and pickup mode
            mapping = replace(old, channel=channel, cc=cc, lsb_cc=lr.lsb)
        self._learn = None
        result = LearnResult(mapping, self.add(mapping))
        logger.info("MIDI learn: %s bound to channel %d CC %d%s", lr.control, channel, cc,
                    f" (14-bit, LSB CC {lr.lsb})" if lr.lsb is not None else "")
        if self.on_learned is not None:
            self.on_learned(result)
        return result

    # -- CC handling -----------------------------------------------------------------------------------------
    def handle_cc(self, channel: int, cc: int, value: int, t: float) -> list[Event]:
        """One Control Change (channel 1-16, cc 0-127, value 0-127) at host time ``t`` -> events."""
        if not (1 <= channel <= 16 and 0 <= cc <= 127 and 0 <= value <= 127):
            raise ValueError(f"control change out of range: channel {channel}, cc {cc}, value {value}")
        if self._learn is not None:
            if t - self._learn.started > self._learn.timeout_s:
                logger.info("MIDI learn for %s timed out after %.0f s", self._learn.control, self._learn.timeout_s)
                self._learn = None
            else:
                result = self._learn_cc(channel, cc, value, t)
                if result is None:
                    return []
                self._picked[result.mapping] = True
        events: list[Event] = []
        for m in self.mappings:
            if m.channel != channel or cc not in (m.cc, m.lsb_cc):
                continue
            knob = self._knob(m, cc, value)
            if knob is not None:
                events.extend(self._apply(m, knob))
        return events

    def _knob(self, m: CCMapping, cc: int, value: int) -> float | None:
        if m.lsb_cc is None:
            return value / 127.0
        if cc == m.cc:  # MSB: the LSB resets to 0 until it arrives
            self._msb[m], self._lsb[m] = value, 0
        else:
            if m not in self._msb:
                return None  # an LSB without its MSB means nothing yet
            self._lsb[m] = value
        return ((self._msb[m] << 7) | self._lsb[m]) / 16383.0

    def _apply(self, m: CCMapping, knob: float) -> list[Event]:
        spec = self.specs.get(m.control)
        if spec is None:
            return []
        prev, self._prev_knob[m] = self._prev_knob.get(m), knob
        current = self._current.get(m.control)
        if m.pickup == "pickup" and current is not None and not self._picked.get(m, False):
            target = m.to_knob(current, spec)
            crossed = prev is not None and (prev - target) * (knob - target) <= 0
            if not crossed and abs(knob - target) > self.pickup_tolerance:
                return []  # the knob has not reached the control's value yet
        self._picked[m] = True
        value = m.to_value(knob, spec)
        if spec.integer and current == value:
            return []
        self._current[m.control] = value
        if m.control == "seed":
            return [SeedEvent(int(value), self.source, m.quantise)]  # type: ignore[arg-type]
        if m.control == "preset":
            if int(value) >= len(self.preset_names):
                return []
            return [PresetEvent(self.preset_names[int(value)], self.source, m.quantise)]  # type: ignore[arg-type]
        return [ControlEvent(m.control, value, self.source, m.quantise,  # type: ignore[arg-type]
                             smoothing_ms=float(m.smoothing_ms))]

    def smoothing_ms(self, control: str) -> float:
        """The ramp time configured for ``control`` (0 if unmapped)."""
        return next((m.smoothing_ms for m in self.mappings if m.control == control), 0.0)
