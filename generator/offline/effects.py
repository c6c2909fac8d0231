"""Effect chains for offline rendering: pedalboard built-ins by name, VST3 plugins by path.

Every spec is checked before any audio is rendered. An unknown effect lists the built-ins; an unknown parameter
lists the effect's parameters with their defaults; an out-of-range value names the range. A VST3 that fails to
load, or that cannot process stereo (mono-only plugins), is an :class:`EffectError` naming the plugin.
Chains process (channels, samples) float32 audio and are reset before each stem, so rendering is deterministic.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pedalboard

from generator.errors import MusikaError
from generator.offline.session import EffectSpec

logger = logging.getLogger(__name__)


class EffectError(MusikaError, ValueError):
    """An effect name, parameter, value, VST3 plugin or plugin state cannot be used."""


_NOT_EFFECTS = {"Chain", "Mix", "Pedalboard", "Plugin", "PluginContainer", "ExternalPlugin", "VST3Plugin",
                "AudioUnitPlugin", "IIRFilter"}

# Ranges checked before pedalboard sees a value (pedalboard checks some of these too, with less context).
_RANGES: dict[str, dict[str, tuple[float, float]]] = {
    "*": {"mix": (0.0, 1.0), "release_ms": (0.001, 10000.0), "attack_ms": (0.001, 10000.0)},
    "Reverb": {k: (0.0, 1.0) for k in ("room_size", "damping", "wet_level", "dry_level", "width", "freeze_mode")},
    "Delay": {"delay_seconds": (0.0, 30.0), "feedback": (0.0, 1.0)},
    "Compressor": {"ratio": (1.0, 100.0), "threshold_db": (-100.0, 0.0)},
    "NoiseGate": {"ratio": (1.0, 100.0), "threshold_db": (-120.0, 0.0)},
    "Limiter": {"threshold_db": (-60.0, 0.0)},
    "Chorus": {"depth": (0.0, 1.0), "feedback": (-1.0, 1.0), "rate_hz": (0.0, 100.0), "centre_delay_ms": (0.0, 100.0)},
    "Phaser": {"depth": (0.0, 1.0), "feedback": (-1.0, 1.0), "rate_hz": (0.0, 100.0)},
    "LadderFilter": {"cutoff_hz": (1.0, 40000.0), "resonance": (0.0, 1.0), "drive": (1.0, 100.0)},
    "HighpassFilter": {"cutoff_frequency_hz": (1.0, 40000.0)},
    "LowpassFilter": {"cutoff_frequency_hz": (1.0, 40000.0)},
    "Distortion": {"drive_db": (0.0, 100.0)},
    "Gain": {"gain_db": (-120.0, 60.0)},
    "Bitcrush": {"bit_depth": (1.0, 32.0)},
    "PitchShift": {"semitones": (-72.0, 72.0)},
    "Clipping": {"threshold_db": (-120.0, 0.0)},
}


@dataclass(frozen=True)
class ParamInfo:
    name: str
    type: str  # float, bool, str (file name), or an enum's class name
    default: str
    choices: tuple[str, ...] = ()
    enum: Any = None  # the enum class when choices is not empty


def builtin_effects() -> dict[str, type]:
    """The pedalboard built-in effect classes usable in a chain, by name."""
    out = {}
    for name in dir(pedalboard):
        cls = getattr(pedalboard, name)
        if isinstance(cls, type) and issubclass(cls, pedalboard.Plugin) and name not in _NOT_EFFECTS \
                and not name.startswith("_"):
            out[name] = cls
    return out


def builtin_params(name: str) -> dict[str, ParamInfo]:
    """Constructor parameters of a built-in effect, parsed from its pybind11 signature."""
    cls = builtin_effects()[name]
    sig = (cls.__init__.__doc__ or "").splitlines()[0]
    args = sig[sig.find("(") + 1 : sig.rfind(")")]
    out = {}
    for part in re.split(r",\s*(?=\w+\s*:)", args):
        m = re.match(r"\s*(\w+)\s*:\s*([^=]+?)\s*(?:=\s*(.+))?$", part)
        if not m or m.group(1) == "self":
            continue
        pname, ptype, default = m.group(1), m.group(2).strip(), (m.group(3) or "required").strip()
        enum_cls = _enum_type(ptype)
        choices = tuple(enum_cls.__members__) if enum_cls else ()
        short = ptype.rsplit(".", 1)[-1] if enum_cls else ("str" if "str" in ptype else ptype)
        out[pname] = ParamInfo(pname, short, re.sub(r"<\w+\.(\w+): \d+>", r"\1", default), choices, enum_cls)
    return out


def _enum_type(ptype: str) -> Any:
    parts = ptype.split(".")
    if len(parts) >= 2:
        owner = getattr(pedalboard, parts[-2], None)
        e = getattr(owner, parts[-1], None) if owner is not None else None
        if e is not None and hasattr(e, "__members__"):
            return e
    return None


def describe_builtins() -> str:
    """One line per built-in: Name(param=default, ...) — used in help and error messages."""
    lines = []
    for name in builtin_effects():
        ps = ", ".join(f"{p.name}={p.default}" for p in builtin_params(name).values())
        lines.append(f"{name}({ps})")
    return "\n".join(lines)


def _fail(spec: EffectSpec, msg: str) -> EffectError:
    return EffectError(f"{spec.where} ({spec.label}): {msg}")


def _convert(spec: EffectSpec, info: ParamInfo, value: Any, base_dir: Path) -> Any:
    key = f"parameter {info.name}"
    if info.choices:
        if not isinstance(value, str) or value not in info.choices:
            raise _fail(spec, f"{key} = {value!r} is not valid; use one of {', '.join(info.choices)}")
        return info.enum.__members__[value]
    if info.type == "str":
        if not isinstance(value, str):
            raise _fail(spec, f"{key} = {value!r} must be a file name (relative to the session file)")
        path = base_dir / value
        if not path.is_file():
            raise _fail(spec, f"{key}: file {path} does not exist")
        return str(path)
    if info.type == "bool":
        if not isinstance(value, bool):
            raise _fail(spec, f"{key} = {value!r} must be true or false")
        return value
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _fail(spec, f"{key} = {value!r} must be a number")
    lo, hi = {**_RANGES["*"], **_RANGES.get(spec.builtin or "", {})}.get(info.name, (-math.inf, math.inf))
    if not lo <= value <= hi:
        raise _fail(spec, f"{key} = {value!r} is out of range; valid: [{lo:g}, {hi:g}]")
    return float(value)


def build_builtin(spec: EffectSpec, base_dir: Path = Path(".")) -> pedalboard.Plugin:
    effects = builtin_effects()
    if spec.builtin not in effects:
        close = [n for n in effects if n.lower() == str(spec.builtin).lower()]
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise EffectError(f"{spec.where}: unknown effect {spec.builtin!r}{hint}; built-in effects: "
                          f"{', '.join(effects)}; or give vst3 = \"/path/Plugin.vst3\"")
    params = builtin_params(spec.builtin)
    kwargs = {}
    for k, v in spec.params.items():
        if k not in params:
            avail = ", ".join(f"{p.name} (default {p.default})" for p in params.values()) or "none"
            raise _fail(spec, f"unknown parameter {k!r}; {spec.builtin} has: {avail}")
        kwargs[k] = _convert(spec, params[k], v, base_dir)
    missing = [p.name for p in params.values() if p.default == "required" and p.name not in kwargs]
    if missing:
        raise _fail(spec, f"parameter {missing[0]} is required")
    try:
        return effects[spec.builtin](**kwargs)
    except (ValueError, TypeError, RuntimeError) as exc:
        raise _fail(spec, f"pedalboard refused the parameters {kwargs}: {exc}") from exc


def build_vst3(spec: EffectSpec, sample_rate: int, channels: int = 2) -> pedalboard.Plugin:
    """Load a VST3 plugin, restore its state, set parameters, and check it can process `channels` channels."""
    path = spec.vst3
    if path is None or not path.exists():
        raise _fail(spec, f"VST3 plugin {path} does not exist; Debian's zam-plugins install them to /usr/lib/vst3")
    try:
        plugin = pedalboard.VST3Plugin(str(path))
    except (ImportError, RuntimeError, ValueError) as exc:
        raise _fail(spec, f"VST3 plugin {path} failed to load: {exc}") from exc
    if spec.state is not None:
        _restore_state(spec, plugin)
    names = plugin.parameters
    for k, v in spec.params.items():
        if k not in names:
            raise _fail(spec, f"unknown parameter {k!r}; {path.stem} has: {', '.join(names)}")
        try:
            setattr(plugin, k, v)
        except (ValueError, TypeError) as exc:
            raise _fail(spec, f"parameter {k} = {v!r}: {exc}") from exc
    try:
        plugin.process(np.zeros((channels, 256), np.float32), float(sample_rate), reset=True)
    except ValueError as exc:
        raise _fail(spec, f"plugin {path.stem} cannot process {channels}-channel audio ({exc}); it is mono-only. "
                    "Use its stereo variant (e.g. ZamCompX2 instead of ZamComp) or another plugin") from exc
    plugin.reset()
    return plugin


def _restore_state(spec: EffectSpec, plugin: Any) -> None:
    state = spec.state
    if not state.is_file():
        raise _fail(spec, f"state file {state} does not exist")
    try:
        if state.suffix.lower() == ".vstpreset":
            plugin.load_preset(str(state))
        else:
            plugin.raw_state = state.read_bytes()
    except (ValueError, RuntimeError, OSError) as exc:
        raise _fail(spec, f"cannot restore state from {state}: {exc}; save it again from the plugin") from exc


class EffectChain:
    """A stem's chain: built once and checked, then `process(audio, sample_rate)` -> processed copy."""

    def __init__(self, specs: tuple[EffectSpec, ...], sample_rate: int, base_dir: Path = Path("."),
                 channels: int = 2):
        self.specs = tuple(s for s in specs if not s.bypass)
        self.sample_rate = sample_rate
        plugins = [build_vst3(s, sample_rate, channels) if s.vst3 is not None else build_builtin(s, base_dir)
                   for s in self.specs]
        self.board = pedalboard.Pedalboard(plugins)

    def __len__(self) -> int:
        return len(self.board)

    def process(self, audio: np.ndarray) -> np.ndarray:
        """(channels, samples) float32 -> same shape, float32; the chain starts from a reset state."""
        if not len(self.board):
            return np.array(audio, dtype=np.float32, copy=True)
        x = np.ascontiguousarray(audio, dtype=np.float32)
        try:
            out = self.board.process(x, float(self.sample_rate), reset=True)
        except (ValueError, RuntimeError) as exc:
            raise EffectError(f"effect chain ({', '.join(s.label for s in self.specs)}) failed: {exc}") from exc
        if out.shape != x.shape:  # effects with latency are compensated by pedalboard; guard the length anyway
            fixed = np.zeros_like(x)
            n = min(x.shape[1], out.shape[1])
            fixed[:, :n] = out[:, :n]
            out = fixed
        return np.ascontiguousarray(out, dtype=np.float32)

