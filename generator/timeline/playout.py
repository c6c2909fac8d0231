"""The live output stream on top of an audio ring: stream positions, the real play head, and rewinding.

The live worker writes one continuous *stream* of stereo samples; stream index 0 is the first sample written
through this object. The ring (bridge.audio.AudioRing: write(), flush(), retract(), frames_written, depth_frames)
only counts its own positions, and a flush (a jump) makes the two diverge, so :class:`Playout` keeps the offset.
The recent stream (everything not yet heard plus ``keep_s`` seconds before the play head) is kept, so that the
not-yet-heard part can be rewritten from any later position (:meth:`rewind`).

Timing (pure: ``now`` arrives as an argument). The device takes audio in periods, so between two reads the play
head stands still while time goes on. :meth:`observe` notes ``now - frames_played / sr`` (frames_played: every
frame handed to the device, silence included); its largest recent value is the time of the device's last read
minus the frames it had taken, a clock of the device. Stream sample ``x`` is then heard at
``clock + (frames_played + x - head) / sr + latency``: ``head`` is the first sample the reader has not taken and
latency the sink's own output latency (from handing a frame to the device to hearing it). Without observations
(or a ring without frames_played) it is ``now + (x - head) / sr + latency``, up to one device period early.
Both hold while the device reads without underruns. A sink that knows its device clock (JACK: the host time of
each period's first frame) sets ``ring.cycle``, and that is used instead: the largest ``now - frames_played / sr``
is the latest read, which under load is a late one, so what is heard would be placed up to a period early.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

MAX_CYCLE_FRAMES = 16384  # a device period's clock (ring.cycle) is used for reads up to this many frames on


class Playout:
    """Stream writer over `ring` at `sample_rate` Hz; `latency_s` is the sink's output latency beyond the ring."""

    def __init__(self, ring: Any, sample_rate: int, latency_s: float = 0.0, keep_s: float = 1.0):
        self.ring, self.sr, self.latency_s = ring, int(sample_rate), float(latency_s)
        self.keep = int(keep_s * self.sr)
        self._shift = int(ring.frames_written)  # ring index - stream index
        self.end = 0  # stream samples written
        self._hist: deque[tuple[int, np.ndarray]] = deque()  # (stream index, block), contiguous
        self.rewinds = 0
        self.lost_races = 0
        self._clock: deque[tuple[float, float]] = deque()  # (now, now - frames_played / sr)
        self.clock_window_s = 2.0

    # ---------------------------------------------------------------------------------------------- positions
    def head(self) -> int:
        """Stream index of the first sample the reader has not taken (the play head)."""
        return int(self.ring.frames_written) - int(self.ring.depth_frames) - self._shift

    def observe(self, now: float) -> None:
        """Note the device's progress at host time `now` (call often: every worker step)."""
        played = getattr(self.ring, "frames_played", None)
        if played is None:
            return
        self._clock.append((now, now - played / self.sr))
        while self._clock and self._clock[0][0] < now - self.clock_window_s:
            self._clock.popleft()

    def _origin(self, now: float) -> tuple[float, int]:
        """(time, stream index) pair on the device's time line: stream index `x` is taken at
        time + (x - index) / sr."""
        for _ in range(3):  # read played and head from the same device period
            played = getattr(self.ring, "frames_played", None)
            head = self.head()
            if played is None or played == getattr(self.ring, "frames_played", None):
                break
        cycle = getattr(self.ring, "cycle", None)
        if played is not None and cycle is not None and 0 <= played - cycle[1] <= MAX_CYCLE_FRAMES:
            return cycle[0] + (played - cycle[1]) / self.sr, head  # the device's own clock (JACK)
        if played is None or not self._clock:
            return now, head
        noted = list(self._clock)  # a copy: the worker thread may be appending
        clock = max(now - played / self.sr, max(c for _, c in noted))
        return clock + played / self.sr, head

    def heard_at(self, x: float, now: float) -> float:
        """Host time (seconds, the clock of `now`) at which stream sample `x` is heard."""
        t, i = self._origin(now)
        return t + (x - i) / self.sr + self.latency_s

    def index_heard_at(self, t: float, now: float) -> float:
        """Stream index (fractional) heard at host time `t` (inverse of :meth:`heard_at`)."""
        t0, i = self._origin(now)
        return i + (t - t0 - self.latency_s) * self.sr

    # ---------------------------------------------------------------------------------------------- writing
    def write(self, block: np.ndarray) -> None:
        """Append (2, n) float32 to the stream."""
        if block.shape[1] == 0:
            return
        self.ring.write(block)
        self._hist.append((self.end, block))
        self.end += block.shape[1]
        floor = self.head() - self.keep
        while self._hist and self._hist[0][0] + self._hist[0][1].shape[1] < floor:
            self._hist.popleft()

    def silence(self, n: int) -> None:
        self.write(np.zeros((2, int(n)), np.float32))

    def slice(self, a: int, b: int) -> np.ndarray | None:
        """Stream samples [a, b) still held, or None when any of them is not (too old or not written)."""
        if a < 0 or b > self.end or b < a:
            return None
        parts = []
        for start, block in self._hist:
            lo, hi = max(a, start), min(b, start + block.shape[1])
            if hi > lo:
                parts.append(block[:, lo - start : hi - start])
        out = np.concatenate(parts, axis=1) if parts else np.zeros((2, 0), np.float32)
        return out if out.shape[1] == b - a else None

    def rewind(self, x: int | None) -> int:
        """Drop the stream from index `x` on and continue writing at `x`: taken back from the ring (what is queued
        before `x` stays queued: flushing all and writing it again let the reader find the ring empty in between, one
        period of silence at a tempo change on a busy machine), or with a ring that cannot, flushed and written
        again. Returns the index writing continues at: `x`, or the old end when the reader had already passed `x`
        or is within a block of it (a lost race: nothing is dropped then). `x` None: cut at the first unread
        sample, wherever it is."""
        if x is not None and x >= self.end:
            return self.end
        retract = getattr(self.ring, "retract", None)
        if x is not None and retract is not None:  # what is queued before `x` stays queued: no gap while rewriting
            if not retract(self.end - x):
                self.lost_races += 1
                logger.warning("rewind to %d lost the race with the reader (at %d); keeping what was written", x,
                               self.head())
                return self.end
            self.end = x
            while self._hist and self._hist[-1][0] >= x:
                self._hist.pop()
            if self._hist and self._hist[-1][0] + self._hist[-1][1].shape[1] > x:  # cut the last kept block at x
                s, b = self._hist[-1]
                self._hist[-1] = (s, b[:, : x - s])
            self.rewinds += 1
            return x
        written = int(self.ring.frames_written)
        dropped = int(self.ring.flush())
        first = written - dropped - self._shift  # first unread stream sample when the flush took effect
        self._shift += dropped
        if x is None:
            x = first
        keep_to = x if x >= first else self.end
        if x < first:
            self.lost_races += 1
            logger.warning("rewind to %d lost the race with the reader (at %d); keeping what was written", x, first)
        old_end, self.end = self.end, first
        tail = [(s, b) for s, b in self._hist if s + b.shape[1] > first]
        self._hist = deque((s, b) for s, b in self._hist if s < first)
        if self._hist:  # cut the last kept block at `first`
            s, b = self._hist[-1]
            if s + b.shape[1] > first:
                self._hist[-1] = (s, b[:, : first - s])
        for s, b in tail:  # re-write [first, keep_to)
            lo, hi = max(s, first), min(s + b.shape[1], keep_to)
            if hi > lo:
                self.ring.write(b[:, lo - s : hi - s])
                self._hist.append((lo, b[:, lo - s : hi - s]))
                self.end = hi
        if keep_to == old_end:
            return self.end
        self.rewinds += 1
        return self.end
