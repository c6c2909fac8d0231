"""`musika serve`: the daemon. Wires musika.toml (+ flags) into the live stream, an audio sink, MIDI, OSC and Link.

Lifecycle as in uvicorn: :class:`Server` has ``start``/``run``/``stop`` coroutines; SIGINT/SIGTERM ask for a
graceful stop (fade out, close ports, flush the control log) and a second one forces it; the previous signal
handlers are restored afterwards. One asyncio loop owns control; the render worker fills the ring ahead of the
play head; the audio callback only copies from the ring. Once everything is open, one line on stdout says what
is served, e.g. ``musika: serving preset techno; OSC on 127.0.0.1:9000; output jack (musika:out_L/musika:out_R);
MIDI in 'Musika' (jack); sync auto`` (tests wait for it). Then the music starts on the internal clock unless a
forced sync source waits for its host (:meth:`bridge.daemon.DaemonCore.start`). Without ``-v`` the terminal shows
only that line, notices and warnings (bridge.logs).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import math
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

from bridge.commands.serve_setup import (
    adevice,
    control_log_path,
    describe_sink,
    device,
    engine_options,
    open_output,
    preset_names,
    warm_up,
)
from bridge.config import OUTPUTS, Config, load_config, with_overrides
from bridge.controls import control_specs
from bridge.daemon import DaemonCore
from bridge.errors import ConfigError, DeviceUnavailable
from bridge.logs import NOTICE
from bridge.ports import DaemonPorts
from bridge.render_jobs import RenderJobs
from bridge.sync import SYNC_MODES
from generator.runtime.engine import Engine
from generator.runtime.engine_loader import EngineLoader
from generator.runtime.preset import load_preset
from generator.timeline.control_log import ControlLogWriter, SessionHeader
from generator.timeline.live import LiveStream
from generator.timeline.planner import QUANTISE_MODES
from generator.timeline.stretch import SNAP_MAX_MS
from generator.timeline.telemetry import format_status

logger = logging.getLogger(__name__)

# argparse dest -> musika.toml key (flags mirror the config keys)
FLAG_KEYS = {
    "preset": "preset", "threads": "threads", "seed": "seed", "output": "output.kind", "device": "output.device",
    "sync": "sync.source", "bpm": "sync.bpm", "meter": "sync.meter", "quantise": "sync.quantise",
    "sync_offset_ms": "sync.offset_ms", "snap_ms": "sync.snap_ms", "osc_host": "osc.host", "osc_port": "osc.port",
    "allow": "osc.allow",
    "control_log": "paths.control_log",
}


def build_config(args: argparse.Namespace) -> Config:
    """musika.toml (or the defaults) with the given flags applied on top."""
    cfg = load_config(args.config)
    overrides: dict[str, Any] = {key: getattr(args, dest, None) for dest, key in FLAG_KEYS.items()}
    if args.allow:
        overrides["osc.allow"] = tuple(args.allow)
    if args.midi_in is not None:
        overrides.update({"midi.port": args.midi_in, "midi.virtual": False})
    if args.no_midi:
        overrides["midi.enabled"] = False
    return with_overrides(cfg, overrides)


def parse_meter(text: str) -> tuple[int, int]:
    try:
        num, den = (int(x) for x in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"meter {text!r} is not N/D, e.g. 4/4 or 7/8") from None
    return num, den


class Server:
    """The daemon's resources and lifecycle; see the module docstring. ``duration``: stop after N seconds."""

    def __init__(self, cfg: Config, duration: float | None = None, status_line: bool | None = None):
        self.cfg, self.duration = cfg, duration
        self.status_line = cfg.status_line and sys.stderr.isatty() if status_line is None else status_line
        self.should_exit = False
        self.force_exit = False
        self.engine: Engine | None = None
        self.sink: Any = None
        self.live: LiveStream | None = None
        self.log: ControlLogWriter | None = None
        self.core: DaemonCore | None = None
        self.midi: Any = None
        self.osc: Any = None
        self.link: Any = None
        self.jack_transport: Any = None
        self.ableton: Any = None
        self.renders: RenderJobs | None = None
        self.ready_line = ""

    # ------------------------------------------------------------------------------------------ start
    async def start(self) -> None:
        """Open everything; raises DeviceUnavailable (exit 3) when a device or port cannot be opened."""
        try:
            await self._start()
        except BaseException:
            await self.stop(fade=False)
            raise

    async def _start(self) -> None:
        cfg, loop = self.cfg, asyncio.get_running_loop()
        loader = EngineLoader(engine_options(cfg))
        self.engine = first = loader(cfg.preset)
        name, sr = first.preset.name, first.config.audio.sample_rate
        lookahead = warm_up(loader, name, sr)
        from bridge.audio import AudioRing

        names = preset_names(cfg, name)
        specs = control_specs(first.preset.controls, names, first.config.gan.default_truncation)
        midi_part = self._start_midi(loop, specs, names) if cfg.midi.enabled else ""
        if cfg.sync.source == "jack":  # before the sink: without a JACK server nothing is opened or written
            from bridge.jack_transport import JackTransportError, JackTransportSync

            self.jack_transport = JackTransportSync(
                lambda event: loop.call_soon_threadsafe(self._core_call, "handle", event),
                client_name=f"{cfg.output.jack_client}-transport", bpm=cfg.sync.bpm)
            device(self.jack_transport.start, JackTransportError)
        ring = AudioRing(sr * 10)
        self.sink = device(lambda: open_output(cfg, ring, sr))
        header = SessionHeader(name, cfg.seed, cfg.sync.bpm, cfg.sync.meter, sr, {}, snap_ms=cfg.sync.snap_ms)
        log_path = control_log_path(cfg.paths.control_log)
        if log_path is not None:
            self.log = ControlLogWriter(log_path, header)
        latency = self.sink.latency_frames / sr + cfg.sync.offset_ms / 1000.0
        self.live = LiveStream(loader, ring, header, log=self.log, quantise=cfg.sync.quantise,
                               phrase_bars=cfg.sync.phrase_bars, output_latency_s=latency, min_lookahead_s=lookahead,
                               sync_source=cfg.sync.source)
        parts = [f"serving preset {name}"]
        if cfg.osc.enabled:  # before the core, which echoes to it; what arrives before the core is dropped
            parts.append(await self._start_osc(lambda: preset_names(cfg, name)))
        ports = DaemonPorts(specs_for=self._specs_for)
        if self.osc is not None:
            ports = replace(ports, broadcast=self.osc.broadcast, render=self.renders.submit)
        if self.midi is not None:
            ports = replace(ports, learn=self.midi.start_learn, set_current=self.midi.set_current)
        core = self.core = DaemonCore(self.live, ports=ports, mode=cfg.sync.source, timeout_s=cfg.sync.timeout_s,
                                      bpm=cfg.sync.bpm, meter=cfg.sync.meter, specs=specs,
                                      presets=lambda: preset_names(cfg, name))
        self.live.start()
        parts.append(f"output {describe_sink(self.sink)}")
        if midi_part:
            parts.append(midi_part)
        if cfg.sync.source == "link":
            from bridge.link import LinkSync, LinkUnavailableError

            self.link = LinkSync(quantum=self.live.perf.bar, on_event=core.handle, bpm=cfg.sync.bpm, enabled=True)
            await adevice(self.link.start(), LinkUnavailableError)
        if cfg.osc.ableton:
            from bridge.abletonosc import AbletonOscClient

            self.ableton = AbletonOscClient(host=cfg.osc.ableton_host, on_event=core.handle)
            await adevice(self.ableton.start())
        parts.append(f"sync {cfg.sync.source}")
        self.ready_line = "musika: " + "; ".join(parts)
        print(self.ready_line, flush=True)
        self._poll_inputs()
        core.start(self._host_inputs())

    def _host_inputs(self) -> str:
        """What could bring a host in auto mode, for the start line."""
        found = [f"MIDI clock to {self.midi.opened_port!r}"] if self.midi is not None else []
        if self.osc is not None:
            found.append("OSC transport (Reaper)")
        if self.ableton is not None:
            found.append("AbletonOSC")
        return " or ".join(found)

    def _poll_inputs(self) -> None:
        """Tell the sync arbiter when MIDI clock was last heard (ticks are counted in the MIDI thread)."""
        if self.midi is not None and self.midi.tracker.last_clock is not None:
            self.core.seen("midi", self.midi.tracker.last_clock)

    async def _start_osc(self, presets: Callable[[], list[str]]) -> str:
        from bridge.osc import OscServer
        from bridge.reaper import ReaperState

        cfg = self.cfg
        num, den = cfg.sync.meter
        self.osc = OscServer(cfg.osc.host, cfg.osc.port, cfg.osc.allow,
                             on_event=lambda event: self._core_call("handle", event),
                             status_provider=self.status, presets_provider=presets,
                             params_provider=lambda: self.core.params() if self.core is not None else [],
                             path_roots={"sessions": cfg.paths.sessions, "renders": cfg.paths.renders},
                             reaper=ReaperState(self.live.sr, num, den))
        await adevice(self.osc.start())
        self.renders = RenderJobs(self.osc, options=engine_options(cfg))
        return f"OSC on {cfg.osc.host}:{self.osc.port}"

    def _start_midi(self, loop: asyncio.AbstractEventLoop, specs: dict, names: list[str]) -> str:
        from bridge.ccmap import CCMapper
        from bridge.midi import MidiInput

        cfg = self.cfg
        mapper = CCMapper(cfg.midi.cc, specs, names,
                          on_learned=lambda result: loop.call_soon_threadsafe(self._core_call, "on_learned", result))
        self.midi = MidiInput(cfg.midi.port, cfg.midi.virtual, cfg.midi.backend, mapper=mapper,
                              client_name=f"{cfg.output.jack_client}-midi",
                              on_event=lambda event: loop.call_soon_threadsafe(self._core_call, "handle", event))
        try:
            device(self.midi.start)  # before the audio client is active: JACK activation must not wait on it
        except DeviceUnavailable as exc:
            if cfg.sync.source == "midi":
                raise  # the user asked for MIDI clock: without it there is nothing to follow
            self.midi = None
            logger.warning("%s; continuing without MIDI input (OSC, Link and the internal clock still work; "
                           "--no-midi silences this)", exc)
            return "MIDI off (no MIDI backend available)"
        return f"MIDI in {self.midi.opened_port!r} ({self.midi.opened_backend})"

    def _core_call(self, method: str, arg: Any) -> None:
        if self.core is not None:  # input that arrives while the rest is still opening is dropped
            getattr(self.core, method)(arg)

    def _specs_for(self, name: str) -> dict:
        preset = load_preset(name, search=self.cfg.presets_dirs, verify=False)
        specs = control_specs(preset.controls, self.core.presets(), preset.config.gan.default_truncation)
        if self.midi is not None:
            with self.midi.lock:
                self.midi.mapper.set_specs(specs, self.core.presets())
        return specs

    def status(self) -> dict[str, Any]:
        """/musika/status: the core's telemetry plus the sink's counters."""
        extra: dict[str, Any] = {}
        if self.sink is not None:
            st = self.sink.stats()
            extra = {"output": st["sink"], "xruns": st["xruns"], "underrun_frames": st["underrun_frames"]}
        if self.osc is not None:
            extra["osc_bad"] = self.osc.stats["bad"]
        return self.core.status(extra) if self.core is not None else extra

    # ------------------------------------------------------------------------------------------ run
    async def run(self) -> None:
        """start, serve until asked to stop (signal, --duration), stop."""
        await self.start()
        try:
            await self.main_loop()
        finally:
            await self.stop(fade=not self.force_exit)

    async def main_loop(self) -> None:
        t0 = last_log = last_line = time.monotonic()
        while not self.should_exit:
            await asyncio.sleep(0.1)
            now = time.monotonic()
            self._poll_inputs()
            self.core.tick(now)
            if self.duration is not None and now - t0 >= self.duration:
                logger.info("--duration %.1f s reached; stopping", self.duration)
                break
            if self.status_line and now - last_line >= 0.25:
                last_line = now
                sys.stderr.write("\r" + format_status(self.live.telemetry()) + "\x1b[K")
                sys.stderr.flush()
            if now - last_log >= 10.0:
                last_log = now
                logger.info("status: %s", format_status(self.live.telemetry()))

    async def stop(self, fade: bool = True) -> None:
        """Fade out (unless forced), close the inputs, the worker, the sink and the control log."""
        if self.status_line:
            sys.stderr.write("\n")
        live = self.live
        if live is not None and fade and self.core is not None and (self.core.playing or live.perf.current):
            self.core.playing = False  # (a run may still play towards the bar line where it stops)
            live.stop()
            deadline = time.monotonic() + 2.0
            while (live.perf.current is not None or live.ring.depth_frames > 0) and time.monotonic() < deadline:
                if self.force_exit:
                    break
                await asyncio.sleep(0.02)
        for closer in (self.osc, self.link, self.ableton):
            if closer is not None:
                await closer.stop()
        if self.midi is not None:
            self.midi.close()
        if self.jack_transport is not None:
            self.jack_transport.close()
        if self.renders is not None and not self.force_exit:
            await self.renders.stop()
        if live is not None:
            live.close()
        if self.sink is not None:
            self.sink.stop()
        if self.log is not None:
            self.log.close()
        self.osc = self.link = self.ableton = self.midi = self.live = self.sink = self.log = None
        self.jack_transport = None
        logger.info("musika serve stopped")


