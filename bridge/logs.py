"""What reaches the terminal: log levels for the command line, and C libraries' chatter kept in the log.

- :data:`NOTICE` (25, between INFO and WARNING): news a user of ``musika serve`` wants without asking, e.g. which
  clock the music follows. :func:`configure` sets the level from ``-v`` (``musika serve``: NOTICE, ``-v`` INFO,
  ``-vv`` DEBUG; the batch commands log INFO by default).
- :func:`native_output_logged`: ALSA, libjack and PortAudio print straight to file descriptor 2 while a port or
  device is opened ("ALSA lib seq_hw.c:... open /dev/snd/seq failed", "Cannot connect to server socket", ...).
  Around such a call the descriptor points at a temporary file; afterwards each line is logged at INFO, so it
  shows with ``-v`` and not otherwise. Python's own warnings and log records are not touched.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager

NOTICE = 25
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

_capture_lock = threading.Lock()


def level_for(verbosity: int, default: int = logging.INFO) -> int:
    """The root log level for ``-v`` given ``verbosity`` times: 0 the command's default, 1 INFO (or the default
    when that is lower), 2 and more DEBUG."""
    if verbosity <= 0:
        return default
    return min(default, logging.INFO) if verbosity == 1 else logging.DEBUG


def configure(verbosity: int, default: int = logging.INFO) -> int:
    """Log to stderr, one line per record, at :func:`level_for`; returns the level set."""
    logging.addLevelName(NOTICE, "NOTICE")
    level = level_for(verbosity, default)
    logging.basicConfig(level=level, format=FORMAT, datefmt="%H:%M:%S")
    logging.getLogger().setLevel(level)
    return level


@contextmanager
def native_output_logged(logger: logging.Logger, what: str, level: int = logging.INFO) -> Iterator[None]:
    """Run the body with file descriptor 2 captured; then log each captured line as ``"<what>: <line>"`` at
    ``level`` on ``logger``. Only one capture at a time (others wait); the body should be a short library
    call, as another thread's stderr writes in that window are captured too (and logged the same way)."""
    with _capture_lock:
        sys.stderr.flush()
        try:
            saved = os.dup(2)
        except OSError:  # no descriptor 2: nothing to keep off the terminal
            yield
            return
        with tempfile.TemporaryFile() as tmp:
            os.dup2(tmp.fileno(), 2)
            try:
                yield
            finally:
                os.dup2(saved, 2)
                os.close(saved)
                tmp.seek(0)
                for line in tmp.read().decode("utf-8", "replace").splitlines():
                    if line.strip():
                        logger.log(level, "%s: %s", what, line.rstrip())
