"""A loopback-only network namespace for tests that must not reach the real network (Ableton Link multicast,
non-loopback OSC senders). Created and deleted by the test; skipped with a reason where namespaces are not
available (no root, no `ip`, a container without CAP_SYS_ADMIN)."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _ip(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)


@contextlib.contextmanager
def loopback_namespace(addresses: Sequence[str] = ()) -> Iterator[str]:
    """Yield the name of a fresh namespace whose only interface is `lo` (up, with the multicast route and the
    extra `addresses`, e.g. "10.77.0.1/32"); it is deleted afterwards."""
    name = f"musika-test-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    try:
        made = _ip("netns", "add", name)
    except FileNotFoundError:
        pytest.skip("the `ip` command (iproute2) is not installed, so no loopback-only network namespace")
    if made.returncode != 0:
        pytest.skip(f"cannot create a network namespace here ({made.stderr.strip()}); this test needs root "
                    f"and CAP_SYS_ADMIN to keep its traffic off the real network")
    try:
        steps = [("link", "set", "lo", "up"), ("route", "add", "224.0.0.0/4", "dev", "lo")]
        steps += [("addr", "add", a, "dev", "lo") for a in addresses]
        for step in steps:
            done = _ip("netns", "exec", name, "ip", *step)
            assert done.returncode == 0, f"ip {' '.join(step)} failed in {name}: {done.stderr}"
        yield name
    finally:
        _ip("netns", "delete", name)


class Peer:
    """A Python process inside the namespace, driven by lines on stdin and answering JSON lines on stdout."""

    def __init__(self, namespace: str, script: str) -> None:
        env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(["ip", "netns", "exec", namespace, sys.executable, "-c", script], cwd=REPO,
                                     env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)

    def read(self) -> dict:
        """The next JSON line; the scripts bound every wait themselves, so this cannot block forever."""
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait(timeout=30)
            pytest.fail(f"peer exited ({self.proc.returncode}) without answering: {self.proc.stderr.read()}")
        data = json.loads(line)
        assert "error" not in data, data["error"]
        return data

    def send(self, command: str) -> None:
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()

    def close(self) -> None:
        """Stop this process by its PID (ask first, then kill)."""
        if self.proc.poll() is None:
            with contextlib.suppress(OSError):
                self.send("quit")
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            stream.close()
