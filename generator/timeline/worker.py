"""The live stream's render worker thread: calls `step()` until closed, sleeping briefly when there is nothing to do.

An exception in a step is logged and counted (`errors`), and the worker goes on: the daemon stays up and the
error shows in its log and telemetry.
"""

from __future__ import annotations

import logging
import threading
import time

logger = logging.getLogger(__name__)

IDLE_SLEEP_S = 0.005  # after a step with nothing to render
ERROR_SLEEP_S = 0.05  # after a step that raised


class RenderWorker:
    """Mixin: `start()` runs `self.step()` on a daemon thread until `close()`."""

    errors: int

    def __init__(self) -> None:
        self._thread: threading.Thread | None = None
        self._running = threading.Event()

    def step(self) -> bool:
        """One unit of work; True when there is more to do at once."""
        raise NotImplementedError

    def start(self) -> None:
        """Start the render worker thread."""
        if self._thread is not None:
            return
        self._running.set()
        self._thread = threading.Thread(target=self._loop, name="musika-render", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while self._running.is_set():
            try:
                busy = self.step()
            except Exception:  # keep the daemon alive; the error is in the log and telemetry
                self.errors += 1
                logger.exception("render worker error")
                busy = False
                time.sleep(ERROR_SLEEP_S)
            if not busy:
                time.sleep(IDLE_SLEEP_S)

    def close(self, timeout: float = 5.0) -> None:
        """Stop the worker thread (the ring keeps what was written)."""
        self._running.clear()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
