"""Sync source arbitration (pure logic: times are arguments).

Sources: ``midi`` (MIDI clock), ``link`` (Ableton Link peers), ``osc`` (the DAW's tempo/transport over OSC),
``jack`` (the JACK transport, read only when it is the chosen source) and ``internal`` (free-running at a set
tempo; always alive). In ``auto`` mode the arbiter follows the
highest-priority source that is alive (heard within ``timeout_s``), falls back to the next one when the current
source goes silent, and to ``internal`` when none is left; a forced mode keeps its source and says when it is
silent. :attr:`reason` is a one-line explanation for telemetry (/musika/status) and the log.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from .errors import ConfigError

logger = logging.getLogger(__name__)

SOURCES = ("midi", "link", "osc", "jack", "internal")
SYNC_MODES = ("auto", *SOURCES)  # what sync.source / --sync / /musika/sync accept: a source, or auto
MODES = ("auto",) + SOURCES


@dataclass(frozen=True)
class SyncDecision:
    """source: the source that drives the transport now; changed: it differs from the previous decision."""

    source: str
    reason: str
    changed: bool


class SyncArbiter:
    """Chooses which sync source drives the transport.

    mode: "auto" or one source name. timeout_s: a source not heard for longer is silent. priority: auto's order
    of preference among midi/link/osc (internal is always last). Call :meth:`seen` whenever a source delivers
    sync data (each MIDI clock tick, each Link poll with peers, each OSC tempo/transport/beat message) and
    :meth:`update` regularly (e.g. every audio block or every 100 ms) or before each decision.
    """

    def __init__(
        self,
        mode: str = "auto",
        timeout_s: float = 2.0,
        priority: tuple[str, ...] = ("midi", "link", "osc"),
    ):
        if not timeout_s > 0:
            raise ConfigError(f"sync timeout: {timeout_s!r} s must be > 0")
        bad = [p for p in priority if p not in SOURCES[:-1]]
        if bad or len(set(priority)) != len(priority):
            raise ConfigError(f"sync priority: {list(priority)!r} must list distinct names from "
                              f"{', '.join(SOURCES[:-1])}")
        self.timeout_s = float(timeout_s)
        self.priority = tuple(priority) + tuple(s for s in SOURCES[:-1] if s not in priority)
        self._last: dict[str, float] = {}
        self.mode = "auto"
        self.set_mode(mode)
        self.current = "internal"
        self.reason = "no sync source heard yet; running on the internal clock"

    def set_mode(self, mode: str, t: float | None = None) -> SyncDecision | None:
        """Force a source or return to "auto" (from config, the CLI or /musika/sync/source)."""
        if mode not in MODES:
            raise ConfigError(f"sync source: {mode!r} is not one of {', '.join(MODES)}")
        self.mode = mode
        return self.update(t) if t is not None else None

    def seen(self, source: str, t: float) -> None:
        """Source ``source`` delivered sync data at host time ``t``."""
        if source not in SOURCES:
            raise ConfigError(f"sync source: {source!r} is not one of {', '.join(SOURCES)}")
        if t >= self._last.get(source, -math.inf):
            self._last[source] = t

    def age(self, source: str, t: float) -> float:
        """Seconds since ``source`` was last heard (inf if never; 0 for internal)."""
        if source == "internal":
            return 0.0
        return t - self._last[source] if source in self._last else math.inf

    def alive(self, source: str, t: float) -> bool:
        return self.age(source, t) <= self.timeout_s

    def accepts(self, source: str) -> bool:
        """Whether sync events from ``source`` should drive the transport now (as of the last update)."""
        return source == self.current

    def update(self, t: float) -> SyncDecision:
        """Re-evaluate at host time ``t``; logs and reports when the source changes."""
        previous = self.current
        if self.mode != "auto":
            source = self.mode
            if self.alive(source, t):
                reason = f"{source} (forced)"
            else:
                reason = f"{source} (forced) is silent: {self._silence(source, t)}; holding the last tempo"
        else:
            source = next((s for s in self.priority if self.alive(s, t)), "internal")
            if source != "internal":
                reason = f"{source} (auto: alive)"
                if previous not in (source, "internal") and not self.alive(previous, t):
                    reason = f"{source} (auto: {previous} {self._silence(previous, t)})"
            elif previous != "internal":
                reason = f"internal (auto: {previous} {self._silence(previous, t)}; no other source alive)"
            else:
                reason = self.reason if not self._last else "internal (auto: no sync source alive)"
        changed = source != previous
        self.current, self.reason = source, reason
        if changed:
            logger.info("sync source: %s -> %s: %s", previous, source, reason)
        return SyncDecision(source, reason, changed)

    def _silence(self, source: str, t: float) -> str:
        age = self.age(source, t)
        return "never heard" if math.isinf(age) else f"silent for {age:.1f} s"

    def status(self, t: float) -> dict:
        """Telemetry: mode, current source, reason, and seconds since each source was heard (None: never)."""
        ages = {s: (None if math.isinf(self.age(s, t)) else round(self.age(s, t), 3)) for s in SOURCES[:-1]}
        return {"mode": self.mode, "source": self.current, "reason": self.reason, "last_heard_s": ages}
