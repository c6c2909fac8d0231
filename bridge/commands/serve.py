"""`musika serve`: the daemon. Wires musika.toml (+ flags) into the live stream, an audio sink, MIDI, OSC and Link.

Lifecycle as in uvicorn: :class:`Server` has ``start``/``run``/``stop`` coroutines; SIGINT/SIGTERM ask for a
graceful stop (fade out, close ports, flush the control log) and a second one forces it; the previous signal
handlers are restored afterwards. One asyncio loop owns control; the render worker fills the ring ahead of the
play head; the audio callback only copies from the ring. Once everything is open, one line on stdout says what
is served, e.g. ``musika: serving preset techno; OSC on 127.0.0.1:9000; output jack (musika:out_L/musika:out_R);
MIDI in 'Musika' (jack); sync auto`` (tests wait for it).
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
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from bridge.config import OUTPUTS, QUANTISE, SYNC_SOURCES, Config, load_config, with_overrides
from bridge.controls import control_specs
from bridge.daemon import DaemonCore, RenderJobs
from bridge.errors import ConfigError, DeviceUnavailable, MidiPortError
from bridge.events import TransportEvent
from generator.control_log import ControlLogWriter, SessionHeader
from generator.engine import Engine
from generator.errors import AudioOutputError
from generator.live import LiveStream
from generator.output_stage import OutputSettings
from generator.preset import list_preset_dirs, load_preset, preset_search_path
from generator.telemetry import format_status

logger = logging.getLogger(__name__)

# argparse dest -> musika.toml key (flags mirror the config keys)
FLAG_KEYS = {
    "preset": "preset", "threads": "threads", "seed": "seed", "output": "output.kind", "device": "output.device",
    "sync": "sync.source", "bpm": "sync.bpm", "meter": "sync.meter", "quantise": "sync.quantise",
    "sync_offset_ms": "sync.offset_ms", "osc_host": "osc.host", "osc_port": "osc.port", "allow": "osc.allow",
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


def preset_names(cfg: Config, current: str) -> list[str]:
    """Installed presets (the search path plus presets_dirs) and the one playing."""
    names = {d.name for root in preset_search_path(cfg.presets_dirs) for d in list_preset_dirs(root)}
    return sorted(names | {current})


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
        self.engine = first = Engine.load(cfg.preset, threads=cfg.threads, search=tuple(cfg.presets_dirs),
                                          phase=engine_phase(cfg), output=output_settings(cfg))
        loader = make_loader(first, cfg)
        name, sr = first.preset.name, first.config.audio.sample_rate
        lookahead = warm_up(loader, name, sr)
        from bridge.audio import AudioRing

        names = preset_names(cfg, name)
        specs = control_specs(first.preset.controls, names, first.config.gan.default_truncation)
        midi_part = self._start_midi(loop, specs, names) if cfg.midi.enabled else ""
        ring = AudioRing(sr * 10)
        self.sink = _device(lambda: open_output(cfg, ring, sr))
        header = SessionHeader(name, cfg.seed, cfg.sync.bpm, cfg.sync.meter, sr, {})
        log_path = control_log_path(cfg.paths.control_log)
        if log_path is not None:
            self.log = ControlLogWriter(log_path, header)
        latency = self.sink.latency_frames / sr + cfg.sync.offset_ms / 1000.0
        self.live = LiveStream(loader, ring, header, log=self.log, quantise=cfg.sync.quantise,
                               phrase_bars=cfg.sync.phrase_bars, output_latency_s=latency, min_lookahead_s=lookahead,
                               sync_source=cfg.sync.source)
        core = self.core = DaemonCore(self.live, mode=cfg.sync.source, timeout_s=cfg.sync.timeout_s,
                                      bpm=cfg.sync.bpm, meter=cfg.sync.meter, specs=specs,
                                      presets=lambda: preset_names(cfg, name))
        core.specs_for = self._specs_for
        self.live.start()
        parts = [f"serving preset {name}"]
        if cfg.osc.enabled:
            parts.append(await self._start_osc())
        parts.append(f"output {describe_sink(self.sink)}")
        if self.midi is not None:
            core.learn, core.set_current = self.midi.start_learn, self.midi.set_current
        if midi_part:
            parts.append(midi_part)
        if cfg.sync.source == "link":
            from bridge.link import LinkSync, LinkUnavailableError

            self.link = LinkSync(quantum=self.live.perf.bar, on_event=core.handle, bpm=cfg.sync.bpm, enabled=True)
            await _adevice(self.link.start(), LinkUnavailableError)
        if cfg.osc.ableton:
            from bridge.abletonosc import AbletonOscClient

            self.ableton = AbletonOscClient(host=cfg.osc.ableton_host, on_event=core.handle)
            await _adevice(self.ableton.start())
        parts.append(f"sync {cfg.sync.source}")
        if cfg.sync.source == "internal":
            core.handle(TransportEvent("play", "internal", time.monotonic(), 0.0))
        self.ready_line = "musika: " + "; ".join(parts)
        print(self.ready_line, flush=True)

    async def _start_osc(self) -> str:
        from bridge.osc import OscServer
        from bridge.reaper import ReaperState

        cfg, core = self.cfg, self.core
        num, den = cfg.sync.meter
        self.osc = OscServer(cfg.osc.host, cfg.osc.port, cfg.osc.allow, on_event=core.handle,
                             status_provider=self.status, presets_provider=core.presets,
                             params_provider=core.params,
                             path_roots={"sessions": cfg.paths.sessions, "renders": cfg.paths.renders},
                             reaper=ReaperState(self.live.sr, num, den))
        await _adevice(self.osc.start())
        core.broadcast = self.osc.broadcast
        self.renders = RenderJobs(self.osc, cfg.presets_dirs)
        core.render = self.renders.submit
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
            _device(self.midi.start)  # before the audio client is active: JACK activation must not wait on it
        except DeviceUnavailable as exc:
            if cfg.sync.source == "midi":
                raise  # the user asked for MIDI clock: without it there is nothing to follow
            self.midi = None
            logger.warning("%s; continuing without MIDI input (OSC, Link and the internal clock still work; "
                           "--no-midi silences this)", exc)
            return "MIDI off (no MIDI backend available)"
        return f"MIDI in {self.midi.opened_port!r} ({self.midi.opened_backend})"

    def _core_call(self, method: str, arg: Any) -> None:
        if self.core is not None:  # MIDI that arrives while the rest is still opening is dropped
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
            if self.midi is not None and self.midi.tracker.last_clock is not None:
                self.core.seen("midi", self.midi.tracker.last_clock)
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
        if live is not None and fade and self.core is not None and self.core.playing:
            self.core.playing = False
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
        if self.renders is not None and not self.force_exit:
            await self.renders.stop()
        if live is not None:
            live.close()
        if self.sink is not None:
            self.sink.stop()
        if self.log is not None:
            self.log.close()
        self.osc = self.link = self.ableton = self.midi = self.live = self.sink = self.log = None
        logger.info("musika serve stopped")


def engine_phase(cfg: Config) -> str | None:
    """musika.toml `phase` -> Engine's phase argument ("preset": None, the preset's own)."""
    return None if cfg.phase == "preset" else cfg.phase


def output_settings(cfg: Config) -> OutputSettings:
    """musika.toml [output] loudness_lufs / ceiling_dbtp / gain_db -> the engine's output stage."""
    o = cfg.output
    return OutputSettings(target_lufs=o.loudness_lufs, ceiling_dbtp=o.ceiling_dbtp, gain_db=o.gain_db)


