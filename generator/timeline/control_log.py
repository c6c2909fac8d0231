"""The control log: every control and transport change of a performance, stamped with its beat position (JSONL).

Line 1 is the session header::

    {"type": "session", "version": 1, "preset": "techno", "seed": 7, "bpm": 128.0, "meter": [4, 4],
     "sample_rate": 44100, "controls": {"density": 0.5}, "snap_ms": 25.0}

(``snap_ms``, the tempo lock's beat snap, is 0 when absent: logs written before it existed replay as played.)

then one line per change, in the order they took effect::

    {"beat": 16.0, "type": "control", "name": "density", "value": 0.8, "quantise": "bar", "at": 13.7}

``beat`` is where the change became audible on the host timeline (quarter-note beats from the song start, after
quantisation); ``at`` is the beat at which it arrived (informational). ``type`` is one of control, transport,
tempo, preset, seed. Transport names are play, stop, continue, locate (value: the beat jumped to, for locate;
while playing, the run ends at ``beat`` and the next one starts at ``value`` crossfaded, without a gap, as when
the daemon hands over to a sync source at its bar line).
Replaying the records through :func:`generator.timeline.stream.render_offline` reproduces the performance.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

from generator.errors import MusikaError
from generator.runtime.model_config import SAMPLE_RATE
from generator.timeline.stretch import SNAP_MAX_MS, SNAP_MS

logger = logging.getLogger(__name__)

VERSION = 1
RecordType = Literal["control", "transport", "tempo", "preset", "seed"]
RECORD_TYPES = ("control", "transport", "tempo", "preset", "seed")
TRANSPORT_NAMES = ("play", "stop", "continue", "locate")


class ControlLogError(MusikaError, ValueError):
    """A control log file is malformed or has an unsupported version."""


@dataclass(frozen=True)
class SessionHeader:
    """The performance's starting point. meter is (numerator, denominator); controls are the initial values."""

    preset: str
    seed: int
    bpm: float
    meter: tuple[int, int] = (4, 4)
    sample_rate: int = SAMPLE_RATE
    controls: dict[str, float] = field(default_factory=dict)
    version: int = VERSION
    snap_ms: float = SNAP_MS  # beat snap of the tempo lock (generator.timeline.stretch); 0: off

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["meter"] = list(self.meter)
        return {"type": "session", **d}


@dataclass(frozen=True)
class ControlRecord:
    """One change. value: float for control/tempo/seed (seed as an integral float), str for preset, the target
    beat (or None) for transport. quantise: bar, now, phrase, or None (not quantised: transport/tempo)."""

    beat: float
    type: RecordType
    name: str
    value: Any = None
    quantise: str | None = None
    at: float | None = None

    def __post_init__(self) -> None:
        if self.type not in RECORD_TYPES:
            raise ControlLogError(f"record type {self.type!r} is not valid; use one of {', '.join(RECORD_TYPES)}")
        if not isinstance(self.beat, int | float) or not math.isfinite(self.beat):
            raise ControlLogError(f"record beat {self.beat!r} must be a finite number of beats")
        if self.type == "transport" and self.name not in TRANSPORT_NAMES:
            raise ControlLogError(
                f"transport record name {self.name!r} is not valid; use one of {', '.join(TRANSPORT_NAMES)}"
            )

    def to_json(self) -> dict[str, Any]:
        d = {"beat": self.beat, "type": self.type, "name": self.name, "value": self.value, "quantise": self.quantise}
        if self.at is not None:
            d["at"] = self.at
        return d


class ControlLogWriter:
    """Appends records to a JSONL file (or any text stream), flushing each line so a crash loses nothing."""

    def __init__(self, target: str | Path | IO[str], header: SessionHeader):
        if isinstance(target, str | Path):
            try:
                self._fh: IO[str] = open(target, "w", encoding="utf-8")  # noqa: SIM115 (closed in close())
            except OSError as exc:
                raise ControlLogError(f"cannot write the control log {target}: {exc}; choose a writable path") from exc
            self._owns = True
        else:
            self._fh, self._owns = target, False
        self.header = header
        self._line(header.to_json())

    def _line(self, obj: dict[str, Any]) -> None:
        self._fh.write(json.dumps(obj, separators=(",", ":")) + "\n")
        self._fh.flush()

    def write(self, record: ControlRecord) -> None:
        self._line(record.to_json())

    def close(self) -> None:
        if self._owns:
            self._fh.close()

    def __enter__(self) -> ControlLogWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _parse_header(obj: dict[str, Any], where: str) -> SessionHeader:
    if obj.get("type") != "session":
        raise ControlLogError(f"{where}: the first line must be the session header ({{\"type\": \"session\", ...}})")
    version = obj.get("version")
    if version != VERSION:
        raise ControlLogError(
            f"{where}: control log version {version!r} is not supported (this build reads version {VERSION}); "
            "re-record the performance or upgrade musika"
        )
    try:
        meter = tuple(int(x) for x in obj.get("meter", (4, 4)))
        return SessionHeader(
            preset=str(obj["preset"]), seed=int(obj["seed"]), bpm=float(obj["bpm"]),
            meter=(meter[0], meter[1]), sample_rate=int(obj.get("sample_rate", SAMPLE_RATE)),
            controls={str(k): float(v) for k, v in (obj.get("controls") or {}).items()},
            snap_ms=_snap_ms(obj.get("snap_ms", 0.0), where),  # a log from before the snap was played without it
        )
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise ControlLogError(f"{where}: malformed session header ({exc}); it needs preset, seed, bpm") from exc


def _snap_ms(value: Any, where: str) -> float:
    snap = float(value)
    if not 0.0 <= snap <= SNAP_MAX_MS:
        raise ControlLogError(f"{where}: snap_ms {snap:g} is outside 0..{SNAP_MAX_MS:g} ms")
    return snap


def parse_lines(lines: Iterable[str], where: str = "control log") -> tuple[SessionHeader, list[ControlRecord]]:
    """Parse JSONL lines -> (header, records). Blank lines are skipped; anything else malformed is an error."""
    it: Iterator[tuple[int, str]] = ((i + 1, s) for i, s in enumerate(lines) if s.strip())
    header: SessionHeader | None = None
    records: list[ControlRecord] = []
    for lineno, text in it:
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ControlLogError(f"{where} line {lineno}: not JSON ({exc.msg})") from exc
        if not isinstance(obj, dict):
            raise ControlLogError(f"{where} line {lineno}: expected a JSON object, got {type(obj).__name__}")
        if header is None:
            header = _parse_header(obj, f"{where} line {lineno}")
            continue
        try:
            records.append(ControlRecord(
                beat=float(obj["beat"]), type=obj["type"], name=str(obj["name"]), value=obj.get("value"),
                quantise=obj.get("quantise"), at=obj.get("at"),
            ))
        except KeyError as exc:
            raise ControlLogError(f"{where} line {lineno}: missing field {exc} (need beat, type, name)") from exc
        except ControlLogError as exc:
            raise ControlLogError(f"{where} line {lineno}: {exc}") from exc
    if header is None:
        raise ControlLogError(f"{where}: empty; a control log starts with a session header line")
    return header, records


def read_control_log(path: str | Path) -> tuple[SessionHeader, list[ControlRecord]]:
    """Read a control log file -> (header, records in file order)."""
    try:
        with open(path, encoding="utf-8") as fh:
            return parse_lines(fh, where=str(path))
    except OSError as exc:
        raise ControlLogError(f"cannot read the control log {path}: {exc}") from exc
