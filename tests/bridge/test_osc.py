"""The OSC server over real UDP on 127.0.0.1: control, replies, echo, subscriptions, bundles, paths, security."""

from __future__ import annotations

import asyncio
import json
import math
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bridge import osc_addresses
from bridge.errors import ConfigError
from bridge.events import BadInput, ControlEvent, PresetEvent, RenderRequest, SeedEvent, TempoEvent, TransportEvent
from bridge.osc import OscBindError, OscServer
from bridge.osc_addresses import Context, OscInputError, ParamSpec, decode
from bridge.osc_schema import parse_allow, sender_allowed
from tests.bridge.netns import loopback_namespace
from tests.bridge.osc_client import OscClient, bundle, of_type, running

REPO = Path(__file__).resolve().parents[2]
PARAMS = [ParamSpec("density", 0.0, 1.0, 0.5), ParamSpec("gain", -24.0, 6.0, 0.0, "dB")]


class Core:
    """A stand-in daemon core: applies tempo and density so that status reflects what OSC drove."""

    def __init__(self) -> None:
        self.events: list = []
        self.state = {"state": "playing", "bpm": 120.0, "density": 0.5, "sync_source": "internal"}

    def handle(self, event: object) -> None:
        self.events.append(event)
        if isinstance(event, TempoEvent):
            self.state["bpm"] = event.bpm
        if isinstance(event, ControlEvent):
            self.state[event.name] = event.value

    def status(self) -> dict:
        return dict(self.state)


def run(coro) -> object:
    return asyncio.run(asyncio.wait_for(coro, 60))


def test_client_drives_tempo_density_and_reads_status() -> None:
    core = Core()

    async def body() -> None:
        async with running(on_event=core.handle, status_provider=core.status, params_provider=lambda: PARAMS) as (
                server, client, _):
            assert server.port > 0
            client.send("/musika/tempo", 128.5)
            assert await client.expect("/musika/tempo") == [128.5]  # echoed for control-surface feedback
            client.send("/musika/param/density", 0.25, "now")
            assert await client.expect("/musika/param/density") == [0.25]
            client.send("/musika/param/gain", 0.5)
            await client.expect("/musika/param/gain")
            client.send("/musika/status")
            flat = await client.expect("/musika/status")
            status = dict(zip(flat[::2], flat[1::2], strict=True))
            assert status["bpm"] == pytest.approx(128.5) and status["density"] == pytest.approx(0.25)
            assert status["state"] == "playing"
            assert await client.expect("/musika/status/bpm") == [pytest.approx(128.5)]

    run(body())
    tempo = of_type(core.events, TempoEvent)
    assert [(t.bpm, t.source) for t in tempo] == [(128.5, "osc")]
    controls = of_type(core.events, ControlEvent)
    assert (controls[0].name, controls[0].value, controls[0].quantise) == ("density", 0.25, "now")
    assert (controls[1].name, controls[1].value) == ("gain", pytest.approx(-9.0))  # 0.5 of -24..6 dB


def test_bad_values_are_refused_with_an_error_reply_and_counted() -> None:
    async def body() -> list:
        async with running(params_provider=lambda: PARAMS) as (server, client, events):
            client.send("/musika/tempo", float("nan"))
            err = await client.expect("/musika/error")
            assert err[0] == "/musika/tempo" and "nan" in err[1] and "finite" in err[1]
            client.send("/musika/tempo", -10.0)
            assert "20–300" in (await client.expect("/musika/error"))[1]
            client.send("/musika/param/nope", 0.5)
            assert "density" in (await client.expect("/musika/error"))[1]  # names what is known
            client.send("/musika/seed", 3.5)
            await client.expect("/musika/error")
            await client.roundtrip()
            assert server.stats["bad"] == 4
            return events

    events = run(body())
    assert not of_type(events, TempoEvent) and not of_type(events, SeedEvent)
    assert len(of_type(events, BadInput)) == 4


def test_transport_buttons_and_acks() -> None:
    async def body() -> list:
        async with running() as (_, client, events):
            client.send("/musika/transport/play")
            assert await client.expect("/musika/ack") == ["/musika/transport/play"]
            client.send("/musika/transport/stop", 0.0)  # TouchOSC button release: nothing happens
            client.send("/musika/transport/stop", 1.0)
            await client.expect("/musika/ack")
            client.send("/musika/transport/locate", 32.0)
            await client.expect("/musika/transport/locate")
            return events

    events = run(body())
    assert [(e.action, e.beat) for e in of_type(events, TransportEvent)] == [
        ("play", None), ("stop", None), ("locate", 32.0)]


