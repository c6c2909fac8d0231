"""What the `musika serve` end-to-end tests share: the `musika` command of this checkout, a JACK recorder, the
daemon as a process, a DAW stand-in that sends MIDI clock through JACK, and status helpers.

Also runnable as the MIDI sender: ``python -m tests.bridge.serve_rig PORT`` (JACK_DEFAULT_SERVER set).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
import time
from pathlib import Path

import numpy as np

from tests.bridge.osc_client import OscClient

ROOT = Path(__file__).resolve().parents[2]
# the `musika` command line of this checkout
MUSIKA = [sys.executable, "-m", "musika"]
READY_S = 90.0  # upper bounds on waiting (the machine may be busy), not speed requirements


async def settled(client, bpm: float, tries: int = 8) -> dict:
    """Status once the tempo at the play head is within 1 BPM of `bpm` (catch-up after a step lasts a few beats)."""
    st = await status(client)
    for _ in range(tries):
        if abs(st["bpm"] - bpm) <= 1.0:
            break
        await asyncio.sleep(0.5)
        st = await status(client)
    return st


async def in_phase(client, tries: int = 10) -> dict:
    """Status once what is heard is within 60 ms of the transport. An xrun (the test JACK server often has a burst
    when a client starts) delays the audio; the daemon nudges it back at <= 6 %, which takes a few beats."""
    st = await status(client)
    for _ in range(tries):
        if abs(st["sync_error_ms"]) < 60.0:
            break
        await asyncio.sleep(0.5)
        st = await status(client)
    return st


# ---------------------------------------------------------------------------------------- the DAW stand-in
def sender_main(port: str) -> int:
    """Clock at 120 BPM (stopped 1 beat), Start, 10 beats, step to 140 BPM for 12 beats, Stop, 1.5 s of clock,
    Start, 10 beats, Stop. Prints "<mark> <time.monotonic()> <bpm>" when each part begins."""
    import mido

    backend = mido.Backend("mido.backends.rtmidi/UNIX_JACK", load=True)
    deadline = time.monotonic() + 20.0
    while not (names := [n for n in backend.get_output_names() if port in n]):
        if time.monotonic() > deadline:
            print(f"no MIDI port matching {port!r}", file=sys.stderr)
            return 1
        time.sleep(0.05)
    with backend.open_output(names[0]) as out:
        when = time.perf_counter() + 0.05

        def clocks(beats: float, bpm: float, mark: str = "") -> None:
            nonlocal when
            for i in range(round(beats * 24)):
                while (left := when - time.perf_counter()) > 0:
                    time.sleep(left - 0.001 if left > 0.002 else 0)
                out.send(mido.Message("clock"))
                if i == 0 and mark:
                    print(mark, time.monotonic(), bpm, flush=True)
                when += 60.0 / (24 * bpm)

        clocks(1, 120)
        out.send(mido.Message("start"))
        clocks(10, 120, "start")
        clocks(12, 140, "tempo")
        out.send(mido.Message("stop"))
        print("stop", time.monotonic(), 140, flush=True)
        clocks(1.5 * 140 / 60, 140)
        out.send(mido.Message("start"))
        clocks(10, 140, "restart")  # (room for the status to settle after an xrun burst at the Start)
        out.send(mido.Message("stop"))
        print("end", time.monotonic(), 140, flush=True)
        time.sleep(0.1)
    return 0


# ---------------------------------------------------------------------------------------- test helpers
class Recorder:
    """A JACK client with in_L/in_R recording into a preallocated buffer, with (monotonic time, frame) marks."""

    def __init__(self, seconds: float = 40.0, rate: int = 44100):
        import jack

        self.client = jack.Client("recorder", no_start_server=True)
        self.ins = [self.client.inports.register(n) for n in ("in_L", "in_R")]
        self.buf = np.zeros((2, int(seconds * rate)), np.float32)
        self.n = 0
        self.marks: list[tuple[float, int]] = []
        self.client.set_process_callback(self._process)
        self.client.activate()

    def _process(self, frames: int) -> None:
        self.marks.append((time.monotonic(), self.n))
        k = min(frames, self.buf.shape[1] - self.n)
        for c, port in enumerate(self.ins):
            self.buf[c, self.n:self.n + k] = port.get_array()[:k]
        self.n += k

    def connect(self, outputs: list[str]) -> None:
        for src, dst in zip(outputs, self.ins, strict=True):
            self.client.connect(src, dst)

    def window(self, t0: float, t1: float) -> np.ndarray:
        """Audio recorded between monotonic times t0 and t1, (2, frames)."""
        times, frames = np.array(self.marks).T
        a, b = np.interp([t0, t1], times, frames).astype(int)
        return self.buf[:, a:b]

    def close(self) -> None:
        self.client.deactivate()
        self.client.close()


class Daemon:
    """`musika serve` as a subprocess; stderr goes to a file (read it when a test fails)."""

    def __init__(self, proc: asyncio.subprocess.Process, log: Path):
        self.proc, self.log = proc, log
        self.ready = ""
        self.ready_at = 0.0  # time.monotonic() when the ready line arrived
        self.osc_port = 0
        self.outputs: list[str] = []

    @classmethod
    async def start(cls, args: list[str], env: dict, tmp: Path) -> Daemon:
        log = tmp / "serve.log"
        proc = await asyncio.create_subprocess_exec(
            *MUSIKA, "serve", *args, cwd=tmp, env={**env, "PYTHONPATH": str(ROOT)},
            stdout=asyncio.subprocess.PIPE, stderr=log.open("w"))
        daemon = cls(proc, log)
        try:
            line = await asyncio.wait_for(proc.stdout.readline(), READY_S)
        except TimeoutError:
            proc.kill()
            raise
        daemon.ready, daemon.ready_at = line.decode().strip(), time.monotonic()
        assert daemon.ready.startswith("musika: serving"), f"no ready line: {daemon.ready!r}\n{log.read_text()}"
        daemon.osc_port = int(re.search(r"OSC on 127\.0\.0\.1:(\d+)", daemon.ready).group(1))
        ports = re.search(r"output jack \(([^)]*)\)", daemon.ready).group(1)
        daemon.outputs = ports.split("/")
        return daemon

    @classmethod
    async def with_config(cls, toml: str, preset: Path, env: dict, tmp: Path) -> Daemon:
        """`musika serve` with this musika.toml and preset, a free OSC port and the control log perf.jsonl."""
        (tmp / "musika.toml").write_text(toml)
        return await cls.start(["--config", "musika.toml", "--preset", str(preset), "--osc-port", "0",
                                "--control-log", "perf.jsonl"], env, tmp)

    def records(self) -> list[dict]:
        """The control log's records (after the session header)."""
        return [json.loads(line) for line in (self.log.parent / "perf.jsonl").read_text().splitlines()[1:]]

    async def stop(self, sig: int = signal.SIGTERM) -> int:
        self.proc.send_signal(sig)
        try:
            return await asyncio.wait_for(self.proc.wait(), 20.0)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
            raise

    def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()


