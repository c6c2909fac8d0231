"""The offline session file (session.toml): read with tomllib into frozen dataclasses, validated key by key.

Errors name the file, the key path (``stems[1].effects[0].ratio``) and, where it can be found, the line; the value
received; and what is valid. Bars are 1-based as in a DAW; beats are quarter-note beats from the session start.
Structure only is checked here: effect names/parameters are checked by :mod:`generator.offline.effects`, conditioning
values against the preset's trained ranges by :mod:`generator.offline.render` (both before any audio is rendered).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from generator.errors import MusikaError
from generator.offline.session_grid import Grid
from generator.runtime.model_config import SAMPLE_RATE

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]


class SessionError(MusikaError, ValueError):
    """A session file cannot be read, is not valid TOML, or has an unknown key or out-of-range value."""


SAMPLE_RATES = (SAMPLE_RATE, 48000)
BITS = ("16", "24", "float")
FORMATS = ("wav", "flac")
DENOMINATORS = (1, 2, 4, 8, 16, 32)
__all__ = ["Grid", "Session", "SessionError", "load_session", "parse_session"]

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class Automation:
    """A value over bars: points ((bar, value), ...) with linear interpolation, held before/after the ends."""

    points: tuple[tuple[float, float], ...]

    def value_at(self, bar: float) -> float:
        p = self.points
        if bar <= p[0][0]:
            return p[0][1]
        for (b0, v0), (b1, v1) in zip(p, p[1:], strict=False):
            if bar <= b1:
                return v0 + (v1 - v0) * (bar - b0) / (b1 - b0) if b1 > b0 else v1
        return p[-1][1]

    @property
    def values(self) -> tuple[float, ...]:
        return tuple(v for _, v in self.points)


@dataclass(frozen=True)
class EffectSpec:
    """One effect of a chain: a pedalboard built-in (`builtin` = class name) or a VST3 plugin (`vst3` = path).

    params: name -> value; state: a .vstpreset or raw state file (VST3 only); where: key path for messages."""

    where: str
    builtin: str | None = None
    vst3: Path | None = None
    params: dict[str, Any] = field(default_factory=dict)
    state: Path | None = None
    bypass: bool = False

    @property
    def label(self) -> str:
        return self.builtin or (self.vst3.stem if self.vst3 else "?")


@dataclass(frozen=True)
class StemSpec:
    """One stem: a preset stream from start_bar (inclusive) to end_bar (exclusive), then its effects, gain, pan."""

    name: str
    preset: str
    seed: int = 0
    variation: float | None = None  # truncation bound of the coordinate stream; None: the preset's default
    start_bar: int = 1
    end_bar: int = 0  # filled in by the loader: bars + 1 unless given
    gain_db: float = 0.0
    pan: float = 0.0  # -1 left .. +1 right (equal-power balance)
    conditioning: dict[str, Automation] = field(default_factory=dict)
    effects: tuple[EffectSpec, ...] = ()


@dataclass(frozen=True)
class OutputSpec:
    format: str = "wav"
    bits: str = "24"
    sample_rate: int = SAMPLE_RATE
    spectrograms: bool = True
    tail_bars: int = 0  # extra bars after the last bar so effect tails are not cut (files stay bar-aligned)


@dataclass(frozen=True)
class MixSpec:
    """Optional loudness normalisation of the mix (LUFS, ITU-R BS.1770) and a true-peak ceiling (dBTP)."""

    lufs: float | None = None
    true_peak_db: float | None = None


@dataclass(frozen=True)
class Session:
    path: Path | None
    grid: Grid
    bars: int
    stems: tuple[StemSpec, ...]
    output: OutputSpec = OutputSpec()
    mix: MixSpec = MixSpec()

    @property
    def total_bars(self) -> int:
        """Bars in every output file: the session's bars plus the tail."""
        return self.bars + self.output.tail_bars

    def base_dir(self) -> Path:
        return self.path.parent if self.path else Path.cwd()


