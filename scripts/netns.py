"""A loopback-only network namespace, for what must not reach the real network (Ableton Link multicast,
non-loopback OSC senders): the Link measurement in scripts/live_phase.py and the tests that need one. Created and
deleted by its user; :class:`NamespaceUnavailable` says why where namespaces cannot be made (no root, no `ip`, a
container without CAP_SYS_ADMIN)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import uuid
from collections.abc import Iterator, Sequence


class NamespaceUnavailable(RuntimeError):
    """No network namespace can be made here; the message says why."""


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
        raise NamespaceUnavailable("the `ip` command (iproute2) is not installed, so no loopback-only network "
                                   "namespace") from None
    if made.returncode != 0:
        raise NamespaceUnavailable(f"cannot create a network namespace here ({made.stderr.strip()}); this needs "
                                   "root and CAP_SYS_ADMIN to keep its traffic off the real network")
    try:
        steps = [("link", "set", "lo", "up"), ("route", "add", "224.0.0.0/4", "dev", "lo")]
        steps += [("addr", "add", a, "dev", "lo") for a in addresses]
        for step in steps:
            done = _ip("netns", "exec", name, "ip", *step)
            if done.returncode != 0:
                raise RuntimeError(f"ip {' '.join(step)} failed in {name}: {done.stderr}")
        yield name
    finally:
        _ip("netns", "delete", name)