def test_subscribe_pushes_status_until_unsubscribed() -> None:
    async def body() -> None:
        async with running(status_provider=lambda: {"bpm": 99.0, "underruns": 0}) as (server, client, _):
            client.send("/musika/subscribe", 30.0)
            for _ in range(3):
                flat = await client.expect("/musika/status")
                assert flat == ["bpm", 99.0, "underruns", 0]
            assert len(server.subscribers) == 1
            client.send("/musika/subscribe", 0.0)
            await client.roundtrip()
            assert server.subscribers == {}

    run(body())


def test_echo_reaches_other_subscribers() -> None:
    async def body() -> None:
        async with running(params_provider=lambda: PARAMS) as (server, watcher, _):
            watcher.send("/musika/subscribe", 1.0)
            await watcher.expect("/musika/ack")
            other = await OscClient.connect(server.port)
            other.send("/musika/param/density", 0.75)
            assert await watcher.expect("/musika/param/density") == [0.75]
            server.broadcast("/musika/param/density", 0.5)  # a change made elsewhere (MIDI) is echoed too
            assert await watcher.expect("/musika/param/density") == [0.5]
            other.close()

    run(body())


def test_discovery_lists_presets_and_params() -> None:
    async def body() -> None:
        async with running(params_provider=lambda: PARAMS, presets_provider=lambda: ["techno", "piano"]) as (
                _, client, _e):
            client.send("/musika/list/presets")
            assert await client.expect("/musika/list/presets") == ["techno", "piano"]
            client.send("/musika/list/params")
            assert await client.expect("/musika/list/params") == ["density", "gain"]
            assert await client.expect("/musika/list/param") == ["density", 0.0, 1.0, 0.5, ""]
            client.send("/musika/list")
            assert "/musika/tempo" in await client.expect("/musika/list")

    run(body())


def test_bundles_are_delivered_together_at_their_timetag() -> None:
    delivered: list[tuple[float, object]] = []

    async def body() -> OscServer:
        async with running(on_event=lambda e: delivered.append((time.monotonic(), e)),
                           params_provider=lambda: PARAMS) as (server, client, _):
            client.send_raw(bundle(time.time() + 0.3, ("/musika/tempo", 100.0), ("/musika/param/density", 1.0)))
            client.send_raw(bundle(0, ("/musika/tempo", 90.0)))  # immediately
            client.send_raw(bundle(time.time() + 3600, ("/musika/tempo", 80.0)))  # beyond the horizon: refused
            await client.expect("/musika/error")
            while len(delivered) < 4:
                await asyncio.sleep(0.05)
            return server

    server = run(body())
    events = [e for _, e in delivered if not isinstance(e, BadInput)]
    assert [getattr(e, "bpm", None) for e in events] == [90.0, 100.0, None]
    later = [(t, e) for t, e in delivered if isinstance(e, TempoEvent | ControlEvent) and e != events[0]]
    assert all(t >= later[0][1].time - 1e-3 for t, _ in later)  # not before the timetag
    assert server.stats["scheduled"] == 1


def test_osc_paths_cannot_escape_their_directories(tmp_path: Path) -> None:
    roots = {"sessions": tmp_path / "sessions", "renders": tmp_path / "renders", "presets": tmp_path / "presets"}
    for root in roots.values():
        root.mkdir()
    (tmp_path / "presets" / "techno").mkdir()

    async def body() -> list:
        async with running(path_roots=roots, presets_provider=lambda: ["techno"]) as (server, client, events):
            for args in (["../secret.toml"], ["/etc/passwd"], ["a.toml", "../../out"]):
                client.send("/musika/render", *args)
                assert "escapes" in (await client.expect("/musika/error"))[1]
            client.send("/musika/preset", "../techno")
            assert "not an installed preset" in (await client.expect("/musika/error"))[1]
            client.send("/musika/preset", "techno", "bar")
            await client.expect("/musika/preset")
            client.send("/musika/render", "set/a.toml", "take1")
            await client.expect("/musika/ack")
            request = of_type(events, RenderRequest)[0]
            server.render_progress(request.reply_to, 0.5)
            assert await client.expect("/musika/render/progress") == [0.5]
            server.render_done(request.reply_to, request.out_dir)
            assert await client.expect("/musika/render/done") == [request.out_dir]
            assert request.reply_to == client.address
            return events

    events = run(body())
    request = of_type(events, RenderRequest)[0]
    assert Path(request.session_path) == (tmp_path / "sessions" / "set" / "a.toml").resolve()
    assert Path(request.out_dir) == (tmp_path / "renders" / "take1").resolve()
    assert [(p.name, p.quantise) for p in of_type(events, PresetEvent)] == [("techno", "bar")]


def test_render_without_configured_directory_is_refused() -> None:
    with pytest.raises(OscInputError, match="no 'sessions' directory is configured"):
        decode("/musika/render", ["a.toml"], ("127.0.0.1", 1), 0.0, Context())