# -- validation helpers ---------------------------------------------------------------------------------------
class _Ctx:
    """Builds error messages naming the file, key path and (best effort) line of a key."""

    def __init__(self, where: str, text: str):
        self.where, self.lines = where, text.splitlines()

    def line_of(self, key: str) -> str:
        """' (line N)' of `key` such as stems[1].effects[0].ratio, narrowing by table headers; '' if unknown."""
        lo, hi, found, prefix = 0, len(self.lines), False, ""
        parts = re.findall(r"(\w+)(?:\[(\d+)\])?", key.split(" (", 1)[0])
        for n, (name, idx) in enumerate(parts):
            prefix = f"{prefix}.{name}" if prefix else name
            if idx:
                head = re.compile(rf"^\s*\[\[\s*{re.escape(prefix)}\s*\]\]")
                hits = [i for i in range(lo, hi) if head.match(self.lines[i])]
                if int(idx) < len(hits):
                    lo, hi, found = hits[int(idx)], (hits[int(idx) + 1] if int(idx) + 1 < len(hits) else hi), True
                continue
            head = re.compile(rf"^\s*\[\s*{re.escape(prefix)}\s*\]")
            hits = [i for i in range(lo, hi) if head.match(self.lines[i])]
            if hits and n < len(parts) - 1:
                lo, found = hits[0], True
                hi = next((i for i in range(lo + 1, hi) if self.lines[i].lstrip().startswith("[")), hi)
                continue
            assign = re.compile(rf"(^|[{{,\s]){re.escape(name)}\s*=")
            for i in range(lo, hi):
                if assign.search(self.lines[i].split("#", 1)[0]):
                    return f" (line {i + 1})"
            break
        return f" (line {lo + 1})" if found else ""

    def fail(self, key: str, msg: str) -> SessionError:
        return SessionError(f"{self.where}: {key}{self.line_of(key)}: {msg}")

    def number(self, table: dict, key: str, path: str, default: Any, lo: float, hi: float,
               integer: bool = False, lo_open: bool = False) -> Any:
        v = table.get(key, default)
        return None if v is None else self.check(v, f"{path}.{key}" if path else key, lo, hi, integer, lo_open)

    def check(self, v: Any, full: str, lo: float, hi: float, integer: bool = False, lo_open: bool = False) -> Any:
        ok_type = isinstance(v, int) if integer else isinstance(v, int | float)
        if isinstance(v, bool) or not ok_type or not math.isfinite(v):
            kind = "an integer" if integer else "a number"
            raise self.fail(full, f"value {v!r} must be {kind} in {_rng(lo, hi, lo_open)}")
        if v < lo or v > hi or (lo_open and v == lo):
            raise self.fail(full, f"value {v!r} is out of range; valid: {_rng(lo, hi, lo_open)}")
        return int(v) if integer else float(v)

    def choice(self, table: dict, key: str, path: str, default: Any, options: tuple) -> Any:
        v = table.get(key, default)
        if isinstance(v, int) and not isinstance(v, bool) and str(v) in options:
            v = str(v)
        if v not in options:
            raise self.fail(f"{path}.{key}", f"value {v!r} is not valid; use one of {', '.join(map(str, options))}")
        return v

    def keys(self, table: Any, path: str, allowed: tuple[str, ...]) -> dict:
        if not isinstance(table, dict):
            raise self.fail(path, f"expected a table, got {type(table).__name__} {table!r}")
        unknown = sorted(set(table) - set(allowed))
        if unknown:
            raise self.fail(f"{path}.{unknown[0]}" if path else unknown[0],
                            f"unknown key {unknown[0]!r}; valid keys here: {', '.join(allowed)}")
        return table


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def _rng(lo: float, hi: float, lo_open: bool = False) -> str:
    return f"{'(' if lo_open else '['}{_num(lo)}, {_num(hi)}]"


# -- parsing ----------------------------------------------------------------------------------------------------
def _grid(c: _Ctx, s: dict) -> Grid:
    tempo = s.get("tempo")
    if tempo is None:
        raise c.fail("session.tempo", "missing; give a tempo in BPM (tempo = 128) or a map "
                     "(tempo = [[1, 128], [9, 132]])")
    if isinstance(tempo, list):
        changes = []
        for i, item in enumerate(tempo):
            if not (isinstance(item, list) and len(item) == 2):
                raise c.fail(f"session.tempo[{i}]", f"value {item!r} must be a [bar, bpm] pair")
            bar = c.check(item[0], f"session.tempo[{i}][0] (bar)", 1, 100000, integer=True)
            bpm = c.check(item[1], f"session.tempo[{i}][1] (bpm)", 20.0, 999.0)
            changes.append((bar, bpm))
        bars_in_map = [b for b, _ in changes]
        if not changes or bars_in_map[0] != 1 or bars_in_map != sorted(set(bars_in_map)):
            raise c.fail("session.tempo", "a tempo map must start at bar 1 and list strictly increasing bars")
    else:
        changes = [(1, c.number(s, "tempo", "session", None, 20.0, 999.0))]
    meter = s.get("time_signature", [4, 4])
    if isinstance(meter, str) and re.fullmatch(r"\d+/\d+", meter.strip()):
        meter = [int(x) for x in meter.strip().split("/")]
    if not (isinstance(meter, list) and len(meter) == 2 and all(isinstance(x, int) for x in meter)):
        raise c.fail("session.time_signature", f"value {meter!r} must be \"4/4\" or [4, 4]")
    if not 1 <= meter[0] <= 32 or meter[1] not in DENOMINATORS:
        raise c.fail("session.time_signature", f"value {meter!r}: numerator 1..32, denominator one of {DENOMINATORS}")
    return Grid(tuple(changes), (meter[0], meter[1]))


