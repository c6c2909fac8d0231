"""How OSC input is described and checked: packets, argument specs, validation, senders, paths (pure).

bridge.osc_addresses holds the one table built from these types; this module holds no addresses itself.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pythonosc.osc_message import OscMessage
from pythonosc.parsing import osc_types

from bridge import reaper
from bridge.errors import BridgeError, ConfigError
from bridge.events import Event

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


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


def parse_allow(allow: Iterable[str]) -> list[Network]:
    """`["192.168.1.0/24", "10.0.0.5"]` -> networks; raises ConfigError naming the bad entry."""
    nets = []
    for entry in allow:
        try:
            nets.append(ipaddress.ip_network(str(entry).strip(), strict=False))
        except ValueError as exc:
            raise ConfigError(f"OSC allow entry {entry!r} is not a network; use CIDR such as 192.168.1.0/24 "
                              f"or a single address such as 192.168.1.20") from exc
    return nets


def sender_allowed(ip: str, allow: Sequence[Network]) -> bool:
    """Loopback senders are always allowed; others only inside one of the `allow` networks."""
    try:
        addr = ipaddress.ip_address(ip.split("%")[0])
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return addr.is_loopback or any(addr in net for net in allow)


_BUNDLE = b"#bundle\x00"
_TAGS = frozenset("ifsbhdtTFNrm[]")
_NTP_TO_UNIX = 2208988800
MAX_DEPTH = 8


def ntp_to_unix(tag: int) -> float:
    """A 64-bit NTP timetag -> Unix seconds; 0.0 for "immediately" (the value 1)."""
    return 0.0 if tag == 1 else (tag >> 32) - _NTP_TO_UNIX + (tag & 0xFFFFFFFF) / 2**32


def parse_message(packet: bytes) -> OscMessage:
    """One OSC message, refusing what python-osc would let through: a length that is not a multiple of 4, type
    tags it does not know (it skips them with a root-logger warning), and bytes left over after the arguments."""
    if len(packet) % 4:
        raise ValueError(f"message of {len(packet)} bytes is not a multiple of 4 (truncated?)")
    _address, index = osc_types.get_string(packet, 0)
    if index < len(packet):
        tags, _ = osc_types.get_string(packet, index)
        unknown = set(tags[1:]) - _TAGS
        if not tags.startswith(",") or unknown:
            raise ValueError(f"type tag string {tags[:40]!r} is not ',' followed by known tags ({''.join(_TAGS)})")
    return OscMessage(packet)


def flatten(packet: bytes, outer: float = 0.0, depth: int = 0) -> list[tuple[float, OscMessage]]:
    """A datagram -> [(timetag as Unix seconds or 0.0 for immediately, message)], nested bundles included.

    Strict where python-osc is lax (it skips unknown bundle elements and accepts lying sizes): any malformed
    part raises ValueError or python-osc's ParseError. An inner bundle never runs before its enclosing one."""
    if packet[:1] == b"/":
        return [(outer, parse_message(packet))]
    if packet[:8] != _BUNDLE or len(packet) < 16:
        raise ValueError("neither an OSC message (starts with '/') nor a bundle (starts with '#bundle')")
    if depth >= MAX_DEPTH:
        raise ValueError(f"bundles nested deeper than {MAX_DEPTH}")
    stamp = ntp_to_unix(int.from_bytes(packet[8:16], "big"))
    stamp = max(stamp, outer) if stamp else outer
    out, index = [], 16
    while index < len(packet):
        size = int.from_bytes(packet[index:index + 4], "big", signed=True)
        element = packet[index + 4:index + 4 + size]
        if len(packet) - index < 4 or size <= 0 or size % 4 or len(element) != size:
            raise ValueError(f"bundle element at byte {index} claims {size} bytes, {len(element)} present")
        out.extend(flatten(element, stamp, depth + 1))
        index += 4 + size
    return out
