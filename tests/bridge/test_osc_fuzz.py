"""Fuzz: thousands of malformed, truncated, oversized and wrongly typed packets to a real server on 127.0.0.1.

The server must drop and count each one, log at a limited rate, never hand an invalid value to the core, and
keep answering. Packets go out in batches with a round-trip barrier between them, so nothing is lost to a full
socket buffer; count and run time are bounded (fixed seed, pytest timeout).
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import struct
import time

import pytest

from bridge.events import BadInput, ControlEvent, SeedEvent, TempoEvent
from bridge.osc_addresses import ParamSpec
from tests.bridge.osc_client import bundle, message, running

PARAMS = [ParamSpec("density", 0.0, 1.0, 0.5)]
BATCH = 100
BATCH_BYTES = 64 * 1024


def surely_bad(rng: random.Random) -> list[bytes]:
    """Packets every one of which must be refused exactly once (one message or none per packet)."""
    packets: list[bytes] = []
    for _ in range(600):  # random bytes, including empty packets
        packets.append(bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 300))))
    valid = [message("/musika/tempo", 128.0), message("/musika/param/density", 0.5, "bar"),
             message("/musika/seed", 42), message("/musika/preset", "techno"), message("/musika/meter", 4, 4)]
    for _ in range(600):  # truncated (every one has a required argument)
        whole = rng.choice(valid)
        packets.append(whole[:rng.randrange(1, len(whole))])
    for _ in range(40):  # oversized
        packets.append(message("/musika/preset", "x" * rng.randrange(9000, 60000)))
    bad_values: list[tuple] = [("/musika/tempo", math.nan), ("/musika/tempo", math.inf), ("/musika/tempo", -math.inf),
                               ("/musika/tempo", -120.0), ("/musika/tempo", 0.0), ("/musika/tempo", 1e9),
                               ("/musika/tempo", "fast"), ("/musika/tempo", True), ("/musika/tempo", b"\x00\x01"),
                               ("/musika/tempo",), ("/musika/tempo", 120.0, 121.0), ("/musika/seed", 1.5),
                               ("/musika/seed", -1), ("/musika/param/density", math.nan),
                               ("/musika/param/density", 2.0), ("/musika/param/unknown", 0.5),
                               ("/musika/param/density", 0.5, "never"), ("/musika/sync", "mtc"),
                               ("/musika/preset", "../../etc/passwd"), ("/musika/preset", "a\x01b"),
                               ("/musika/render", "../x.toml"), ("/musika/meter", 4, 3), ("/tempo/raw", math.nan),
                               ("/beat/str", "one.two"), ("/beat/str", "1.9.00"), ("/play", "yes"),
                               ("/musika/subscribe", 1000.0), ("/musika/learn", "nothing")]
    for _ in range(900):  # wrongly typed or out of range
        address, *args = rng.choice(bad_values)
        packets.append(message(address, *args))
    for _ in range(300):  # unknown addresses
        name = "".join(rng.choice("abc/xyz*?[]{}") for _ in range(rng.randrange(1, 30)))
        packets.append(message("/" + name.strip("/") + "/zz", rng.random()))
    for _ in range(200):  # bundles: garbage after the header, lying element sizes
        head = b"#bundle\x00" + struct.pack(">Q", 1)
        packets.append(head + struct.pack(">i", rng.choice([-5, 0, 3, 10**6])) + b"/x\x00\x00"[: rng.randrange(5)])
    for _ in range(60):  # timetags beyond the horizon
        packets.append(bundle(time.time() + 1e5, ("/musika/tempo", 120.0)))
    return packets


def mutated(rng: random.Random) -> list[bytes]:
    """Valid packets with random bit flips: some stay valid, most do not."""
    seeds = [message("/musika/tempo", 128.0), message("/musika/param/density", 0.25), message("/musika/seed", 7),
             bundle(0, ("/musika/tempo", 90.0), ("/musika/param/density", 0.5)), message("/tempo/raw", 111.0),
             message("/beat/str", "3.2.50")]
    out = []
    for _ in range(1000):
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randrange(1, 4)):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        out.append(bytes(data))
    return out


def valid_event(e: object) -> bool:
    if isinstance(e, TempoEvent):
        return math.isfinite(e.bpm) and 20 <= e.bpm <= 300
    if isinstance(e, ControlEvent):
        return e.name == "density" and 0.0 <= e.value <= 1.0
    if isinstance(e, SeedEvent):
        return 0 <= e.seed < 2**31
    return True


@pytest.mark.timeout(120)
def test_server_survives_thousands_of_bad_packets(caplog: pytest.LogCaptureFixture) -> None:
    rng = random.Random(1234)
    bad, noisy = surely_bad(rng), mutated(rng)
    started = time.monotonic()
    caplog.set_level(logging.WARNING, logger="bridge.osc")

    async def send_all(client, packets: list[bytes]) -> None:
        count = size = 0
        for data in packets:
            client.send_raw(data)
            count, size = count + 1, size + len(data) + 512
            if count >= BATCH or size >= BATCH_BYTES:  # stay well inside the socket's receive buffer
                await client.roundtrip()
                count = size = 0
        await client.roundtrip()

    async def body() -> tuple[dict, list, dict]:
        async with running(params_provider=lambda: PARAMS, presets_provider=lambda: ["techno"],
                           status_provider=lambda: {"bpm": 120.0}) as (server, client, events):
            await send_all(client, bad)
            after_bad = dict(server.stats)
            await send_all(client, noisy)
            client.send("/musika/tempo", 127.0)  # still works afterwards
            assert await client.expect("/musika/tempo") == [127.0]
            client.send("/musika/status")
            assert await client.expect("/musika/status") == ["bpm", 120.0]
            return after_bad, events, dict(server.stats)

    after_bad, events, stats = asyncio.run(body())
    assert len(bad) >= 2500 and len(bad) + len(noisy) >= 3500
    assert after_bad["bad"] == len(bad)  # every one refused and counted, none lost
    assert after_bad["events"] == len(bad)  # ...and each reached the core only as BadInput
    assert stats["bad"] > after_bad["bad"] + len(noisy) // 2
    assert all(valid_event(e) for e in events)
    assert len([e for e in events if isinstance(e, BadInput)]) == stats["bad"]
    assert any(isinstance(e, TempoEvent) and e.bpm == 127.0 for e in events)
    warnings = [r for r in caplog.records if r.name == "bridge.osc" and r.levelno == logging.WARNING]
    assert 1 <= len(warnings) <= (time.monotonic() - started) / 5.0 + 2  # rate-limited, not one per packet