def _automation(c: _Ctx, v: Any, key: str, bars: int) -> Automation:
    if isinstance(v, int | float) and not isinstance(v, bool):
        return Automation(((1.0, c.check(v, key, -1e9, 1e9)),))
    if not isinstance(v, list) or not v:
        raise c.fail(key, f"value {v!r} must be a number or a list of [bar, value] points, e.g. [[1, 2.0], [5, 8.0]]")
    pts = []
    for i, item in enumerate(v):
        if not (isinstance(item, list) and len(item) == 2):
            raise c.fail(f"{key}[{i}]", f"value {item!r} must be a [bar, value] pair")
        bar = c.check(item[0], f"{key}[{i}][0] (bar)", 1, bars + 1)
        val = c.check(item[1], f"{key}[{i}][1] (value)", -1e9, 1e9)
        if pts and bar < pts[-1][0]:
            raise c.fail(f"{key}[{i}]", f"bar {bar:g} comes before the previous point's bar {pts[-1][0]:g}")
        pts.append((bar, val))
    return Automation(tuple(pts))


_EFFECT_KEYS = ("type", "vst3", "params", "state", "bypass")


def _effect(c: _Ctx, e: Any, path: str, base: Path) -> EffectSpec:
    if not isinstance(e, dict):
        raise c.fail(path, f"expected a table, got {e!r}")
    kind, vst = e.get("type"), e.get("vst3")
    bypass = e.get("bypass", False)
    if not isinstance(bypass, bool):
        raise c.fail(f"{path}.bypass", f"value {bypass!r} must be true or false")
    if (kind is None) == (vst is None):
        raise c.fail(path, "give exactly one of type = \"Reverb\" (a built-in) or vst3 = \"/path/Plugin.vst3\"")
    if kind is not None:
        if not isinstance(kind, str):
            raise c.fail(f"{path}.type", f"value {kind!r} must be a string such as \"Compressor\"")
        extra = {k: v for k, v in e.items() if k not in ("type", "bypass")}
        if "state" in extra:
            raise c.fail(f"{path}.state", "saved state applies to VST3 plugins only")
        params = extra.pop("params", {})
        if not isinstance(params, dict):
            raise c.fail(f"{path}.params", f"value {params!r} must be a table of parameter = value")
        return EffectSpec(where=path, builtin=kind, params={**params, **extra}, bypass=bypass)
    c.keys(e, path, _EFFECT_KEYS[1:])
    if not isinstance(vst, str):
        raise c.fail(f"{path}.vst3", f"value {vst!r} must be the path of a .vst3 plugin")
    params = e.get("params", {})
    if not isinstance(params, dict):
        raise c.fail(f"{path}.params", f"value {params!r} must be a table of parameter = value")
    state = e.get("state")
    if state is not None and not isinstance(state, str):
        raise c.fail(f"{path}.state", f"value {state!r} must be the path of a .vstpreset or raw state file")
    return EffectSpec(where=path, vst3=(base / vst), params=dict(params),
                      state=(base / state) if state else None, bypass=bypass)


_STEM_KEYS = ("name", "preset", "seed", "variation", "start_bar", "end_bar", "gain_db", "pan", "conditioning",
              "effects")