def make_loader(first: Engine, cfg: Config) -> Any:
    """Preset name -> Engine, loading each once (the first one is already loaded; it may come from a path)."""
    cache = {first.preset.name: first}

    def load(name: str) -> Engine:
        if name not in cache:
            cache[name] = Engine.load(name, threads=cfg.threads, search=tuple(cfg.presets_dirs),
                                      phase=engine_phase(cfg), output=output_settings(cfg))
        return cache[name]

    return load


def warm_up(loader: Any, preset: str, sample_rate: int, pieces: int = 3) -> float:
    """Render a few pieces into a scratch ring so ONNX Runtime has allocated everything before the first play;
    returns the look-ahead (s) that covers the slowest piece twice over (0.3 s at least, 2 s at most)."""
    from bridge.audio import AudioRing

    ring = AudioRing(sample_rate * 10)
    scratch = LiveStream(loader, ring, SessionHeader(preset, 0, 128.0, (4, 4), sample_rate, {}))
    scratch.play(0.0)
    sink = np.zeros((2, sample_rate // 4), np.float32)
    worst, rendered = 0.0, 0
    for _ in range(50):
        if rendered >= pieces:
            break
        ring.read_into(sink, channels_first=True, fill_silence=False)  # no underruns counted: a scratch ring
        t = time.perf_counter()
        if scratch.step():
            worst, rendered = max(worst, time.perf_counter() - t), rendered + 1
    return min(2.0, max(0.3, 2.0 * worst + 0.1))


def open_output(cfg: Config, ring: Any, sample_rate: int) -> Any:
    """Build and start the sink chosen in [output]."""
    from bridge.audio import open_sink

    o, kind = cfg.output, cfg.output.kind
    opts: dict[str, Any] = {"ring": ring, "sample_rate": sample_rate}
    if kind in ("jack", "auto"):
        opts.update(client_name=o.jack_client, connect=list(o.jack_connect) or None)
    if kind in ("portaudio", "auto"):
        opts.update(device=o.device or None, block_size=o.block_size)
    if kind == "reastream":
        opts.update(host=o.reastream_host, port=o.reastream_port, identifier=o.reastream_id, block_size=o.block_size)
    if kind in ("wav", "auto"):
        Path(o.wav_path).parent.mkdir(parents=True, exist_ok=True)
        opts.update(path=o.wav_path, block_size=o.block_size)
    sink = open_sink(kind, **opts)
    sink.start()
    return sink


def describe_sink(sink: Any) -> str:
    if sink.name == "jack":
        return f"jack ({'/'.join(sink.port_names)})"
    return f"{sink.name} ({sink.device})"


def control_log_path(template: str) -> Path | None:
    """paths.control_log with {time} filled in, its folder created; None when empty (logging off)."""
    if not template:
        return None
    path = Path(template.replace("{time}", time.strftime("%Y%m%d-%H%M%S")))
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _device(open_: Any) -> Any:
    """Call ``open_``; a device/port that cannot be opened becomes DeviceUnavailable (exit code 3)."""
    try:
        return open_()
    except (AudioOutputError, MidiPortError) as exc:
        if isinstance(exc, DeviceUnavailable):
            raise
        raise DeviceUnavailable(str(exc)) from exc


async def _adevice(coro: Any, *extra: type[BaseException]) -> None:
    from bridge.osc import OscBindError

    try:
        await coro
    except (OscBindError, *extra) as exc:
        raise DeviceUnavailable(str(exc)) from exc


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
    p.add_argument("--sync", choices=SYNC_SOURCES, default=None, help=f"sync source (sync.source; default "
                   f"{d.sync.source}: the alive one of midi, link, osc, falling back to internal)")
    p.add_argument("--bpm", type=float, default=None, help=f"internal clock tempo (sync.bpm; default {d.sync.bpm})")
    p.add_argument("--meter", type=parse_meter, default=None, help="time signature N/D (sync.meter; default 4/4)")
    p.add_argument("--quantise", choices=QUANTISE, default=None,
                   help=f"when control changes land (sync.quantise; default {d.sync.quantise})")
    p.add_argument("--sync-offset-ms", type=float, default=None,
                   help="play this much earlier to cover the audio route's latency (sync.offset_ms; default 0)")
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
    p.set_defaults(func=run)
