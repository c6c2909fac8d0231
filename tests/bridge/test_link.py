"""Ableton Link: a local-only timeline outside any namespace, and two real peers inside a loopback-only one.

Link is enabled only inside a network namespace the test creates (its multicast never leaves `lo` there) and
deletes afterwards; without namespaces the two-peer test is skipped with the reason.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

import pytest

from bridge.events import PositionEvent, TempoEvent
from bridge.link import LinkSync, beat_at
from tests.bridge.netns import REPO, Peer, loopback_namespace

COMMON = """
import asyncio, json, sys, time

def say(**kw):
    print(json.dumps(kw), flush=True)

async def until(pred, what):
    try:
        await asyncio.wait_for(_poll(pred), 20)
    except asyncio.TimeoutError:
        say(error=f"timed out waiting for {what}")
        sys.exit(1)

async def _poll(pred):
    while not pred():
        await asyncio.sleep(0.01)

async def commands():
    loop = asyncio.get_running_loop()
    while True:
        line = (await loop.run_in_executor(None, sys.stdin.readline)).strip()
        if not line or line == "quit":
            return
        yield line
"""

PEER_A = COMMON + """
import aalink

async def main():
    link = aalink.Link(110.0)
    link.quantum = 4
    link.start_stop_sync_enabled = True
    link.enabled = True
    say(ready=True)
    async for cmd in commands():
        verb, _, arg = cmd.partition(" ")
        if verb == "wait_peer":
            await until(lambda: link.num_peers >= 1, "the other peer")
            say(peers=link.num_peers)
        elif verb == "tempo":
            link.tempo = float(arg)
            say(tempo=link.tempo)
        elif verb == "wait_tempo":
            await until(lambda: abs(link.tempo - float(arg)) < 1e-3, f"tempo {arg} from the other peer")
            say(tempo=link.tempo)
        elif verb == "playing":
            link.playing = arg == "1"
            say(playing=link.playing)
        elif verb == "sample":
            out = []
            for _ in range(5):
                phase = link.phase
                out.append([time.monotonic(), phase])
                await asyncio.sleep(0.02)
            say(samples=out)
    link.enabled = False

asyncio.run(main())
"""

PEER_B = COMMON + """
from bridge.events import TempoEvent, TransportEvent
from bridge.link import LinkSync

async def main():
    events = []
    link = LinkSync(quantum=4, on_event=events.append, enabled=True)
    await link.start()
    await until(lambda: link.num_peers >= 1, "the other peer")
    say(joined=True)
    async for cmd in commands():
        verb, _, arg = cmd.partition(" ")
        if verb == "wait_tempo":
            await until(lambda: any(isinstance(e, TempoEvent) and abs(e.bpm - float(arg)) < 1e-3 for e in events),
                        f"a TempoEvent {arg}")
            say(tempo=link.tempo)
        elif verb == "wait_action":
            await until(lambda: any(isinstance(e, TransportEvent) and e.action == arg for e in events), arg)
            say(actions=[e.action for e in events if isinstance(e, TransportEvent)])
        elif verb == "sample":
            out = []
            for _ in range(5):
                t = time.monotonic()
                out.append([t, link.phase_at(t)])
                await asyncio.sleep(0.02)
            say(samples=out)
        elif verb == "tempo":
            link.set_tempo(float(arg))
            say(tempo=link.tempo)
    await link.stop()

asyncio.run(main())
"""


def phase_error(a: list, b: list, bpm: float, quantum: float = 4.0) -> float:
    """Largest disagreement (beats, circular) between two peers' (monotonic time, phase) samples."""
    worst = 0.0
    for ta, pa in a:
        for tb, pb in b:
            d = (pa + (tb - ta) * bpm / 60.0 - pb) % quantum
            worst = max(worst, min(d, quantum - d))
    return worst