@contextlib.contextmanager
def capture_signals(server: Server) -> Iterator[None]:
    """SIGINT/SIGTERM: first asks for a graceful stop, second forces it; previous handlers restored after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handle(sig: int, frame: object) -> None:
        if server.should_exit:
            server.force_exit = True
            logger.warning("second %s: stopping now", signal.Signals(sig).name)
        else:
            logger.info("%s: stopping (fade out, close ports); press Ctrl-C again to force",
                        signal.Signals(sig).name)
        server.should_exit = True

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def serve(cfg: Config, duration: float | None = None, status_line: bool | None = None) -> int:
    """Run the daemon until SIGINT/SIGTERM or ``duration`` seconds; returns the exit code (0)."""
    if duration is not None and not (math.isfinite(duration) and duration > 0):
        raise ConfigError(f"--duration {duration!r} must be a positive number of seconds")
    server = Server(cfg, duration, status_line)
    with capture_signals(server):
        asyncio.run(server.run())
    return 0


def run(args: argparse.Namespace) -> int:
    return serve(build_config(args), duration=args.duration)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "serve",
        help="run the daemon: follow the DAW's tempo and play generated audio into it",
        description=(
            "Run Musika Bridge: generate with a preset, locked to the sync source's tempo and bars, into an audio "
            "output; controlled over OSC and MIDI. Settings come from --config (musika.toml; see "
            "docs/examples/musika.toml) and the flags below override the keys they name. Ctrl-C or SIGTERM "
            "stops cleanly (a second Ctrl-C forces). Flags left unset keep the config value (default shown)."
        ),
    )
    d = Config()
    p.add_argument("--config", default=None, metavar="TOML", help="musika.toml to read (default: built-in defaults)")
    p.add_argument("--preset", default=None, help=f"preset name or folder (preset; default {d.preset})")
    p.add_argument("--output", choices=OUTPUTS, default=None,
                   help=f"audio output (output.kind; default {d.output.kind}: JACK if running, else the default "
                        "sound device, else a WAV file)")
    p.add_argument("--device", default=None, help="PortAudio device name (output.device; default: the default)")
    p.add_argument("--sync", choices=SYNC_MODES, default=None, help=f"sync source (sync.source; default "
                   f"{d.sync.source}: the alive one of midi, link, osc, falling back to internal; jack: the JACK "
                   "transport of a DAW such as Ardour, read every period)")
    p.add_argument("--bpm", type=float, default=None, help=f"internal clock tempo (sync.bpm; default {d.sync.bpm})")
    p.add_argument("--meter", type=parse_meter, default=None, help="time signature N/D (sync.meter; default 4/4)")
    p.add_argument("--quantise", choices=QUANTISE_MODES, default=None,
                   help=f"when control changes land (sync.quantise; default {d.sync.quantise})")
    p.add_argument("--sync-offset-ms", type=float, default=None,
                   help="play this much earlier to cover the audio route's latency (sync.offset_ms; default 0)")
    p.add_argument("--snap-ms", type=float, default=None,
                   help=f"move each generated beat and off-beat onto the host grid from at most this far, 0: off "
                        f"(sync.snap_ms; default {d.sync.snap_ms:g}, at most {SNAP_MAX_MS:g})")
    p.add_argument("--osc-host", default=None, help=f"OSC address to bind (osc.host; default {d.osc.host})")
    p.add_argument("--osc-port", type=int, default=None,
                   help=f"OSC UDP port, 0 picks a free one (osc.port; default {d.osc.port})")
    p.add_argument("--allow", action="append", default=None, metavar="CIDR",
                   help="client network allowed when --osc-host is not loopback (osc.allow; repeatable)")
    p.add_argument("--midi-in", default=None, metavar="NAME",
                   help=f"open this existing MIDI input port instead of creating the virtual port "
                        f"{d.midi.port!r} (midi.port, midi.virtual = false)")
    p.add_argument("--no-midi", action="store_true", help="no MIDI input (midi.enabled = false)")
    p.add_argument("--threads", type=int, default=None, help=f"ONNX Runtime threads (threads; default {d.threads})")
    p.add_argument("--seed", type=int, default=None, help=f"random seed (seed; default {d.seed})")
    p.add_argument("--control-log", default=None, metavar="PATH",
                   help=f"JSONL log of every change, {{time}} is replaced; '' turns it off (paths.control_log; "
                        f"default {d.paths.control_log})")
    p.add_argument("--duration", type=float, default=None, metavar="SECONDS",
                   help="stop after this many seconds (tests, soak runs); default: run until Ctrl-C")
    p.set_defaults(func=run, log_level=NOTICE)
