"""Start and stop a real JACK server (dummy driver) for tests, by its PID."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass
class JackServer:
    name: str
    rate: int
    period: int
    process: subprocess.Popen

    @property
    def env(self) -> dict[str, str]:
        """Environment for child processes so they talk to this server."""
        return {**os.environ, "JACK_DEFAULT_SERVER": self.name, "JACK_NO_START_SERVER": "1"}

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def jackd_available() -> bool:
    return shutil.which("jackd") is not None


def _wait_ready(name: str, process: subprocess.Popen, timeout: float = 15.0) -> None:
    import jack  # JACK-Client

    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"jackd exited with code {process.returncode}")
        try:
            client = jack.Client("probe", servername=name, no_start_server=True)
            client.close()
            return
        except jack.JackError as exc:
            last = exc
            time.sleep(0.1)
    raise RuntimeError(f"jackd server {name!r} did not become ready in {timeout} s: {last}")


def start_jack(rate: int = 44100, period: int = 512, name: str | None = None) -> JackServer:
    name = name or f"musika-test-{uuid.uuid4().hex[:8]}"
    process = subprocess.Popen(
        ["jackd", "-n", name, "-d", "dummy", "-r", str(rate), "-p", str(period)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "JACK_NO_AUDIO_RESERVATION": "1"},
    )
    server = JackServer(name=name, rate=rate, period=period, process=process)
    try:
        _wait_ready(name, process)
    except Exception:
        server.stop()
        raise
    return server


@contextmanager
def running_jack(rate: int = 44100, period: int = 512) -> Iterator[JackServer]:
    server = start_jack(rate, period)
    old = os.environ.get("JACK_DEFAULT_SERVER")
    os.environ["JACK_DEFAULT_SERVER"] = server.name
    try:
        yield server
    finally:
        if old is None:
            os.environ.pop("JACK_DEFAULT_SERVER", None)
        else:
            os.environ["JACK_DEFAULT_SERVER"] = old
        server.stop()
