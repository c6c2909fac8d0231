"""musika.toml: the daemon's configuration as frozen dataclasses, read by one loader.

Defaults live in the dataclass fields. The loader refuses unknown keys and wrong values, naming the file, the key,
the value and what is allowed. Command-line flags override the same fields (see :func:`with_overrides`).
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bridge.controls import CCMapping
from bridge.errors import ConfigError
from bridge.sync import SYNC_MODES
from generator.runtime.model_config import PHASES
from generator.runtime.output_stage import CEILING_DBTP, CEILING_RANGE, GAIN_RANGE, TARGET_LUFS, TARGET_RANGE
from generator.timeline.planner import QUANTISE_MODES
from generator.timeline.stretch import SNAP_MAX_MS, SNAP_MS

OUTPUTS = ("auto", "jack", "portaudio", "reastream", "wav")


@dataclass(frozen=True)
class OutputConfig:
    kind: str = "auto"  # auto: JACK if a server runs, else the default device, else a WAV file
    device: str = ""  # PortAudio device name (BlackHole, CABLE Input, ...); "" = default device
    jack_client: str = "musika"
    jack_connect: tuple[str, ...] = ()  # JACK ports to connect out_L/out_R to, e.g. ["system:playback_1", ...]
    reastream_host: str = "127.0.0.1"
    reastream_port: int = 58710
    reastream_id: str = "musika"
    wav_path: str = "runs/musika-live.wav"
    block_size: int = 512
    # the output stage (generator.runtime.output_stage): every preset plays at loudness_lufs, gain_db on top, no
    # sample or
    # inter-sample peak above ceiling_dbtp
    loudness_lufs: float = TARGET_LUFS
    ceiling_dbtp: float = CEILING_DBTP
    gain_db: float = 0.0


@dataclass(frozen=True)
class SyncConfig:
    source: str = "auto"
    bpm: float = 128.0  # tempo of the internal clock (and the start tempo before a host is heard)
    meter: tuple[int, int] = (4, 4)
    offset_ms: float = 0.0  # positive: Musika plays that much earlier, to cover the route's latency
    snap_ms: float = SNAP_MS  # each generated beat and off-beat moved onto the host grid from at most this far; 0: off
    quantise: str = "bar"  # when control changes take effect: bar, now or phrase
    phrase_bars: int = 8
    timeout_s: float = 2.0  # a source silent this long is considered gone (auto falls back)


@dataclass(frozen=True)
class MidiConfig:
    enabled: bool = True
    port: str = "Musika"  # virtual port name, or the existing port to open with virtual = false
    virtual: bool = True
    backend: str = "auto"  # auto, jack, alsa, coremidi, winmm
    cc: tuple[CCMapping, ...] = ()


@dataclass(frozen=True)
class OscConfig:
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 9000
    allow: tuple[str, ...] = ()  # client networks allowed when host is not loopback, e.g. ["192.168.1.0/24"]
    ableton: bool = False  # poll Ableton Live through AbletonOSC (UDP 11000/11001)
    ableton_host: str = "127.0.0.1"


@dataclass(frozen=True)
class PathsConfig:
    sessions: str = "sessions"  # render requests over OSC may only read session files below this folder
    renders: str = "renders"  # ... and only write below this one
    control_log: str = "runs/performance-{time}.jsonl"


@dataclass(frozen=True)
class Config:
    preset: str = "techno"
    presets_dirs: tuple[str, ...] = ()
    threads: int = 1
    seed: int = 0
    phase: str = "preset"  # or one of generator.runtime.model_config.PHASES: how decoded spectra get their phase
    status_line: bool = True
    output: OutputConfig = field(default_factory=OutputConfig)
    sync: SyncConfig = field(default_factory=SyncConfig)
    midi: MidiConfig = field(default_factory=MidiConfig)
    osc: OscConfig = field(default_factory=OscConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)

    def __post_init__(self) -> None:
        _check_choice("output.kind", self.output.kind, OUTPUTS)
        _check_choice("sync.source", self.sync.source, SYNC_MODES)
        _check_choice("sync.quantise", self.sync.quantise, QUANTISE_MODES)
        _check_range("threads", self.threads, 1, 64)
        _check_choice("phase", self.phase, ("preset", *PHASES))
        _check_range("osc.port", self.osc.port, 0, 65535)
        _check_range("output.reastream_port", self.output.reastream_port, 1, 65535)
        _check_range("output.block_size", self.output.block_size, 16, 8192)
        _check_range("output.loudness_lufs", self.output.loudness_lufs, *TARGET_RANGE)
        _check_range("output.ceiling_dbtp", self.output.ceiling_dbtp, *CEILING_RANGE)
        _check_range("output.gain_db", self.output.gain_db, *GAIN_RANGE)
        _check_range("sync.bpm", self.sync.bpm, 20, 300)
        _check_range("sync.offset_ms", self.sync.offset_ms, -1000, 1000)
        _check_range("sync.snap_ms", self.sync.snap_ms, 0, SNAP_MAX_MS)
        _check_range("sync.phrase_bars", self.sync.phrase_bars, 1, 64)
        _check_range("sync.timeout_s", self.sync.timeout_s, 0.1, 60)
        num, den = self.sync.meter
        _check_range("sync.meter[0]", num, 1, 32)
        if den not in (1, 2, 4, 8, 16, 32):
            raise ConfigError(f"sync.meter[1]: {den} is not a note value; use 2, 4, 8 or 16")


def _check_choice(key: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{key}: {value!r} is not one of {', '.join(choices)}")


def _check_range(key: str, value: float, lo: float, hi: float) -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and lo <= value <= hi):
        raise ConfigError(f"{key}: {value!r} is out of range {lo:g}-{hi:g}")


def _convert(key: str, value: Any, hint: Any) -> Any:
    origin = typing.get_origin(hint)
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: {value!r} must be true or false")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: {value!r} must be a whole number")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: {value!r} must be a number")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: {value!r} must be a string")
        return value
    if origin is tuple:
        if not isinstance(value, list):
            raise ConfigError(f"{key}: {value!r} must be a list")
        args = typing.get_args(hint)
        if args and args[-1] is Ellipsis:
            if args[0] is CCMapping:
                return tuple(CCMapping.from_dict(v, f"{key}[{i}]") for i, v in enumerate(value))
            return tuple(_convert(f"{key}[{i}]", v, args[0]) for i, v in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(f"{key}: {value!r} must have {len(args)} items")
        return tuple(_convert(f"{key}[{i}]", v, a) for i, (v, a) in enumerate(zip(value, args, strict=True)))
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: must be a table [{key}]")
        return _build(hint, value, key)
    raise ConfigError(f"{key}: unsupported value {value!r}")


def _build(kind: type, data: dict[str, Any], prefix: str = "") -> Any:
    hints = typing.get_type_hints(kind)
    names = [f.name for f in dataclasses.fields(kind)]
    values = {}
    for key, value in data.items():
        full = f"{prefix}.{key}" if prefix else key
        if key not in names:
            raise ConfigError(f"{full}: unknown key; valid keys{' in [' + prefix + ']' if prefix else ''}: "
                              f"{', '.join(names)}")
        values[key] = _convert(full, value, hints[key])
    return kind(**values)


def from_dict(data: dict[str, Any]) -> Config:
    return _build(Config, data)


def load_config(path: str | Path | None) -> Config:
    """Read musika.toml (None: defaults). Errors name the file and the line or key."""
    if path is None:
        return Config()
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror}); pass an existing file to --config") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from exc
    try:
        return from_dict(data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc


def with_overrides(cfg: Config, overrides: dict[str, Any]) -> Config:
    """Apply dotted-key overrides (from CLI flags; None means "not given"), validated like the file."""
    data = to_dict(cfg)
    for dotted, value in overrides.items():
        if value is None:
            continue
        node = data
        *parents, leaf = dotted.split(".")
        for p in parents:
            node = node[p]
        node[leaf] = list(value) if isinstance(value, tuple) else value
    return from_dict(data)


def to_dict(cfg: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cfg):
        v = getattr(cfg, f.name)
        if dataclasses.is_dataclass(v):
            out[f.name] = to_dict(v)
        elif isinstance(v, tuple):
            out[f.name] = [x.to_dict() if isinstance(x, CCMapping) else x for x in v]
        else:
            out[f.name] = v
    return out
