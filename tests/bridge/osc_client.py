"""A small real OSC client over UDP on 127.0.0.1 for the tests (asyncio), plus a server fixture helper."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Sequence

from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder
from pythonosc.osc_message_builder import OscMessageBuilder

from bridge.osc import OscServer
from bridge.osc_schema import flatten

WAIT_S = 10.0  # an upper bound on waiting for a reply, not a speed requirement


def message(address: str, *args: object) -> bytes:
    builder = OscMessageBuilder(address=address)
    for value in args:
        builder.add_arg(value)
    return builder.build().dgram


def bundle(timetag: float, *messages: tuple) -> bytes:
    """timetag: Unix seconds, or IMMEDIATELY (0)."""
    builder = OscBundleBuilder(timetag if timetag else IMMEDIATELY)
    for address, *args in messages:
        m = OscMessageBuilder(address=address)
        for value in args:
            m.add_arg(value)
        builder.add_content(m.build())
    return builder.build().dgram


class OscClient(asyncio.DatagramProtocol):
    """Sends to one server and collects every (address, args) it receives back, bundles flattened."""

    def __init__(self) -> None:
        self.inbox: asyncio.Queue[tuple[str, list]] = asyncio.Queue()
        self.transport: asyncio.DatagramTransport | None = None

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        for _stamp, msg in flatten(data):
            self.inbox.put_nowait((msg.address, list(msg.params)))

    @classmethod
    async def connect(cls, port: int, local: tuple[str, int] = ("127.0.0.1", 0)) -> OscClient:
        loop = asyncio.get_running_loop()
        client = cls()
        client.transport, _ = await loop.create_datagram_endpoint(lambda: client, local_addr=local,
                                                                  remote_addr=("127.0.0.1", port))
        return client

    @property
    def address(self) -> tuple[str, int]:
        return self.transport.get_extra_info("sockname")[:2]

    def send(self, address: str, *args: object) -> None:
        self.transport.sendto(message(address, *args))

    def send_raw(self, data: bytes) -> None:
        if data:
            self.transport.sendto(data)
            return
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as raw:  # asyncio silently drops empty datagrams
            raw.sendto(b"", self.transport.get_extra_info("peername"))

    async def expect(self, address: str) -> list:
        """The args of the next message received on `address` (others are skipped)."""
        async def wait() -> list:
            while True:
                got, args = await self.inbox.get()
                if got == address:
                    return args
        return await asyncio.wait_for(wait(), WAIT_S)

    async def roundtrip(self) -> None:
        """Barrier: everything sent before has been processed by the server once this returns."""
        self.send("/musika/list")
        await self.expect("/musika/list")

    def close(self) -> None:
        self.transport.close()


@contextlib.asynccontextmanager
async def running(**kwargs: object) -> AsyncIterator[tuple[OscServer, OscClient, list]]:
    """A started OscServer on 127.0.0.1:0 whose events land in the yielded list, and a connected client."""
    events: list = []
    kwargs.setdefault("on_event", events.append)
    server = OscServer(**kwargs)
    await server.start()
    client = await OscClient.connect(server.port)
    try:
        yield server, client, events
    finally:
        client.close()
        await server.stop()


def of_type(events: Sequence, kind: type) -> list:
    return [e for e in events if isinstance(e, kind)]
