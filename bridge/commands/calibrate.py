"""`musika calibrate`: play a click through the audio route, record it back, store the offset in musika.toml.

JACK: a client plays the click train into the route's playback ports (output.jack_connect, or the system playback
ports) and records the capture port given with --capture (a loopback, or the DAW's output with the track
monitoring Musika's input). JACK already reports the route's latency (port latency ranges), which the daemon
compensates by itself, so what is stored is what JACK does not know: the measured delay minus the reported
playback and capture latency. PortAudio: the device plays and records (--input), and PortAudio's own stream
latencies are subtracted the same way. The offset is written as ``sync.offset_ms`` (atomically; other settings and
comments kept); one outside +-500 ms is refused with the range.
"""

from __future__ import annotations

import argparse
import logging
import threading
import time
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

from bridge.calibration import Measurement, check_offset, click_train, find_delay, store_offset
from bridge.config import load_config
from bridge.errors import ConfigError, DeviceUnavailable
from generator.runtime.model_config import SAMPLE_RATE

logger = logging.getLogger(__name__)

NO_LOOPBACK = (
    "no click came back, so there is no loopback path to measure. Make one: in JACK connect the route's output to "
    "an input (a cable from the interface's output to its input, or the DAW's track monitoring Musika's input "
    "with its output routed back), then run `musika calibrate --capture <that input port>` (e.g. system:capture_1; "
    "`jack_lsp -p` lists them). With PortAudio give the recording device with --input."
)


def measure_jack(playback: list[str], capture: str, servername: str | None = None, sr_check: int = SAMPLE_RATE,
                 clicks: int = 8) -> tuple[Measurement | None, float]:
    """Play clicks into `playback` ports, record `capture`; returns (measurement, JACK-reported latency ms)."""
    from bridge.audio.jack_sink import import_jack, port_latency_range

    jack = import_jack()
    try:
        client = jack.Client("musika-calibrate", servername=servername, no_start_server=True)
    except jack.JackError as exc:
        raise DeviceUnavailable(f"cannot connect to the JACK server ({exc}); start it first") from exc
    sr = client.samplerate
    train, starts = click_train(sr, clicks)
    rec = np.zeros(train.size + sr, np.float32)
    pos = [0, 0]  # frames played, frames recorded
    done = threading.Event()
    out = client.outports.register("click")
    inp = client.inports.register("return")

    def process(frames: int) -> None:
        p, r = pos
        buf = out.get_array()
        k = max(0, min(frames, train.size - p))
        buf[:k] = train[p : p + k]
        buf[k:] = 0.0
        m = min(frames, rec.size - r)
        rec[r : r + m] = inp.get_array()[:m]
        pos[0], pos[1] = p + frames, r + m
        if r + m >= rec.size:
            done.set()

    client.set_process_callback(process)
    try:
        client.activate()
        targets = playback or [p.name for p in client.get_ports(is_audio=True, is_input=True, is_physical=True)]
        if not targets:
            raise DeviceUnavailable("JACK has no playback port to calibrate; set output.jack_connect")
        try:
            for t in targets:
                client.connect(out, t)
            client.connect(capture, inp)
        except Exception as exc:  # jack.JackError or ValueError for an unknown name
            names = [p.name for p in client.get_ports(is_audio=True, is_output=True)]
            raise DeviceUnavailable(f"cannot connect {capture!r} for the calibration ({exc}); audio outputs now "
                                    f"are {names}") from exc
        time.sleep(0.1)  # the connections' latencies are recomputed by the server
        pos[0] = pos[1] = 0
        if not done.wait(rec.size / sr + 10.0):
            raise DeviceUnavailable("the JACK server stopped running the calibration client")
        play = port_latency_range(client, out, playback=True)
        cap = port_latency_range(client, inp, playback=False)
    finally:
        client.deactivate()
        client.close()
    reported = ((play[1] if play else 0) + (cap[1] if cap else 0)) / sr * 1000.0
    return find_delay(rec, sr, starts), reported


