"""AbletonOSC client against a fake "Live" that answers like AbletonOSC over real UDP on 127.0.0.1."""

from __future__ import annotations

import asyncio

import pytest

from bridge.abletonosc import AbletonOscClient, AbletonState
from bridge.events import BadInput, MeterEvent, PositionEvent, TempoEvent, TransportEvent
from bridge.osc import build
from bridge.osc_schema import flatten
from tests.bridge.osc_client import WAIT_S, of_type


class FakeLive(asyncio.DatagramProtocol):
    """Answers /live/song/get/<prop> with the value in `song`, to the sender, as AbletonOSC does."""

    def __init__(self) -> None:
        self.song = {"tempo": 124.0, "is_playing": True, "current_song_time": 16.0, "signature_numerator": 3,
                     "signature_denominator": 4}
        self.received: list[tuple[str, list]] = []
        self.garbage_next = False
        self.transport: asyncio.DatagramTransport | None = None

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        for _stamp, msg in flatten(data):
            self.received.append((msg.address, list(msg.params)))
            prop = msg.address.removeprefix("/live/song/get/")
            if prop in self.song:
                if self.garbage_next:
                    self.garbage_next = False
                    self.transport.sendto(build([(msg.address, ["abc"])]), addr)
                    self.transport.sendto(b"\x00garbage", addr)
                self.transport.sendto(build([(msg.address, [self.song[prop]])]), addr)
                if prop == "current_song_time" and self.song["is_playing"]:
                    self.song[prop] += 0.5
            elif msg.address == "/live/song/set/tempo":
                self.song["tempo"] = float(msg.params[0])


async def wait_for(predicate, what: str) -> None:
    async def poll() -> None:
        while not predicate():
            await asyncio.sleep(0.02)
    try:
        await asyncio.wait_for(poll(), WAIT_S)
    except TimeoutError:
        pytest.fail(f"timed out waiting for {what}")


def test_client_follows_live_tempo_transport_position_and_meter() -> None:
    events: list = []

    async def body() -> AbletonOscClient:
        loop = asyncio.get_running_loop()
        live = FakeLive()
        live.transport, _ = await loop.create_datagram_endpoint(lambda: live, local_addr=("127.0.0.1", 0))
        client = AbletonOscClient(send_port=live.transport.get_extra_info("sockname")[1], reply_port=0,
                                  on_event=events.append, poll_hz=50.0, meter_every=1)
        await client.start()
        try:
            assert client.reply_port > 0
            await wait_for(lambda: of_type(events, MeterEvent) and len(of_type(events, PositionEvent)) >= 3,
                           "first replies")
            assert client.connected
            live.song.update(tempo=98.5, is_playing=False)
            await wait_for(lambda: any(e.action == "stop" for e in of_type(events, TransportEvent)), "stop")
            await wait_for(lambda: any(e.bpm == 98.5 for e in of_type(events, TempoEvent)), "tempo change")
            client.send("/live/song/set/tempo", 133.0)  # commands go to Live too
            await wait_for(lambda: any(e.bpm == 133.0 for e in of_type(events, TempoEvent)), "tempo set")
            live.garbage_next = True
            await wait_for(lambda: client.stats["bad"] >= 2, "bad replies counted")
            await wait_for(lambda: client.stats["replies"] > 30, "polling continues after bad replies")
        finally:
            await client.stop()
            live.transport.close()
        assert {a for a, _ in live.received} >= {"/live/song/get/tempo", "/live/song/get/is_playing",
                                                 "/live/song/get/current_song_time"}
        return client

    client = asyncio.run(asyncio.wait_for(body(), 60))
    assert [e.bpm for e in of_type(events, TempoEvent)] == [124.0, 98.5, 133.0]  # changes only
    actions = [e.action for e in of_type(events, TransportEvent)]
    assert actions == ["play", "stop"]
    assert of_type(events, MeterEvent)[0] == MeterEvent(3, 4, "osc/ableton")
    beats = [e.beat for e in of_type(events, PositionEvent)]
    assert beats[0] >= 16.0 and beats == sorted(beats) and not any(e.exact for e in of_type(events, PositionEvent))
    assert len(of_type(events, BadInput)) == client.stats["bad"] >= 2


def test_state_rejects_nonsense_replies() -> None:
    s = AbletonState()
    for address, args in [("/live/song/get/tempo", [float("nan")]), ("/live/song/get/tempo", [5000.0]),
                          ("/live/song/get/tempo", ["x"]), ("/live/song/get/current_song_time", [-1.0]),
                          ("/live/song/get/signature_numerator", [3.5]), ("/live/clip/get/name", [1]),
                          ("/live/song/get/tempo", [])]:
        with pytest.raises(ValueError):
            s.handle(address, args, 0.0)
    assert s.handle("/live/song/get/is_playing", [1], 2.0) == [TransportEvent("play", "osc/ableton", 2.0)]
    assert s.handle("/live/song/get/is_playing", [True], 2.0) == []
