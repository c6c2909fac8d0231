"""The loopback-only network namespace of scripts/netns.py for tests (skipped with the reason where none can be
made), and a Python peer process inside one."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from scripts import netns

REPO = Path(__file__).resolve().parents[2]


@contextlib.contextmanager
def loopback_namespace(addresses: Sequence[str] = ()) -> Iterator[str]:
    """scripts.netns.loopback_namespace, the test skipped with the reason where no namespace can be made."""
    try:
        with netns.loopback_namespace(addresses) as name:
            yield name
    except netns.NamespaceUnavailable as exc:
        pytest.skip(str(exc))


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