def measure_portaudio(device: Any, input_device: Any, sr: int = SAMPLE_RATE,
                      clicks: int = 8) -> tuple[Measurement | None, float]:
    """Play clicks on `device`, record `input_device` with sounddevice; (measurement, PortAudio-reported ms)."""
    from bridge.audio.portaudio_sink import import_sounddevice

    sd = import_sounddevice()
    train, starts = click_train(sr, clicks)
    try:
        with sd.Stream(samplerate=sr, device=(input_device, device), channels=(1, 1), dtype="float32",
                       latency="low") as stream:
            reported = (stream.latency[0] + stream.latency[1]) * 1000.0
        rec = sd.playrec(np.concatenate([train, np.zeros(sr, np.float32)])[:, None], samplerate=sr, channels=1,
                         device=(input_device, device), latency="low", blocking=True)
    except (sd.PortAudioError, ValueError) as exc:
        raise DeviceUnavailable(f"cannot play and record with PortAudio ({exc}); give --device and --input") from exc
    return find_delay(rec[:, 0], sr, starts), reported


def calibrate(config: str = "musika.toml", output: str | None = None, capture: str | None = None,
              device: str | None = None, input_device: str | None = None, dry_run: bool = False) -> float:
    """Measure the route's latency beyond what it reports and store it as sync.offset_ms; returns the offset."""
    path = Path(config)
    cfg = load_config(path if path.exists() else None)
    kind = output or cfg.output.kind
    if kind in ("auto", "jack"):
        if capture is None:
            raise ConfigError(NO_LOOPBACK)
        meas, reported = measure_jack(list(cfg.output.jack_connect), capture)
        route = f"jack {','.join(cfg.output.jack_connect) or 'system playback'} -> {capture}"
    elif kind == "portaudio":
        if input_device is None:
            raise ConfigError(NO_LOOPBACK)
        out_dev = device or cfg.output.device or None
        meas, reported = measure_portaudio(out_dev, input_device)
        route = f"portaudio {out_dev or 'default'} -> {input_device}"
    else:
        raise ConfigError(f"musika calibrate measures the jack or portaudio output, not {kind!r}; pass --output")
    if meas is None:
        raise ConfigError(NO_LOOPBACK)
    offset = check_offset(meas.delay_ms - reported)
    print(f"musika calibrate: {route}: clicks back after {meas.delay_ms:.1f} ms (spread {meas.spread_ms:.1f} ms, "
          f"{meas.clicks} clicks), of which the route reports {reported:.1f} ms: sync.offset_ms = {offset:.1f}")
    if not dry_run:
        store_offset(path, offset, note=f"musika calibrate {date.today().isoformat()}: {route}")
        print(f"musika calibrate: wrote sync.offset_ms = {offset:.1f} to {path}")
    return offset


def run(args: argparse.Namespace) -> int:
    calibrate(args.config, args.output, args.capture, args.device, args.input, args.dry_run)
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "calibrate",
        help="measure the audio route's latency with a click and store sync.offset_ms",
        description="Play a click through the chosen audio route, record it back through a loopback (JACK: "
                    "--capture PORT; PortAudio: --input DEVICE), and store the delay the route does not report "
                    "as sync.offset_ms in musika.toml (other settings and comments kept).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--config", default="musika.toml", help="musika.toml to read and update")
    p.add_argument("--output", choices=("jack", "portaudio"), default=None,
                   help="route to measure (default: output.kind of the config)")
    p.add_argument("--capture", default=None, help="JACK port the click comes back on, e.g. system:capture_1")
    p.add_argument("--device", default=None, help="PortAudio output device (default: output.device)")
    p.add_argument("--input", default=None, help="PortAudio input device the click comes back on")
    p.add_argument("--dry-run", action="store_true", help="measure and print, do not write musika.toml")
    p.set_defaults(func=run)