async def status(client: OscClient) -> dict:
    client.send("/musika/status")
    args = await client.expect("/musika/status")
    return dict(zip(args[::2], args[1::2], strict=True))


async def until(deadline: float) -> None:
    await asyncio.sleep(max(0.0, deadline - time.monotonic()))


def rms(x: np.ndarray) -> np.ndarray:
    return np.sqrt(np.mean(np.square(x, dtype=np.float64), axis=1))


def assert_stereo_sound(audio: np.ndarray) -> None:
    assert audio.shape[0] == 2 and audio.shape[1] > 4410
    assert np.all(np.isfinite(audio))
    assert np.all(rms(audio) > 1e-4), f"silent channel: rms {rms(audio)}"


def diag(st: dict, recorder: Recorder) -> str:
    times, frames = np.array(recorder.marks).T
    lost = (times[-1] - times[0]) - (frames[-1] - frames[0]) / 44100
    keys = ("bpm", "host_beat", "heard_beat", "sync_error_ms", "underruns", "xruns", "relocations", "buffer_ms")
    return f"{ {k: st.get(k) for k in keys} }, JACK lost {lost * 1000:.0f} ms vs the monotonic clock"


def phase_error_beats(st: dict, start_time: float, bpm: float) -> float:
    """Heard beat minus the sender's beat at the status time (the sender's beat 0 is its first clock)."""
    return st["heard_beat"] - (st["time"] - start_time) * bpm / 60.0


async def listening(toml: str, preset: Path, env: dict, tmp: Path) -> tuple[Daemon, Recorder, OscClient]:
    """`musika serve` in sync auto with MIDI in on JACK, output to JACK (recorded), `toml` added to musika.toml."""
    daemon = await Daemon.with_config(f'[midi]\nbackend = "jack"\n{toml}[output]\nkind = "jack"\n', preset, env, tmp)
    try:
        assert "MIDI in 'Musika' (jack)" in daemon.ready and "sync auto" in daemon.ready
        recorder = Recorder()
        recorder.connect(daemon.outputs)
        return daemon, recorder, await OscClient.connect(daemon.osc_port)
    except BaseException:
        daemon.kill()
        raise


# ---------------------------------------------------------------------------------------- tests


if __name__ == "__main__":
    os.environ.setdefault("JACK_NO_START_SERVER", "1")
    sys.exit(sender_main(sys.argv[1]))
