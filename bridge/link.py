"""Ableton Link through aalink: follow the session's tempo, beat and phase (quantum = one bar), start/stop sync.

Off by default. With ``enabled=False`` aalink keeps a local timeline and sends nothing; with ``enabled=True`` it
joins the Link session on the LAN (UDP multicast, port 20808). aalink is imported only when a LinkSync starts,
so the daemon runs without it unless `--sync link` is chosen.

Events handed to `on_event` (source "link"): TempoEvent when the session tempo changes (also when another
peer changes it), TransportEvent play/stop from start/stop sync, and PositionEvent(exact=True) at `position_hz`.
A peer that ramps its tempo changes it many times a second (a ramp of 6 BPM over 8 s in 50 ms steps: 160 changes,
each of which re-planned the audio ahead and made the daemon underrun); the changes pass through
:class:`~bridge.tempo_hysteresis.TempoHysteresis` as MIDI clock's do (a change of more than 0.3 BPM at once),
and the tempo the session settles on is passed at the next position once it has held still.
For block scheduling the core asks :meth:`LinkSync.beat_at` / :meth:`phase_at` for the host time at which a
block's first sample reaches the speaker (Link's reference is the speaker, so add the output latency).
Beat numbers differ between peers; the phase (beat mod quantum) is what they share.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from typing import Any

from bridge.errors import BridgeError
from bridge.events import Event, PositionEvent, TempoEvent, TransportEvent
from bridge.tempo_hysteresis import TempoHysteresis
from bridge.tempo_ramp import RampSlope

logger = logging.getLogger(__name__)
SOURCE = "link"


class LinkUnavailableError(BridgeError):
    """aalink (Ableton Link for Python) is not installed or cannot start."""


def beat_at(beat_now: float, now: float, bpm: float, host_time: float) -> float:
    """The beat at `host_time` given `beat_now` at `now` and a constant tempo (pure; times in seconds)."""
    return beat_now + (host_time - now) * bpm / 60.0


class LinkSync:
    """A Link peer on the running asyncio loop. `await start()`, `await stop()`; see the module docstring."""

    def __init__(self, quantum: float = 4.0, on_event: Callable[[Event], None] = lambda e: None,
                 bpm: float = 120.0, enabled: bool = False, start_stop_sync: bool = True,
                 position_hz: float = 4.0, hysteresis_bpm: float = 0.3) -> None:
        if not (math.isfinite(quantum) and 1 <= quantum <= 64):
            raise ValueError(f"Link quantum {quantum} is outside 1–64 beats; use the bar length (4 for 4/4)")
        if not (math.isfinite(bpm) and 20 <= bpm <= 999):
            raise ValueError(f"Link tempo {bpm} is outside Link's 20–999 BPM")
        self.quantum, self.on_event, self._bpm = float(quantum), on_event, float(bpm)
        self._enabled, self.start_stop_sync, self.position_hz = enabled, start_stop_sync, position_hz
        self._link: Any = None
        self._task: asyncio.Task | None = None
        self._own_tempo: float | None = None
        self.hysteresis = TempoHysteresis(hysteresis_bpm)
        self.hysteresis.current = self._bpm  # our own starting tempo is not news
        self.ramp = RampSlope()  # a peer's ramp, from the session's tempo at each change and each position

    async def start(self) -> None:
        try:
            import aalink
        except ImportError as exc:
            raise LinkUnavailableError("Ableton Link needs the aalink package: pip install aalink "
                                       "(or choose another sync source)") from exc
        link = aalink.Link(self._bpm)
        link.quantum = self.quantum
        link.start_stop_sync_enabled = self.start_stop_sync
        link.set_tempo_callback(self._tempo_changed)
        link.set_start_stop_callback(self._start_stop)
        link.set_num_peers_callback(lambda n: logger.info("Link: %d peer(s)", n))
        link.enabled = self._enabled
        self._link = link
        if self.position_hz > 0:
            self._task = asyncio.create_task(self._positions(), name="link-positions")
        logger.info("Link %s (quantum %g, start/stop sync %s)", "enabled" if self._enabled else "local only",
                    self.quantum, "on" if self.start_stop_sync else "off")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._link is not None:
            self._link.enabled = False
            self._link.set_tempo_callback(lambda bpm: None)
            self._link.set_start_stop_callback(lambda playing: None)
            self._link.set_num_peers_callback(lambda n: None)
            self._link = None

    # ---- state ---------------------------------------------------------------------------------------

    def _need(self) -> Any:
        if self._link is None:
            raise BridgeError("LinkSync is not started: await link.start() first")
        return self._link

    @property
    def enabled(self) -> bool:
        return self._enabled

    @enabled.setter
    def enabled(self, value: bool) -> None:
        """Join (True) or leave (False) the Link session."""
        self._enabled = bool(value)
        if self._link is not None:
            self._link.enabled = self._enabled

    @property
    def num_peers(self) -> int:
        return int(self._need().num_peers)

    @property
    def tempo(self) -> float:
        return float(self._need().tempo)

    @property
    def playing(self) -> bool:
        return bool(self._need().playing)

    def snapshot(self) -> tuple[float, float, float]:
        """(beat, time.monotonic() seconds, bpm) read together."""
        link = self._need()
        beat = float(link.beat)
        return beat, time.monotonic(), float(link.tempo)

    def beat_at(self, host_time: float) -> float:
        """Session beat at `host_time` (time.monotonic() seconds), on the grid of this peer's quantum."""
        beat, now, bpm = self.snapshot()
        return beat_at(beat, now, bpm, host_time)

    def phase_at(self, host_time: float) -> float:
        """Position inside the bar, 0 ≤ phase < quantum; equal on every peer with the same quantum."""
        return self.beat_at(host_time) % self.quantum

    # ---- commands (any peer may change the session) ----------------------------------------------------

    def set_tempo(self, bpm: float) -> None:
        if not (math.isfinite(bpm) and 20 <= bpm <= 999):
            raise ValueError(f"Link tempo {bpm} is outside Link's 20–999 BPM")
        self._own_tempo = self.hysteresis.current = float(bpm)
        self._need().tempo = float(bpm)

    def set_playing(self, playing: bool) -> None:
        """Start or stop the session's transport (shared when start/stop sync is on)."""
        self._need().playing = bool(playing)

    # ---- callbacks (aalink calls them on the loop's thread) -------------------------------------------

    def _emit(self, event: Event) -> None:
        try:
            self.on_event(event)
        except Exception:
            logger.exception("Link: the event handler failed on %r", event)

    def _tempo_changed(self, bpm: float) -> None:
        if self._own_tempo is not None and abs(bpm - self._own_tempo) < 1e-3:
            self._own_tempo = None  # our own change coming back: not news for the core
            return
        # Link carries tempo as whole microseconds per beat: 133 comes back as 132.99995; 0.001 BPM is plenty
        bpm, now = round(float(bpm), 3), time.monotonic()
        slope = self.ramp.update(now, bpm)
        self._pass_tempo(self.hysteresis.update(bpm, slope=slope), now, slope)

    def _pass_tempo(self, bpm: float | None, now: float, slope: float = 0.0) -> None:
        if bpm is not None:
            self._emit(TempoEvent(bpm, SOURCE, now, slope=slope))

    def _start_stop(self, playing: bool) -> None:
        now = time.monotonic()
        beat = self.beat_at(now) if playing else None
        self._emit(TransportEvent("play" if playing else "stop", SOURCE, now, beat=beat))

    async def _positions(self) -> None:
        before = None
        while True:
            beat, now, bpm = self.snapshot()
            bpm = round(bpm, 3)
            slope = self.ramp.update(now, bpm)
            if bpm == before:  # the tempo held still since the last position: the one the session settled on
                self._pass_tempo(self.hysteresis.update(bpm, step=True, slope=slope), now, slope)
            before = bpm
            self._emit(PositionEvent(beat, SOURCE, now, exact=True))
            await asyncio.sleep(1.0 / self.position_hz)