@pytest.mark.timeout(120)
def test_two_peers_share_tempo_phase_and_start_stop_in_a_loopback_namespace() -> None:
    with loopback_namespace() as ns:
        a = Peer(ns, PEER_A)
        b = None
        try:
            assert a.read() == {"ready": True}
            b = Peer(ns, PEER_B)
            assert b.read() == {"joined": True}
            a.send("wait_peer")
            assert a.read() == {"peers": 1}
            a.send("tempo 133")  # one peer changes the tempo: LinkSync reports it
            a.read()
            b.send("wait_tempo 133")
            assert b.read()["tempo"] == pytest.approx(133.0)
            a.send("playing 1")  # start/stop sync
            a.read()
            b.send("wait_action play")
            assert b.read()["actions"] == ["play"]
            a.send("sample")
            b.send("sample")
            sa, sb = a.read(), b.read()
            assert phase_error(sa["samples"], sb["samples"], 133.0) < 0.05  # 0.05 beat = 23 ms at 133 BPM
            b.send("tempo 99")  # and the other way round
            assert b.read()["tempo"] == pytest.approx(99.0)
            a.send("wait_tempo 99")
            assert a.read()["tempo"] == pytest.approx(99.0)
            a.send("playing 0")
            a.read()
            b.send("wait_action stop")
            assert b.read()["actions"] == ["play", "stop"]
        finally:
            a.close()
            if b is not None:
                b.close()


def test_disabled_link_keeps_a_local_timeline() -> None:
    events: list = []

    async def body() -> None:
        link = LinkSync(quantum=3, on_event=events.append, position_hz=50.0)  # enabled=False: sends nothing
        await link.start()
        try:
            assert not link.enabled and link.num_peers == 0 and link.tempo == 120.0
            link.set_tempo(90.0)  # our own change is not reported back as news
            while len([e for e in events if isinstance(e, PositionEvent)]) < 3:
                await asyncio.sleep(0.01)
            now = time.monotonic()
            assert 0.0 <= link.phase_at(now) < 3.0
            assert link.beat_at(now + 2.0) - link.beat_at(now) == pytest.approx(3.0, abs=1e-3)
            with pytest.raises(ValueError, match="20–999"):
                link.set_tempo(float("nan"))
        finally:
            await link.stop()

    asyncio.run(asyncio.wait_for(body(), 60))
    assert not [e for e in events if isinstance(e, TempoEvent)]
    beats = [e.beat for e in events if isinstance(e, PositionEvent)]
    assert beats == sorted(beats) and all(e.exact for e in events if isinstance(e, PositionEvent))


def test_beat_at_is_linear_in_time() -> None:
    assert beat_at(8.0, 100.0, 120.0, 101.5) == pytest.approx(11.0)
    assert beat_at(8.0, 100.0, 120.0, 99.5) == pytest.approx(7.0)
    with pytest.raises(ValueError, match="quantum"):
        LinkSync(quantum=0)


def test_aalink_is_imported_only_when_link_starts() -> None:
    code = "import sys, bridge.link, bridge.osc, bridge.abletonosc; print('aalink' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False", out.stderr


def test_a_tempo_ramp_from_another_peer_reaches_the_daemon_as_a_few_changes_and_the_tempo_it_ends_on() -> None:
    """A peer gliding 126 -> 132.3 BPM in 50 ms steps changed the tempo 160 times in 8 s, each change re-planning the
    audio ahead until the daemon underran. Passed on: changes of more than 0.3 BPM, each with the ramp's slope (so the
    beats ahead are planned along it), and the tempo it settles on, with the slope 0."""
    events: list = []

    async def body() -> None:
        link = LinkSync(quantum=4, on_event=events.append, bpm=126.0, position_hz=20.0)
        await link.start()
        try:
            for k in range(1, 64):  # what aalink calls back with while another peer ramps (here: local timeline)
                link._need().tempo = 126.0 + 0.1 * k
                link._tempo_changed(126.0 + 0.1 * k)
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.3)  # the ramp is over: the tempo holds still
        finally:
            await link.stop()

    asyncio.run(asyncio.wait_for(body(), 60))
    changes = [e for e in events if isinstance(e, TempoEvent)]
    tempi = [e.bpm for e in changes]
    assert 15 <= len(tempi) <= 22  # 6.3 BPM in steps of just over 0.3 BPM, not 63 changes
    assert tempi[-1] == pytest.approx(132.3) and changes[-1].slope == 0.0  # the tempo it ended on, held
    # the ramp's start is news (its slope), then every change of more than 0.3 BPM, and where it stopped
    assert all(b - a > 0.3 for a, b in zip(tempi[:-3], tempi[1:-2], strict=True))
    # 0.1 BPM every 10 ms or a little more (the loop's sleeps): 8-10 BPM per second
    assert all(5.0 < e.slope < 11.0 for e in changes[:-1])
