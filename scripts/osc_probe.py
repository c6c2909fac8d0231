"""OSC to the daemon under measurement (scripts/live_phase.py): its status, a message, and a flood of malformed
datagrams from a thread of its own. Loopback only."""

from __future__ import annotations

import socket
import threading
import time

import numpy as np


def osc_status(sock: socket.socket, port: int) -> dict:
    """The daemon's /musika/status as a dict ({} if it does not answer within 2 s)."""
    from pythonosc.osc_message_builder import OscMessageBuilder

    from bridge.osc_schema import flatten

    sock.sendto(OscMessageBuilder("/musika/status").build().dgram, ("127.0.0.1", port))
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        try:
            data = sock.recv(65536)
        except TimeoutError:
            continue
        for _stamp, msg in flatten(data):
            if msg.address == "/musika/status":
                a = list(msg.params)
                return dict(zip(a[::2], a[1::2], strict=True))
    return {}


def osc_send(sock: socket.socket, port: int, address: str, *args: object) -> None:
    """One OSC message to the daemon on 127.0.0.1:`port`."""
    from pythonosc.osc_message_builder import OscMessageBuilder

    b = OscMessageBuilder(address)
    for a in args:
        b.add_arg(a)
    sock.sendto(b.build().dgram, ("127.0.0.1", port))


class OscFlood:
    """Sends `count` malformed OSC datagrams to 127.0.0.1:`port`, evenly over `seconds`, from its own thread."""

    KINDS = (
        lambda rng: rng.bytes(int(rng.integers(1, 512))),  # garbage
        lambda rng: b"/musika/tempo\x00\x00\x00,f\x00\x00\x42",  # truncated float argument
        lambda rng: b"/musika/seed\x00\x00\x00\x00,s\x00\x00abc\x00",  # wrong type tag
        lambda rng: b"/nowhere/at/all\x00,\x00\x00\x00",  # unknown address
        lambda rng: b"/musika/param/variation\x00,f\x00\x00\x7f\xc0\x00\x00",  # NaN
        lambda rng: b"#bundle\x00" + rng.bytes(12),  # a bundle cut short
    )

    def __init__(self, port: int, count: int, seconds: float) -> None:
        self.port, self.count, self.seconds, self.sent = port, count, seconds, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="osc-flood", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        rng = np.random.default_rng(0)
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        start, gap = time.monotonic(), self.seconds / max(self.count, 1)
        try:
            while self.sent < self.count and not self._stop.is_set():
                due = start + self.sent * gap
                if due > time.monotonic():
                    time.sleep(min(due - time.monotonic(), 0.05))
                    continue
                sock.sendto(self.KINDS[self.sent % len(self.KINDS)](rng), ("127.0.0.1", self.port))
                self.sent += 1
        finally:
            sock.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
