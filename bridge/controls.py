"""Controls and their MIDI CC mapping (pure logic: messages and times in, bridge.events out).

- :class:`ControlSpec`: a control's name, unit, range and default. Built-ins: variation (the truncation bound of
  the latent coordinates), gain (dB), seed, preset (index into the preset list); a preset adds its own
  conditioning (density, tempo, ...) with :func:`control_specs`.
- :class:`CCMapping`: one musika.toml ``[[midi.cc]]`` entry: channel 1-16, CC 0-127, an optional LSB CC for
  14-bit pairs, the range in the control's unit, a curve (lin, log, exp), smoothing (ms) and a pickup mode.
- :class:`CCMapper` (in :mod:`bridge.ccmap`, built on this module): CC messages -> ControlEvent/SeedEvent/
  PresetEvent, with pickup (soft takeover), 14-bit pairing and MIDI learn.
- :class:`ControlSmoother` (in :mod:`bridge.smoothing`, re-exported here): a mapping's ``smoothing_ms`` as glides.
- :class:`RateLimitedLog`: the one helper every input uses to log bad input without flooding the log.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from generator.timeline.planner import QUANTISE_MODES

from .errors import ConfigError
from .smoothing import ControlSmoother as ControlSmoother

CURVES = ("lin", "log", "exp")
PICKUP_MODES = ("jump", "pickup")
_K = 4.0  # curvature of the log/exp curves: exp(x) maps 0.5 -> 0.119, log(x) maps 0.5 -> 0.881


@dataclass(frozen=True)
class ControlSpec:
    """One control. ``integer`` controls (seed, preset) take whole values and fire only when they change."""

    name: str
    unit: str
    min: float
    max: float
    default: float
    integer: bool = False
    help: str = ""

    def clamp(self, value: float) -> float:
        value = min(max(value, self.min), self.max)
        return float(round(value)) if self.integer else value


BUILTIN_CONTROLS: dict[str, ControlSpec] = {
    c.name: c
    for c in (
        ControlSpec("variation", "", 0.1, 4.0, 2.0, help="truncation bound of the latent coordinates"),
        ControlSpec("gain", "dB", -60.0, 12.0, 0.0, help="output gain"),
        ControlSpec("seed", "", 0, 2**31 - 1, 0, integer=True, help="random seed"),
        ControlSpec("preset", "", 0, 127, 0, integer=True, help="index into the preset list"),
    )
}


def control_specs(conditions: Iterable[Any] = (), preset_names: Iterable[str] = (),
                  variation: float | None = None) -> dict[str, ControlSpec]:
    """Built-in controls plus a preset's conditioning (objects with name, unit, min, max, default: e.g.
    generator.runtime.preset.Condition). With ``preset_names``, the preset control's range is 0..len-1; ``variation``:
    the preset's default truncation bound (GanConfig.default_truncation), the variation control's default."""
    specs = dict(BUILTIN_CONTROLS)
    if variation is not None:
        specs["variation"] = replace(specs["variation"], default=float(variation))
    names = list(preset_names)
    if names:
        specs["preset"] = ControlSpec("preset", "", 0, len(names) - 1, 0, integer=True, help=", ".join(names))
    for c in conditions:
        specs[c.name] = ControlSpec(c.name, c.unit, float(c.min), float(c.max), float(c.default),
                                    help=getattr(c, "help", ""))
    return specs


def apply_curve(x: float, curve: str) -> float:
    """Knob position x in 0..1 -> curve position in 0..1. lin: straight; exp: slow start (fine control at the
    low end); log: fast start (the inverse of exp)."""
    x = min(max(x, 0.0), 1.0)
    if curve == "exp":
        return math.expm1(_K * x) / math.expm1(_K)
    if curve == "log":
        return math.log1p(math.expm1(_K) * x) / _K
    return x


def invert_curve(y: float, curve: str) -> float:
    """Inverse of :func:`apply_curve` (where a knob must be to produce curve position y)."""
    return apply_curve(y, {"exp": "log", "log": "exp"}.get(curve, "lin"))


def _int_in(where: str, key: str, value: Any, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{where}{key}: {value!r} is not a whole number; use {lo}-{hi}")
    if not lo <= value <= hi:
        raise ConfigError(f"{where}{key}: {value} is out of range {lo}-{hi}")
    return value


@dataclass(frozen=True)
class CCMapping:
    """One CC -> control binding. ``range`` is (value at CC 0, value at CC 127) in the control's unit (reverse
    it to invert the knob); None means the control's whole range. ``lsb_cc`` makes it a 14-bit pair (by
    convention cc 0-31 with lsb_cc = cc + 32). ``smoothing_ms``: a change glides there over this time
    (bridge.smoothing); seed and preset ignore it."""

    control: str
    channel: int
    cc: int
    lsb_cc: int | None = None
    range: tuple[float, float] | None = None
    curve: str = "lin"
    smoothing_ms: float = 0.0
    pickup: str = "jump"
    quantise: str | None = None
    where: str = field(default="", compare=False, repr=False)

    def __post_init__(self) -> None:
        w = f"{self.where}." if self.where else ""
        if not isinstance(self.control, str) or not self.control:
            raise ConfigError(f"{w}control: {self.control!r} must be a control name such as density or gain")
        _int_in(w, "channel", self.channel, 1, 16)
        _int_in(w, "cc", self.cc, 0, 127)
        if self.lsb_cc is not None:
            _int_in(w, "lsb_cc", self.lsb_cc, 0, 127)
            if self.lsb_cc == self.cc:
                raise ConfigError(f"{w}lsb_cc: {self.lsb_cc} equals cc; use cc + 32 (e.g. {self.cc + 32})")
        if self.range is not None:
            r = self.range
            ok = isinstance(r, (tuple, list)) and len(r) == 2 and all(isinstance(v, (int, float)) for v in r)
            if not ok or not all(math.isfinite(v) for v in r) or r[0] == r[1]:
                raise ConfigError(f"{w}range: {r!r} must be two different numbers [low, high]")
            object.__setattr__(self, "range", (float(r[0]), float(r[1])))
        if self.curve not in CURVES:
            raise ConfigError(f"{w}curve: {self.curve!r} is not one of {', '.join(CURVES)}")
        sm = self.smoothing_ms
        if isinstance(sm, bool) or not isinstance(sm, (int, float)) or not 0 <= sm <= 10000:
            raise ConfigError(f"{w}smoothing_ms: {sm!r} is out of range 0-10000")
        if self.pickup not in PICKUP_MODES:
            raise ConfigError(f"{w}pickup: {self.pickup!r} is not one of {', '.join(PICKUP_MODES)}")
        if self.quantise is not None and self.quantise not in QUANTISE_MODES:
            raise ConfigError(f"{w}quantise: {self.quantise!r} is not one of {', '.join(QUANTISE_MODES)}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "midi.cc") -> CCMapping:
        """From a musika.toml table; unknown keys are refused, naming the key and the valid ones."""
        keys = ("control", "channel", "cc", "lsb_cc", "range", "curve", "smoothing_ms", "pickup", "quantise")
        for key in data:
            if key not in keys:
                raise ConfigError(f"{where}: unknown key {key!r}; valid keys: {', '.join(keys)}")
        for key in ("control", "cc"):
            if key not in data:
                raise ConfigError(f"{where}: missing key {key!r} (e.g. control = \"density\", cc = 74)")
        args = {k: data[k] for k in keys if k in data}
        if "range" in args and isinstance(args["range"], list):
            args["range"] = tuple(args["range"])
        args.setdefault("channel", 1)
        return cls(**args, where=where)

    def to_dict(self) -> dict[str, Any]:
        """The musika.toml table for this mapping (defaults left out)."""
        out: dict[str, Any] = {"control": self.control, "channel": self.channel, "cc": self.cc}
        if self.lsb_cc is not None:
            out["lsb_cc"] = self.lsb_cc
        if self.range is not None:
            out["range"] = list(self.range)
        for key, default in (("curve", "lin"), ("smoothing_ms", 0.0), ("pickup", "jump"), ("quantise", None)):
            if getattr(self, key) != default:
                out[key] = getattr(self, key)
        return out

    def bounds(self, spec: ControlSpec) -> tuple[float, float]:
        """(value at knob 0, value at knob full), clamped to the control's range."""
        lo, hi = self.range if self.range is not None else (spec.min, spec.max)
        return min(max(lo, spec.min), spec.max), min(max(hi, spec.min), spec.max)

    def to_value(self, x: float, spec: ControlSpec) -> float:
        """Knob position x (0..1) -> control value in the control's unit."""
        lo, hi = self.bounds(spec)
        return spec.clamp(lo + apply_curve(x, self.curve) * (hi - lo))

    def to_knob(self, value: float, spec: ControlSpec) -> float:
        """Control value -> the knob position (0..1) that produces it (for pickup and controller feedback)."""
        lo, hi = self.bounds(spec)
        return invert_curve((value - lo) / (hi - lo), self.curve) if hi != lo else 0.0


class RateLimitedLog:
    """At most one warning per ``interval`` seconds to ``log``; the next one says how many were suppressed.

    ``now`` is the caller's host time in seconds. ``count`` is the total number of warnings asked for (for
    telemetry: bad input seen), whether logged or suppressed."""

    def __init__(self, log: logging.Logger, interval: float = 5.0) -> None:
        self.log, self.interval, self._last, self._suppressed = log, interval, -math.inf, 0
        self.count = 0

    def warning(self, now: float, msg: str, *args: object) -> bool:
        """Log unless one was logged less than ``interval`` s ago; returns whether it was logged."""
        self.count += 1
        if now - self._last < self.interval:
            self._suppressed += 1
            return False
        if self._suppressed:
            msg += f" ({self._suppressed} similar messages suppressed)"
        self._last, self._suppressed = now, 0
        self.log.warning(msg, *args)
        return True
