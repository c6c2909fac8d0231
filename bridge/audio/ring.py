"""A preallocated single-producer / single-consumer ring of stereo float32 audio.

The renderer (producer) writes blocks shaped (channels, frames); the audio callback (consumer) copies them out.
The reader never waits and never allocates: it reads two integer counters, copies at most two slices, and fills
silence when the ring runs short (an *underrun*, counted). Counters are monotonically increasing frame counts,
so ``write_pos - read_pos`` is the depth and nothing wraps except the index into the buffer. A small lock guards
the producer side only (several producer threads may share one ring); the reader takes no lock.

Under CPython's GIL an ``int`` attribute store is atomic, and the producer publishes ``_write_pos`` only after
the samples are in place, so the reader never sees a frame before it is written.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np

from generator.errors import MusikaError


class AudioRingError(MusikaError, ValueError):
    """A block or buffer handed to the ring has the wrong shape or type."""


class AudioRing:
    """SPSC ring buffer of ``channels`` x ``capacity_frames`` float32 samples.

    Counters (all in frames since construction): ``frames_written`` (producer), ``frames_read`` (audio taken
    from the ring), ``frames_played`` (frames handed to the device, silence included: the play head),
    ``underruns`` (reads that came up short while armed), ``underrun_frames`` (silence frames filled),
    ``overflow_frames`` (frames refused because the ring was full), ``flushed_frames``, ``retracted_frames``
    (queued frames the producer took back to write them again; ``frames_written`` counts without them).
    """

    def __init__(self, capacity_frames: int, channels: int = 2) -> None:
        if int(capacity_frames) < 1:
            raise AudioRingError(
                f"AudioRing capacity_frames={capacity_frames!r} is not valid; give a positive frame count "
                "(for example 131072, about 3 s at 44.1 kHz)"
            )
        if int(channels) < 1:
            raise AudioRingError(f"AudioRing channels={channels!r} is not valid; give 1 or more (2 for stereo)")
        self.capacity_frames = int(capacity_frames)
        self.channels = int(channels)
        self._buf = np.zeros((self.channels, self.capacity_frames), dtype=np.float32)
        self._write_pos = 0
        self._read_pos = 0
        self._flush_to = 0
        self._write_lock = threading.Lock()
        self.armed = False
        self.frames_written = 0
        self.frames_played = 0
        # (host time of the device period being played, frames_played before it), set by a sink that knows its
        # device clock (JACK): the play head's timing without guessing from when reads happen
        self.cycle: tuple[float, int] | None = None
        # seconds the device's clock has fallen behind the host clock since the sink started (JACK: its frame
        # count against the monotonic clock); 0.0 where the sink cannot tell. An internal clock that counts the
        # device's time (as a DAW's transport does) subtracts it.
        self.clock_drift_s = 0.0
        self.underruns = 0
        self.underrun_frames = 0
        self.overflow_frames = 0
        self.flushed_frames = 0
        self.retracted_frames = 0
        self.max_read_frames = 0  # the reader's largest block so far (noted before it reads)

    # ----------------------------------------------------------------------------------------------- producer
    @property
    def depth_frames(self) -> int:
        """Frames written and not yet read (what the device will play before anything written now)."""
        return self._write_pos - max(self._read_pos, self._flush_to)

    @property
    def free_frames(self) -> int:
        """Frames the producer may write now without overflowing."""
        return self.capacity_frames - (self._write_pos - self._read_pos)

    @property
    def frames_read(self) -> int:
        """Frames of audio taken from the ring by the reader (silence fill excluded)."""
        return self._read_pos - self.flushed_frames

    def write(self, block: np.ndarray) -> int:
        """Append ``block`` shaped (channels, frames), any float dtype; returns the frames accepted.

        Never blocks on the reader. When the ring is full the tail of the block is refused and counted in
        ``overflow_frames``; check ``free_frames`` first to avoid that. The first write arms underrun counting.
        """
        block = np.asarray(block)
        if block.ndim != 2 or block.shape[0] != self.channels:
            raise AudioRingError(
                f"AudioRing.write got a block of shape {block.shape}; expected ({self.channels}, frames) "
                "(channels first, as the generator returns audio)"
            )
        with self._write_lock:
            n = block.shape[1]
            k = min(n, self.capacity_frames - (self._write_pos - self._read_pos))
            start = self._write_pos % self.capacity_frames
            first = min(k, self.capacity_frames - start)
            self._buf[:, start : start + first] = block[:, :first]
            self._buf[:, : k - first] = block[:, first:k]
            self.overflow_frames += n - k
            self.frames_written += k
            self._write_pos += k  # publish after the samples are in place
            if k:
                self.armed = True
            return k

    def retract(self, frames: int) -> bool:
        """Take back the last ``frames`` queued frames (a re-render replaces them); the frames before them stay
        queued, so the reader never runs short meanwhile. Refused (False, nothing changes) where fewer than the
        reader's largest block would stay queued: a read in flight never reaches past what stays."""
        with self._write_lock:
            frames = int(frames)
            if frames <= 0:
                return True
            keep_from = max(self._read_pos, self._flush_to) + self.max_read_frames
            if self._write_pos - frames < keep_from:
                return False
            self._write_pos -= frames
            self.frames_written -= frames
            self.retracted_frames += frames
            return True

    def flush(self) -> int:
        """Drop everything queued (the host jumped); returns the frames dropped. The reader applies it."""
        with self._write_lock:
            dropped = self._write_pos - max(self._read_pos, self._flush_to)
            self._flush_to = self._write_pos
            return dropped

    def disarm(self) -> None:
        """Stop counting underruns (transport stopped on purpose); the next write arms again."""
        self.armed = False

    # ------------------------------------------------------------------------------------------------- reader
    def read_into(
        self, out: np.ndarray | Sequence[np.ndarray], channels_first: bool = False, *, fill_silence: bool = True
    ) -> int:
        """Copy up to ``n`` frames into ``out``; returns the frames of audio copied.

        ``out`` is (frames, channels) as PortAudio hands it, (channels, frames) with ``channels_first=True``, or
        a sequence of 1-D per-channel buffers (JACK port arrays). If fewer than ``n`` frames are queued, the
        rest is filled with silence and one underrun is counted (when armed). With ``fill_silence=False`` the
        rest is left untouched and nothing is counted (offline readers). Never waits, never allocates buffers.
        """
        per_channel = not isinstance(out, np.ndarray)
        if per_channel:
            n = len(out[0])
        else:
            view = out if channels_first else out.T
            n = view.shape[1]
        if n > self.max_read_frames:
            self.max_read_frames = n
        flush_to = self._flush_to
        r = self._read_pos
        if flush_to > r:
            self.flushed_frames += flush_to - r
            r = flush_to
        k = min(self._write_pos - r, n)
        start = r % self.capacity_frames
        first = min(k, self.capacity_frames - start)
        buf = self._buf
        if per_channel:
            for c in range(self.channels):
                dst = out[c]
                dst[:first] = buf[c, start : start + first]
                dst[first:k] = buf[c, : k - first]
                if fill_silence:
                    dst[k:n] = 0.0
        else:
            view[:, :first] = buf[:, start : start + first]
            view[:, first:k] = buf[:, : k - first]
            if fill_silence:
                view[:, k:n] = 0.0
        self._read_pos = r + k
        if fill_silence:
            self.frames_played += n
            if k < n and self.armed:
                self.underruns += 1
                self.underrun_frames += n - k
        else:
            self.frames_played += k
        return k

    def stats(self) -> dict[str, int]:
        """Counters as plain ints, for telemetry."""
        return {
            "depth_frames": self.depth_frames,
            "frames_written": self.frames_written,
            "frames_played": self.frames_played,
            "underruns": self.underruns,
            "underrun_frames": self.underrun_frames,
            "overflow_frames": self.overflow_frames,
            "flushed_frames": self.flushed_frames,
        }
