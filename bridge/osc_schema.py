"""How an OSC address is described and checked: argument specs, validation, path confinement (pure).

bridge.osc_addresses holds the one table built from these types; this module holds no addresses itself.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bridge import reaper
from bridge.events import Event
from bridge.errors import BridgeError


class OscInputError(BridgeError, ValueError):
    """An OSC message that cannot be used: unknown address, wrong arguments, or a path outside its root."""


@dataclass(frozen=True)
class Arg:
    """One argument: kind "f" float, "i" int, "s" string, "t" trigger (optional number/bool; 0 = release)."""

    name: str
    kind: str
    unit: str = ""
    lo: float | None = None
    hi: float | None = None
    optional: bool = False
    choices: tuple[str, ...] = ()

    def describe(self) -> str:
        rng = f" {self.lo:.10g}–{self.hi:.10g}" if self.lo is not None and self.hi is not None else ""
        rng += f" ({'/'.join(self.choices)})" if self.choices else ""
        text = f"{self.kind} {self.name}{rng}{' ' + self.unit if self.unit else ''}"
        return f"[{text}]" if self.optional else text


@dataclass(frozen=True)
class ParamSpec:
    """A continuous control the server exposes as `/musika/param/<name>` (0–1 over the wire, mapped to unit)."""

    name: str
    minimum: float
    maximum: float
    default: float
    unit: str = ""

    def from_normalised(self, x: float) -> float:
        return self.minimum + x * (self.maximum - self.minimum)


@dataclass
class Context:
    """What decoding may consult: providers owned by the daemon, the path roots, the Reaper state."""

    params: Callable[[], Sequence[ParamSpec]] = lambda: ()
    presets: Callable[[], Sequence[str]] = lambda: ()
    status: Callable[[], Mapping[str, object]] = dict
    path_roots: Mapping[str, Path] = field(default_factory=dict)
    reaper: reaper.ReaperState = field(default_factory=reaper.ReaperState)


@dataclass(frozen=True)
class Request:
    address: str
    args: tuple
    match: dict[str, str]
    sender: tuple[str, int]
    time: float
    ctx: Context


@dataclass
class Decoded:
    """Events for the core; replies go to the sender; echo goes to the sender and every subscriber."""

    events: list[Event] = field(default_factory=list)
    replies: list[tuple[str, tuple]] = field(default_factory=list)
    echo: list[tuple[str, tuple]] = field(default_factory=list)
    subscribe_hz: float | None = None


Factory = Callable[[Request], Decoded]


@dataclass(frozen=True)
class OscAddress:
    pattern: str
    args: tuple[Arg, ...]
    help: str
    factory: Factory
    reply: str = ""
    reaper_action: str = ""  # for Musika.ReaperOSC rows, e.g. "TEMPO"
    regex: re.Pattern = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        rx = re.escape(self.pattern).replace(r"\{name\}", r"(?P<name>[A-Za-z0-9_-]{1,64})")
        object.__setattr__(self, "regex", re.compile(f"^{rx}$"))


def resolve_inside(ctx: Context, root_key: str, user_path: str) -> Path:
    """`user_path` resolved under the configured root `root_key`; refuses anything that escapes it."""
    root = ctx.path_roots.get(root_key)
    if root is None:
        raise OscInputError(f"no {root_key!r} directory is configured, so OSC cannot use paths there; "
                            f"configure it in musika.toml ({sorted(ctx.path_roots)} are configured)")
    if not user_path or "\x00" in user_path or len(user_path) > 512:
        raise OscInputError(f"path {user_path[:80]!r} is empty, too long or contains NUL")
    base = Path(root).resolve()
    target = (base / user_path).resolve()
    if target != base and base not in target.parents:
        raise OscInputError(f"path {user_path!r} escapes the {root_key} directory {base}; "
                            f"give a path relative to it without '..'")
    return target


def _coerce(address: str, arg: Arg, value: object) -> object:
    def bad(valid: str) -> OscInputError:
        return OscInputError(f"{address}: argument {arg.name!r} got {value!r} "
                             f"({type(value).__name__}); expected {valid}")

    if arg.kind == "t":
        if isinstance(value, bool | int | float) and math.isfinite(float(value)):
            return float(value) != 0.0
        raise bad("a number or bool (1 = press, 0 = release)")
    if arg.kind == "s":
        if not isinstance(value, str) or not value.isprintable() or len(value) > 256:
            raise bad("a printable string of at most 256 characters")
        if arg.choices and value not in arg.choices:
            raise bad(f"one of {', '.join(arg.choices)}")
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise bad(f"{'an int' if arg.kind == 'i' else 'a float'} {arg.describe()}")
    num = float(value)
    if not math.isfinite(num) or (arg.kind == "i" and not num.is_integer()):
        raise bad(f"a finite {'integer' if arg.kind == 'i' else 'number'}")
    if (arg.lo is not None and num < arg.lo) or (arg.hi is not None and num > arg.hi):
        raise bad(f"{arg.lo:.10g}–{arg.hi:.10g} {arg.unit}".rstrip())
    return int(num) if arg.kind == "i" else num


def validate(row: OscAddress, address: str, raw: Sequence[object]) -> tuple:
    """Type- and range-check `raw` against the row; returns the coerced arguments (missing optionals dropped)."""
    required = sum(not a.optional for a in row.args)
    if not required <= len(raw) <= len(row.args):
        want = " ".join(a.describe() for a in row.args) or "no arguments"
        raise OscInputError(f"{address}: got {len(raw)} argument(s), expected {want}")
    return tuple(_coerce(address, a, v) for a, v in zip(row.args, raw, strict=False))


def status_messages(status: Mapping[str, object]) -> list[tuple[str, tuple]]:
    """`/musika/status key value key value ...` plus one `/musika/status/<key> value` per key (TouchOSC labels)."""
    def osc_value(v: object) -> object:
        if isinstance(v, bool):
            return int(v)
        if isinstance(v, int | float | str):
            return v
        return "none" if v is None else str(v)

    flat = tuple(x for k, v in status.items() for x in (str(k), osc_value(v)))
    return [("/musika/status", flat)] + [(f"/musika/status/{k}", (osc_value(v),)) for k, v in status.items()]
