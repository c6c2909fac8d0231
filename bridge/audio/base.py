"""The interface every audio sink shares, plus the underrun reporter they all use.

A sink owns a device, port, socket or file and a thread or callback that pulls audio from an :class:`AudioRing`.
The renderer only ever talks to the ring; the daemon talks to the sink through this small interface.
"""

from __future__ import annotations

import abc
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from generator.errors import AudioOutputError
from generator.runtime.model_config import SAMPLE_RATE

from .ring import AudioRing

logger = logging.getLogger(__name__)

DEFAULT_SAMPLE_RATE = SAMPLE_RATE
DEFAULT_BLOCK_SIZE = 512
DEFAULT_RING_FRAMES = 1 << 17  # ~3 s at 44.1 kHz


class AudioSinkError(AudioOutputError):
    """An audio sink cannot be opened or configured (device, server, port, address or file)."""


class AudioSink(abc.ABC):
    """Plays stereo float32 audio taken from :attr:`ring` at :attr:`sample_rate` Hz.

    Subclasses implement :meth:`_open` and :meth:`_close`; ``start``/``stop`` add the underrun reporter.
    ``latency_frames`` is the sink's own output latency (device buffer + port latency) in frames, to be added to
    the render-ahead depth (``ring.depth_frames``) when the scheduler works out what the listener hears now.
    """

    name: str = "sink"

    def __init__(
        self,
        ring: AudioRing | None = None,
        sample_rate: int = DEFAULT_SAMPLE_RATE,
        block_size: int = DEFAULT_BLOCK_SIZE,
        ring_frames: int = DEFAULT_RING_FRAMES,
    ) -> None:
        if int(sample_rate) <= 0:
            raise AudioSinkError(f"sample_rate={sample_rate!r} is not valid; give a rate in Hz such as 44100")
        if int(block_size) <= 0:
            raise AudioSinkError(f"block_size={block_size!r} is not valid; give frames per block such as 512")
        self.ring = ring if ring is not None else AudioRing(ring_frames, channels=2)
        self._sample_rate = int(sample_rate)
        self._block_size = int(block_size)
        self.xruns = 0
        self.reconnects = 0
        self._reporter: _UnderrunReporter | None = None

    # ------------------------------------------------------------------------------------------ public API
    @property
    def sample_rate(self) -> int:
        """Frames per second the sink plays (the rate of the audio written into the ring)."""
        return self._sample_rate

    @property
    def block_size(self) -> int:
        """Frames the sink pulls from the ring per callback or step."""
        return self._block_size

    @property
    def latency_frames(self) -> int:
        """Output latency beyond the ring, in frames (at least one block)."""
        return self._block_size

    @property
    def device(self) -> str:
        """Human-readable target: device name, JACK ports, address or file path."""
        return self.name

    @property
    def running(self) -> bool:
        return self._reporter is not None

    def start(self) -> None:
        """Open the device and begin pulling from the ring. Raises :class:`AudioSinkError` if unavailable."""
        if self._reporter is not None:
            return
        self._open()
        self._reporter = _UnderrunReporter(self)
        self._reporter.start()
        logger.info(
            "audio sink %s started: %s, %d Hz, block %d", self.name, self.device, self.sample_rate, self.block_size
        )

    def stop(self) -> None:
        """Stop pulling and release the device; safe to call twice."""
        reporter, self._reporter = self._reporter, None
        if reporter is not None:
            reporter.stop()
        self._close()

    def stats(self) -> dict[str, Any]:
        """Telemetry: underruns, xruns, reconnects, device name, ring counters."""
        return {
            "sink": self.name,
            "device": self.device,
            "sample_rate": self.sample_rate,
            "block_size": self.block_size,
            "latency_frames": self.latency_frames,
            "xruns": self.xruns,
            "reconnects": self.reconnects,
            **self.ring.stats(),
        }

    def __enter__(self) -> AudioSink:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---------------------------------------------------------------------------------------- for backends
    @abc.abstractmethod
    def _open(self) -> None:
        """Open the device/port/socket/file and start the callback or thread."""

    @abc.abstractmethod
    def _close(self) -> None:
        """Stop the callback or thread and release everything; must tolerate a partial or repeated open."""


def run_paced(stop: threading.Event, period: float, step: Callable[[], None], late: Callable[[], None]) -> None:
    """Call ``step`` every ``period`` seconds on an absolute monotonic schedule until ``stop`` is set.

    For sinks without a device clock (ReaStream, real-time WAV). If the loop falls more than 0.25 s behind
    (machine suspended, CPU starved) it calls ``late`` (count an xrun) and restarts the schedule from now.
    """
    deadline = time.monotonic()
    while not stop.is_set():
        step()
        deadline += period
        behind = time.monotonic() - deadline
        if behind > 0.25:
            late()
            deadline = time.monotonic()
        elif behind < 0:
            stop.wait(-behind)


class _UnderrunReporter:
    """Logs new underruns and xruns at most once per ``interval`` s, outside the audio thread."""

    def __init__(self, sink: AudioSink, interval: float = 1.0) -> None:
        self._sink = sink
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"musika-{sink.name}-report", daemon=True)
        self._seen = (sink.ring.underruns, sink.xruns)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._check()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self._check()

    def _check(self) -> None:
        ring, sink = self._sink.ring, self._sink
        underruns, xruns = ring.underruns, sink.xruns
        if underruns > self._seen[0]:
            logger.warning(
                "audio underrun on %s: %d new (total %d, %.0f ms of silence played); the renderer fell behind. "
                "Raise the look-ahead or use a lighter preset.",
                sink.name,
                underruns - self._seen[0],
                underruns,
                1000.0 * ring.underrun_frames / sink.sample_rate,
            )
        if xruns > self._seen[1]:
            logger.warning(
                "audio xrun on %s: %d new (total %d); the device/server missed a deadline",
                sink.name,
                xruns - self._seen[1],
                xruns,
            )
        self._seen = (underruns, xruns)
