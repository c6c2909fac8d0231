"""Live beats against the host's own grid, measured from outside the daemon.

`python scripts/live_phase.py [--sync midi|jack|internal|osc|link] [--jitter PERCENT] [--seconds 150] [--bpm 126]
[--tempo-changes] [--locates] [--xruns 4] [--scatter-ms 4]`

Starts a JACK dummy server of its own (unique name, stopped by its PID), ``jack_transport`` as the host's
transport and timecode master (play, tempo), ``jack_midi_clock`` following that transport (optionally with its
``-J`` jitter) into ``musika serve --sync midi --output jack``, and a JACK client that records the daemon's output
ports and reads ``transport_query()`` every cycle: the transport frame of every recorded sample, i.e. the exact
host beat grid (beat = frame / rate * bpm / 60 with the tempo fixed from frame 0, as jack_transport defines it).
The clock's own MIDI output is recorded too (sample-accurate), as a check of the sender.

The recording is beat-tracked by a tracker that is not the daemon's (scripts/phase_analysis.py: the peak of
librosa's onset strength within +-0.2 beat of each host beat, its lag calibrated on synthetic kicks; librosa's
beat_track at hop 64 for the tempo), and each beat's phase error against the host beat is reported: median and
p95 of |error|, the signed median (+: late), and the drift (signed median of the last minute minus that of the
first). The daemon's own view (/musika/status over OSC: phase_error_ms, sync_error_ms) is polled alongside. With
``--sync internal`` or ``osc`` no clock is sent: the daemon plays on its own clock (OSC: started with
/musika/tempo and /musika/transport/play as the transport starts), and the grid is a line fitted through its
own kicks: phase stability and drift, not an offset. With ``--sync link`` the host is an Ableton Link peer
(scripts/link_peer.py) that starts the session once the daemon has joined, optionally steps and ramps its tempo
(``--tempo-changes``), and notes its beat every 10 ms; the grid is the session's beat at each recorded sample's
host time. With ``--sync jack`` no clock is sent either: the daemon reads the JACK transport that jack_transport
rolls (``musika serve --sync jack``), against the same grid as MIDI clock. ``--tempo-changes`` with midi or jack
makes scripts/tempo_map.py the timebase master: a DAW's tempo map with steps and ramps, the position continuous
(jack_midi_clock and the daemon both follow it; the grid is the map's beat of each frame). Link multicasts, so the
script then runs itself again inside a loopback-only network namespace of its own (root), deleted afterwards.

Prints one JSON line (figures per run); --keep keeps the recording, the host grid and the clock's ticks (.npz) and
the daemon's log (.log beside it).
`musika bench --host-grid [ARGS]` runs it.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # phase_analysis beside this file, also when imported
from link_peer import PEER, link_grid, tempo_plan  # noqa: E402
from osc_probe import OscFlood, osc_send, osc_status  # noqa: E402
from phase_analysis import (  # noqa: E402
    SR,
    beat_onsets,
    clock_grid,
    host_grid,
    phase_figures,
    self_grid,
    tracked_bpm,
    unwrap_locates,
)
from tempo_map import TempoMap  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------------------ the rig (I/O)
class Rig:
    """JACK server, transport, clock, daemon and recorder; `close()` stops what it started, by PID."""

    def __init__(self, period: int = 512) -> None:
        self.name = f"musika-phase-{uuid.uuid4().hex[:8]}"
        self.env = {**os.environ, "JACK_DEFAULT_SERVER": self.name, "JACK_NO_START_SERVER": "1",
                    "JACK_NO_AUDIO_RESERVATION": "1", "PYTHONPATH": str(ROOT)}
        self.procs: list[subprocess.Popen] = []
        self.tmp = Path(tempfile.mkdtemp(prefix="live-phase-"))
        jackd = subprocess.Popen(["jackd", "-n", self.name, "-d", "dummy", "-r", str(SR), "-p", str(period)],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=self.env)
        self.procs.append(jackd)
        self._wait_jack(jackd)
        self.transport: subprocess.Popen | None = None

    def _wait_jack(self, proc: subprocess.Popen) -> None:
        import jack

        deadline = time.monotonic() + 20
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"jackd exited with {proc.returncode}")
            try:
                jack.Client("probe", servername=self.name, no_start_server=True).close()
                return
            except jack.JackError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def start_transport(self, bpm: float, tempo_plan: list | None = None) -> None:
        """jack_transport plays, stops and locates; it is the timebase master too, unless a tempo map is (a
        tempo_plan: scripts/tempo_map.py states the tempo and the bar/beat/tick)."""
        self.transport = subprocess.Popen(["jack_transport"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL, env=self.env, text=True)
        self.procs.append(self.transport)
        if tempo_plan is None:
            self.command("master", f"tempo {bpm:g}", "locate 0")
            return
        master = self.spawn([sys.executable, str(Path(__file__).with_name("tempo_map.py")), f"{bpm:g}",
                             json.dumps(tempo_plan)], "tempo-map.log")
        if master.stdout.readline().strip() != "ready":
            raise RuntimeError(f"tempo_map.py did not start: {(self.tmp / 'tempo-map.log').read_text()[-2000:]}")
        self.command("locate 0")

    def command(self, *lines: str) -> None:
        assert self.transport is not None and self.transport.stdin is not None
        for line in lines:
            self.transport.stdin.write(line + "\n")
        self.transport.stdin.flush()

    def spawn(self, args: list[str], log: str) -> subprocess.Popen:
        p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=(self.tmp / log).open("w"), env=self.env,
                             cwd=self.tmp, text=True)
        self.procs.append(p)
        return p

    def close(self) -> None:
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(timeout=5)


class Recorder:
    """Records two audio ports and a MIDI port, and the transport state of every cycle."""

    def __init__(self, servername: str, seconds: float) -> None:
        import jack

        self.jack = jack
        self.client = jack.Client("phase-recorder", servername=servername, no_start_server=True)
        self.ins = [self.client.inports.register(n) for n in ("in_L", "in_R")]
        self.midi = self.client.midi_inports.register("clock_in")
        self.buf = np.zeros((2, int(seconds * SR)), np.float32)
        self.n = 0
        self.cycles: list[tuple[int, int, bool, float]] = []
        self.stamps: list[tuple[int, int, float]] = []  # (recorded index, JACK frame, host time of that frame)
        self.ticks: list[int] = []
        self.client.set_process_callback(self._process)
        self.client.activate()

    def _process(self, frames: int) -> None:
        state, pos = self.client.transport_query()
        rolling = state == self.jack.ROLLING
        self.cycles.append((self.n, int(pos["frame"]), rolling, float(pos.get("beats_per_minute", 0.0))))
        self.stamps.append((self.n, self.client.last_frame_time,
                            time.monotonic() - self.client.frames_since_cycle_start / SR))
        for offset, data in self.midi.incoming_midi_events():
            if bytes(data) == b"\xf8":
                self.ticks.append(self.n + offset)
        k = min(frames, self.buf.shape[1] - self.n)
        for c, port in enumerate(self.ins):
            self.buf[c, self.n : self.n + k] = port.get_array()[:k]
        self.n += k

    def close(self) -> None:
        self.client.deactivate()
        self.client.close()


def _preset_windows(disturb: tuple, measured: str, t_play: float, stamps: list) -> list[tuple[float, float]]:
    """Recorded seconds from each change to another preset until 3 s after the change back (its beats are not the
    measured preset's)."""
    changes = sorted((t, v) for t, action, v in disturb if action == "preset")
    if not changes:
        return []
    idx, _, host = (np.asarray(c, np.float64) for c in zip(*stamps, strict=True))

    def at(t: float) -> float:  # seconds after play -> recorded seconds
        return float(np.interp(t_play + t, host, idx)) / SR

    out, start = [], None
    for t, name in changes + [(math.inf, measured)]:
        if name != measured and start is None:
            start = t
        elif name == measured and start is not None:
            out.append((at(start), at(t + 3.0) if math.isfinite(t) else math.inf))
            start = None
    return out


def _outside(beats: np.ndarray, onsets: np.ndarray, windows: list) -> tuple[np.ndarray, np.ndarray]:
    keep = np.ones(len(beats), bool)
    for a, b in windows:
        keep &= ~((onsets >= a) & (onsets < b))
    return beats[keep], onsets[keep]


def _beat_errors(beats: np.ndarray, onsets: np.ndarray, grid: np.ndarray) -> dict[str, float]:
    """Host beat -> the tracked beat's error against it (ms, + late)."""
    ok = np.flatnonzero(np.isfinite(grid))
    expected = np.interp(beats, grid[ok], ok.astype(float)) / SR
    return {f"{b:g}": round(float(e), 2) for b, e in zip(beats, (onsets - expected) * 1000.0, strict=True)}


def measure(sync: str = "midi", jitter: float = 0.0, seconds: float = 150.0, bpm: float = 126.0,
            preset: str = "techno", settle_s: float = 8.0, wav: str | None = None, extra: list[str] | None = None,
            verbose: bool = False, disturb: tuple[tuple[float, str, float], ...] = (),
            keep_audio: bool = False, track_bpm: bool = True, clock_args: tuple[str, ...] = (), flood: int = 0,
            per_beat: bool = False, scatter_ms: float = 0.0, tempo_plan: list | None = None,
            log_to: str | None = None) -> dict:
    """Run the rig once and return the figures (dict, JSON-ready).

    disturb: (seconds after the start, action, value) with action "stall" (the clock sender is frozen for value
    seconds, SIGSTOP/SIGCONT) or "locate" (the host's transport stops, jumps to beat value and plays on 0.5 s
    later: jack_transport's locate while rolling holds JACK2's transport in Starting for its 10 s sync timeout and
    then plays on from where it was). keep_audio:
    the result also holds "audio" and "grid" (numpy arrays; not JSON). track_bpm: also the tempo by librosa's
    beat_track (the slowest part of the analysis). clock_args: more jack_midi_clock options. disturb actions also
    "stop" (the transport stops for value seconds, then plays on from there), "seed" and "variation" (sent to the
    daemon over OSC; variation normalised 0-1), and with sync "link" "tempo" (a step to value BPM) and "ramp" (a
    glide there, link_peer.RAMP_S long), made by the Link peer. flood: that many malformed OSC datagrams sent to
    the daemon evenly over the run (garbage bytes, truncated messages, wrong type tags, unknown addresses,
    out-of-range values).
    per_beat: the result also holds every measured beat's error ("beat_errors_ms", host beat -> ms). scatter_ms:
    the clock reaches the daemon through scripts/midi_jitter.py, each tick delayed by 0..scatter_ms (no walk).
    tempo_plan (midi, jack): the host's tempo steps and ramps as a DAW's tempo map states them (scripts/tempo_map.py;
    [transport seconds, "tempo" | "ramp", BPM]); the grid is then the map's beat of each recorded frame. "preset"
    disturbances (value: a preset name) leave out the beats from the change until 3 s after the next one."""
    rig = Rig()
    rec = None
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.2)
    reports: list[dict] = []
    try:
        rig.start_transport(bpm, tempo_plan)
        tempo_map = TempoMap(bpm, tempo_plan, SR) if tempo_plan is not None else None
        toml = rig.tmp / "musika.toml"
        toml.write_text('[midi]\nbackend = "jack"\n[output]\nkind = "jack"\n')
        args = [sys.executable, "-m", "musika", "serve", "--config", str(toml), "--preset", preset,
                "--output", "jack", "--sync", "internal" if sync == "osc" else sync, "--osc-port", "0",
                "--control-log", "", "--bpm", f"{bpm:g}", "-v", *(extra or [])]
        if sync != "midi":
            args.append("--no-midi")
        notes = rig.tmp / "link-notes.json"
        daemon = rig.spawn(args, "serve.log")
        assert daemon.stdout is not None
        ready = daemon.stdout.readline()
        if not ready.startswith("musika: serving"):
            raise RuntimeError(f"daemon did not start: {ready!r}\n{(rig.tmp / 'serve.log').read_text()[-3000:]}")
        osc_port = int(re.search(r"OSC on 127\.0\.0\.1:(\d+)", ready).group(1))
        outputs = re.search(r"output jack \(([^)]*)\)", ready).group(1).split("/")
        rec = Recorder(rig.name, seconds + settle_s + 10)
        for src, dst in zip(outputs, rec.ins, strict=True):
            rec.client.connect(src, dst)
        if sync == "midi":
            to = "musika-midi:Musika"
            if scatter_ms:  # an interface's jitter between the sender and the daemon
                relay = rig.spawn([sys.executable, str(Path(__file__).with_name("midi_jitter.py")), "--scatter-ms",
                                   f"{scatter_ms:g}", "--to", to], "jitter.log")
                if relay.stdout.readline().strip() != "ready":
                    raise RuntimeError(f"midi_jitter did not start: {(rig.tmp / 'jitter.log').read_text()[-2000:]}")
                to = "midi-jitter:in"
            clock = ["jack_midi_clock", *(["-J", f"{jitter:g}"] if jitter else []), *clock_args, to]
            rig.spawn(clock, "clock.log")
            deadline = time.monotonic() + 20
            while not rec.client.get_all_connections(to):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"jack_midi_clock did not connect to {to}")
                time.sleep(0.05)
            rec.client.connect("jack_midi_clock:mclk_out", "phase-recorder:clock_in")
        if sync == "link":  # a Link peer in this namespace is the host: it plays once the daemon has joined
            plan = [d for d in disturb if d[1] in ("tempo", "ramp")]  # the peer changes the session's tempo
            disturb = tuple(d for d in disturb if d not in plan)
            peer = rig.spawn([sys.executable, "-c", PEER, f"{bpm:g}", str(notes), f"{seconds + settle_s + 2:g}",
                              json.dumps(sorted(plan))], "peer.log")
            if json.loads(peer.stdout.readline() or "{}").get("peers", 0) < 1:
                raise RuntimeError("the daemon did not join the Link peer's session")
        time.sleep(1.0)
        rig.command("play")
        t_play = time.monotonic()
        if sync == "osc":
            osc_send(sock, osc_port, "/musika/tempo", float(bpm))
            osc_send(sock, osc_port, "/musika/transport/play")
        pending = sorted(disturb)
        clock_proc = rig.procs[-1] if sync == "midi" else None
        flooder = OscFlood(osc_port, flood, settle_s + seconds) if flood else None
        while time.monotonic() < t_play + settle_s + seconds:
            time.sleep(0.25 if pending else 1.0)
            while pending and time.monotonic() >= t_play + pending[0][0]:
                _, action, value = pending.pop(0)
                if action == "stall" and clock_proc is not None:
                    clock_proc.send_signal(signal.SIGSTOP)
                    time.sleep(value)
                    clock_proc.send_signal(signal.SIGCONT)
                elif action == "xrun":  # the JACK server misses its deadlines for `value` s (a busy machine)
                    rig.procs[0].send_signal(signal.SIGSTOP)
                    time.sleep(value)
                    rig.procs[0].send_signal(signal.SIGCONT)
                elif action == "locate":  # as a DAW's playhead moved while playing: stop, jump, play on
                    rig.command("stop")
                    time.sleep(0.3)
                    target = tempo_map.frame_of_beat(value) if tempo_map else int(round(value * 60.0 / bpm * SR))
                    rig.command(f"locate {target}")
                    time.sleep(0.2)
                    rig.command("play")
                elif action == "stop":
                    rig.command("stop")
                    time.sleep(value)
                    rig.command("play")
                elif action == "seed":
                    osc_send(sock, osc_port, "/musika/seed", int(value))
                elif action == "variation":
                    osc_send(sock, osc_port, "/musika/param/variation", float(value))
                elif action == "preset":
                    osc_send(sock, osc_port, "/musika/preset", str(value))
            if pending:
                continue
            st = osc_status(sock, osc_port)
            if st and time.monotonic() > t_play + settle_s:
                reports.append(st)
            if verbose and st:
                print(f"{time.monotonic() - t_play:6.1f} s: phase {st.get('phase_error_ms')} sync "
                      f"{st.get('sync_error_ms')} bpm {st.get('bpm')} stretch {st.get('stretch')}",
                      file=sys.stderr)
        rig.command("stop")
        if sync == "link":
            peer.wait(timeout=20)  # its notes are written when it stops
        if flooder is not None:
            flooder.close()
        time.sleep(0.3)
        rec.client.deactivate()
        n = rec.n
        audio = rec.buf[:, :n].copy()
        cycles, ticks, stamps = list(rec.cycles), list(rec.ticks), list(rec.stamps)
        daemon_log = (rig.tmp / "serve.log").read_text()
    finally:
        sock.close()
        if rec is not None:
            rec.client.close()
        rig.close()
    # a locate's beats numbered on, in time order
    grid = unwrap_locates(host_grid(cycles, n, tempo_map.beat if tempo_map else None))
    if sync == "link":  # the session's beat at each recorded sample, from the peer's notes
        grid = link_grid(stamps, n, notes, SR)
    rolling = np.flatnonzero(np.isfinite(grid))
    if rolling.size == 0:
        raise RuntimeError("the transport never rolled")
    if sync == "internal":  # no host: the daemon's own clock; the grid is fitted to its first beats
        grid = np.where(np.arange(n) >= rolling[0], grid, np.nan)
    if log_to:  # the daemon's log, and every clock tick (recorded sample, host beat there) beside it
        Path(log_to).write_text(daemon_log)
        tk = np.asarray(ticks, dtype=np.int64)
        np.savez_compressed(Path(log_to).with_suffix(".ticks.npz"), ticks=tk,
                            host_beat=grid[np.clip(tk, 0, n - 1)] if tk.size else np.zeros(0))
    if wav:
        np.savez_compressed(wav, audio=audio, grid=grid, ticks=np.asarray(ticks, dtype=np.int64))
        Path(wav).with_suffix(".log").write_text(daemon_log)  # the daemon's log beside it
    start = rolling[0]
    if sync in ("internal", "osc"):  # no host clock reaches the daemon: a line fitted to its own beats
        grid = self_grid(audio, grid, bpm)
    beats, onsets = beat_onsets(audio, SR, grid)
    beats, onsets = _outside(beats, onsets, _preset_windows(disturb, preset, t_play, stamps))
    figs = phase_figures(beats, onsets, grid, SR, bpm, skip_beats=settle_s * bpm / 60.0)
    if track_bpm:
        figs = replace(figs, tracked_bpm=tracked_bpm(audio[:, start + int(settle_s * SR):], SR, bpm))
    tick_err = []
    if ticks:
        tk = np.asarray(ticks)
        tk = tk[np.isfinite(grid[np.clip(tk, 0, n - 1)])]
        pos = grid[tk] * 24
        tick_err = ((pos + 0.5) % 1.0 - 0.5) / 24 * 60000.0 / bpm
    vs_clock: dict = {}
    if sync == "midi" and len(ticks) > 1:  # against the grid the clock states (a jittered one strays from the host)
        cgrid = clock_grid(np.asarray(ticks), grid)
        cf = phase_figures(*beat_onsets(audio, SR, cgrid), cgrid, SR, bpm, skip_beats=settle_s * bpm / 60.0)
        ok = np.isfinite(cgrid) & np.isfinite(grid)
        stray = np.abs(cgrid[ok] - grid[ok]) * 60000.0 / bpm
        vs_clock = {"vs_clock_median_abs_ms": cf.median_abs_ms, "vs_clock_p95_abs_ms": cf.p95_abs_ms,
                    "vs_clock_signed_median_ms": cf.signed_median_ms,
                    "clock_vs_host_p95_ms": float(np.percentile(stray, 95)) if stray.size else None}
    rep = {k: [float(r[k]) for r in reports if isinstance(r.get(k), float) and math.isfinite(r[k])]
           for k in ("phase_error_ms", "sync_error_ms")}
    return {
        "sync": sync, "jitter_percent": jitter, "scatter_ms": scatter_ms, "bpm": bpm, "preset": preset,
        "seconds": seconds,
        **asdict(figs),
        "clock_ticks": len(ticks),
        "clock_tick_error_ms_median_abs": float(np.median(np.abs(tick_err))) if len(tick_err) else None,
        **vs_clock,
        "daemon_phase_error_ms": float(np.median(rep["phase_error_ms"])) if rep["phase_error_ms"] else None,
        "daemon_sync_error_ms": float(np.median(rep["sync_error_ms"])) if rep["sync_error_ms"] else None,
        "underruns": int(reports[-1].get("underruns", -1)) if reports else None,
        "relocations": int(reports[-1].get("relocations", -1)) if reports else None,
        "daemon_log_tail": daemon_log[-600:] if verbose else "",
        **({"osc_flood_sent": flooder.sent, "osc_bad_counted": int(reports[-1].get("osc_bad", -1)) if reports
            else None} if flooder is not None else {}),
        **({"beat_errors_ms": _beat_errors(beats, onsets, grid)} if per_beat else {}),
        **({"audio": audio, "grid": grid} if keep_audio else {}),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sync", choices=("midi", "jack", "internal", "osc", "link"), default="midi")
    p.add_argument("--jitter", type=float, default=0.0, help="jack_midi_clock -J percent (default 0: off)")
    p.add_argument("--scatter-ms", type=float, default=0.0, help="ticks delayed 0..this ms (midi_jitter.py)")
    p.add_argument("--seconds", type=float, default=150.0, help="measured time after settling (default 150)")
    p.add_argument("--settle", type=float, default=8.0, help="seconds after the start not measured (default 8)")
    p.add_argument("--bpm", type=float, default=126.0)
    p.add_argument("--preset", default="techno")
    p.add_argument("--keep", default=None, help="keep the recording and its host grid here (.npz)")
    p.add_argument("--tempo-changes", action="store_true",
                   help="the host's tempo steps and ramps every 30 s (link_peer.tempo_plan): the Link session's, "
                        "or (midi, jack) a DAW's tempo map on the JACK transport (tempo_map.py)")
    p.add_argument("--soak-changes", action="store_true",
                   help="a new seed every 90 s and variation every 45 s, as `musika bench --soak` sends them")
    p.add_argument("--locates", action="store_true",
                   help="the host stops, locates and plays on twice: to beat 64 a third of the way in, to beat 161 at "
                        "two thirds")
    p.add_argument("--xruns", type=int, default=0,
                   help="the JACK server stalls 40 ms this many times, evenly over the run (it skips what it missed)")
    p.add_argument("--flood", type=int, default=0, help="malformed OSC datagrams sent over the run (default 0)")
    p.add_argument("--per-beat", action="store_true", help="also print every measured beat's error")
    p.add_argument("--log", default=None,
                   help="keep the daemon's log (-v) here, and every clock tick beside it (.ticks.npz)")
    p.add_argument("--verbose", action="store_true")
    a = p.parse_args(argv)
    if a.log and not Path(a.log).resolve().parent.is_dir():  # (found out before the run, not after it)
        p.error(f"--log {a.log}: its folder {Path(a.log).resolve().parent} does not exist; make it first")
    for tool in ("jackd", "jack_transport", *(["jack_midi_clock"] if a.sync == "midi" else [])):
        if shutil.which(tool) is None:
            print(f"live_phase: {tool} is not installed (apt install jackd2 jack-midi-clock)", file=sys.stderr)
            return 3
    if a.sync == "link" and not os.environ.get("MUSIKA_LINK_NAMESPACE"):  # Link multicasts: only on a loopback
        if os.geteuid() != 0 or shutil.which("ip") is None:  # network of its own, this script again inside it
            print("live_phase: --sync link runs in a loopback-only network namespace of its own, which needs root "
                  "and the `ip` command (apt install iproute2); Link is never enabled outside one", file=sys.stderr)
            return 3
        sys.path.insert(0, str(ROOT))
        from scripts.netns import loopback_namespace

        with loopback_namespace() as ns:
            env = {**os.environ, "MUSIKA_LINK_NAMESPACE": ns}
            return subprocess.run(["ip", "netns", "exec", ns, sys.executable, __file__, *(argv or sys.argv[1:])],
                                  env=env).returncode
    plan: tuple = ()
    changes = tempo_plan(a.bpm, a.seconds + a.settle) if a.tempo_changes else None
    if changes and a.sync == "link":
        plan, changes = tuple(changes), None
    if a.soak_changes:
        sys.path.insert(0, str(ROOT))
        from bench.cli import soak_plan

        plan += tuple(d for d in soak_plan(a.seconds / 60.0) if d[1] in ("seed", "variation"))
    if a.xruns:
        plan += tuple((a.settle + (k + 0.5) * a.seconds / a.xruns, "xrun", 0.04) for k in range(a.xruns))
    if a.locates:
        plan += ((a.settle + a.seconds / 3, "locate", 64.0), (a.settle + 2 * a.seconds / 3, "locate", 161.0))
    out = measure(a.sync, a.jitter, a.seconds, a.bpm, a.preset, a.settle, a.keep, verbose=a.verbose, disturb=plan,
                  flood=a.flood, per_beat=a.per_beat, scatter_ms=a.scatter_ms, tempo_plan=changes, log_to=a.log)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    threading.current_thread().name = "live-phase"
    sys.exit(main())