def _stem(c: _Ctx, t: Any, i: int, bars: int, base: Path) -> StemSpec:
    path = f"stems[{i}]"
    c.keys(t, path, _STEM_KEYS)
    name = t.get("name", f"stem{i + 1}")
    if not isinstance(name, str) or not _NAME_RE.match(name) or name == "mix":
        raise c.fail(f"{path}.name", f"value {name!r} must be 1-64 letters, digits, '_', '-', '.' (not 'mix'); "
                     "it becomes the file name")
    preset = t.get("preset")
    if not isinstance(preset, str) or not preset:
        raise c.fail(f"{path}.preset", f"value {preset!r}: give a preset name (see `musika presets`) or directory")
    if not Path(preset).is_absolute() and (base / preset).exists():
        preset = str(base / preset)
    start = c.number(t, "start_bar", path, 1, 1, bars, integer=True)
    end = c.number(t, "end_bar", path, bars + 1, start + 1, bars + 1, integer=True)
    cond = t.get("conditioning", {})
    c.keys(cond, f"{path}.conditioning", tuple(cond) if isinstance(cond, dict) else ())
    if "tempo" in cond:
        raise c.fail(f"{path}.conditioning.tempo", "tempo is set once per session ([session] tempo), not per stem")
    effects = t.get("effects", [])
    if not isinstance(effects, list):
        raise c.fail(f"{path}.effects", "must be a list of tables ([[stems.effects]])")
    return StemSpec(
        name=name, preset=preset,
        seed=c.number(t, "seed", path, 0, 0, 2**32 - 1, integer=True),
        variation=c.number(t, "variation", path, None, 0.0, 10.0, lo_open=True),
        start_bar=start, end_bar=end,
        gain_db=c.number(t, "gain_db", path, 0.0, -120.0, 24.0),
        pan=c.number(t, "pan", path, 0.0, -1.0, 1.0),
        conditioning={k: _automation(c, v, f"{path}.conditioning.{k}", bars) for k, v in cond.items()},
        effects=tuple(_effect(c, e, f"{path}.effects[{j}]", base) for j, e in enumerate(effects)),
    )


def parse_session(text: str, where: str = "session.toml", path: Path | None = None) -> Session:
    """Parse session TOML text; `where` names the file in messages, `path` anchors relative paths."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SessionError(f"{where}: invalid TOML: {exc}; fix the syntax at that line") from exc
    c = _Ctx(where, text)
    c.keys(data, "", ("session", "output", "mix", "stems"))
    s = c.keys(data.get("session", {}), "session", ("tempo", "time_signature", "bars"))
    grid = _grid(c, s)
    bars = c.number(s, "bars", "session", None, 1, 100000, integer=True)
    if bars is None:
        raise c.fail("session.bars", "missing; give the session length in bars, e.g. bars = 8")
    if grid.tempo[-1][0] > bars:
        raise c.fail("session.tempo", f"tempo change at bar {grid.tempo[-1][0]} is after the last bar ({bars})")
    o = c.keys(data.get("output", {}), "output", ("format", "bits", "sample_rate", "spectrograms", "tail_bars"))
    output = OutputSpec(
        format=c.choice(o, "format", "output", "wav", FORMATS),
        bits=c.choice(o, "bits", "output", "24", BITS),
        sample_rate=c.choice(o, "sample_rate", "output", SAMPLE_RATE, SAMPLE_RATES),
        spectrograms=bool(o.get("spectrograms", True)),
        tail_bars=c.number(o, "tail_bars", "output", 0, 0, 64, integer=True),
    )
    if output.format == "flac" and output.bits == "float":
        raise c.fail("output.bits", "FLAC cannot store float samples; use bits = \"24\" or format = \"wav\"")
    m = c.keys(data.get("mix", {}), "mix", ("lufs", "true_peak_db"))
    mix = MixSpec(lufs=c.number(m, "lufs", "mix", None, -70.0, 0.0),
                  true_peak_db=c.number(m, "true_peak_db", "mix", None, -20.0, 0.0))
    stems_raw = data.get("stems")
    if not isinstance(stems_raw, list) or not stems_raw:
        raise c.fail("stems", "missing; add at least one [[stems]] table with a name and a preset")
    base = path.parent if path else Path.cwd()
    stems = tuple(_stem(c, t, i, bars, base) for i, t in enumerate(stems_raw))
    names = [st.name for st in stems]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise c.fail("stems", f"stem names must be unique; {dup[0]!r} appears {names.count(dup[0])} times")
    return Session(path=path, grid=grid, bars=bars, stems=stems, output=output, mix=mix)


def load_session(path: str | Path) -> Session:
    """Read and validate a session file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SessionError(f"cannot read the session file {path}: {exc}; check the path") from exc
    return parse_session(text, where=str(path), path=path.resolve())