def test_decode_is_pure_and_validates_types() -> None:
    ctx = Context(params=lambda: PARAMS)
    assert decode("/musika/seed", [7.0], ("127.0.0.1", 1), 5.0, ctx).events == [SeedEvent(7, "osc")]
    assert decode("/musika/transport/play", [True], ("127.0.0.1", 1), 5.0, ctx).events[0].time == 5.0
    for address, args in [("/musika/seed", ["7"]), ("/musika/tempo", [True]), ("/musika/tempo", [120.0, 1]),
                          ("/musika/sync", ["mtc"]), ("/musika/meter", [7, 3]), ("/musika/tempo", [math.inf]),
                          ("/musika/param/density", [1.5]), ("/musika/*", [])]:
        with pytest.raises(OscInputError):
            decode(address, args, ("127.0.0.1", 1), 0.0, ctx)


def test_only_loopback_or_allowed_senders() -> None:
    nets = parse_allow(["192.168.1.0/24", "10.0.0.5"])
    assert sender_allowed("127.0.0.1", []) and sender_allowed("::1", []) and sender_allowed("::ffff:127.0.0.1", [])
    assert not sender_allowed("192.168.1.7", []) and sender_allowed("192.168.1.7", nets)
    assert not sender_allowed("10.0.0.6", nets) and not sender_allowed("garbage", nets)
    with pytest.raises(ConfigError, match="not a network"):
        parse_allow(["192.168.1.0/33"])
    with pytest.raises(ConfigError, match="not loopback"):
        OscServer(host="0.0.0.0")
    OscServer(host="0.0.0.0", allow=["192.168.1.0/24"])  # allowed with a list (not started)


def test_port_in_use_gives_a_clear_error() -> None:
    async def body() -> None:
        async with running() as (server, _, _e):
            clash = OscServer(port=server.port)
            with pytest.raises(OscBindError, match=f"127.0.0.1:{server.port}"):
                await clash.start()

    run(body())


def test_handler_errors_do_not_stop_the_server() -> None:
    def explode(event: object) -> None:
        raise RuntimeError("core bug")

    async def body() -> None:
        async with running(on_event=explode) as (_, client, _e):
            client.send("/musika/tempo", 120.0)
            assert await client.expect("/musika/tempo") == [120.0]
            await client.roundtrip()

    run(body())


def test_generated_docs_are_up_to_date() -> None:
    for rel, make in osc_addresses.GENERATED.items():
        path = REPO / rel
        assert path.exists(), f"{rel} is missing: run python -m bridge.osc_addresses"
        assert path.read_text(encoding="utf-8") == make(), f"{rel} is stale: run python -m bridge.osc_addresses"
    assert "`/musika/param/{name}`" in osc_addresses.markdown()


def test_udp_socket_is_really_bound_to_loopback() -> None:
    async def body() -> None:
        async with running() as (server, _, _e):
            probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            with pytest.raises(OSError):
                probe.bind(("127.0.0.1", server.port))
            probe.close()

    run(body())


NON_LOOPBACK_SCRIPT = """
import asyncio, json, socket
from bridge.osc import OscServer
from bridge.osc_schema import flatten
from tests.bridge.osc_client import message

async def main():
    server = OscServer(host="0.0.0.0", allow=["10.77.0.1/32"])
    await server.start()
    loop = asyncio.get_running_loop()
    socks = {}
    for src in ("10.77.0.1", "10.77.0.2"):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((src, 0))
        s.setblocking(False)
        socks[src] = s
    socks["10.77.0.2"].sendto(message("/musika/tempo", 120.0), ("10.77.0.1", server.port))  # refused
    socks["10.77.0.1"].sendto(message("/musika/list"), ("10.77.0.1", server.port))  # allowed
    data = await asyncio.wait_for(loop.sock_recv(socks["10.77.0.1"], 65536), 20)
    try:
        socks["10.77.0.2"].recv(65536)
        refused_got_reply = True
    except BlockingIOError:
        refused_got_reply = False
    print(json.dumps({"reply": flatten(data)[0][1].address, "stats": server.stats,
                      "refused_got_reply": refused_got_reply}))
    await server.stop()

asyncio.run(main())
"""


def test_non_loopback_clients_are_refused_unless_allowed() -> None:
    with loopback_namespace(addresses=["10.77.0.1/32", "10.77.0.2/32"]) as ns:
        out = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", NON_LOOPBACK_SCRIPT], cwd=REPO,
                             capture_output=True, text=True, timeout=60, env={"PYTHONPATH": str(REPO)})
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["reply"] == "/musika/list"  # the allowed network gets answers
    assert result["stats"]["refused"] == 1 and result["stats"]["events"] == 0  # the other is dropped unheard
    assert not result["refused_got_reply"]
