"""Audio sinks: where the live engine's stereo output goes.

``open_sink(kind, **options)`` builds one sink; each backend module is imported only when chosen, and nothing
touches a device, server or port at import time. Every sink reads an :class:`AudioRing` that the renderer fills.

=============  ====================================================================================
kind           target
=============  ====================================================================================
``jack``       JACK / PipeWire-JACK client ``musika`` with ports ``out_L``/``out_R`` (reconnects)
``portaudio``  a sound card or loopback device by name or index (BlackHole, VB-Cable, ...)
``reastream``  ReaStream UDP packets to Reaper's ReaStream plug-in (default 127.0.0.1:58710)
``wav``        a sound file, in real time or offline
``auto``       JACK if a server runs, else the default PortAudio device, else a WAV file (logged)
=============  ====================================================================================
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .base import AudioSink, AudioSinkError
from .ring import AudioRing, AudioRingError

__all__ = ["KINDS", "AudioRing", "AudioRingError", "AudioSink", "AudioSinkError", "describe_audio", "open_sink"]

logger = logging.getLogger(__name__)

KINDS = ("auto", "jack", "portaudio", "reastream", "wav")


def _sink_class(kind: str) -> type[AudioSink]:
    if kind == "jack":
        from .jack_sink import JackSink

        return JackSink
    if kind == "portaudio":
        from .portaudio_sink import PortAudioSink

        return PortAudioSink
    if kind == "reastream":
        from .reastream import ReaStreamSink

        return ReaStreamSink
    if kind == "wav":
        from .wav_sink import WavSink

        return WavSink
    raise AudioSinkError(f"unknown audio output {kind!r}; valid outputs are {', '.join(KINDS)}")


def _accepted(cls: type[AudioSink]) -> set[str]:
    return set(inspect.signature(cls.__init__).parameters) - {"self"}


def _build(kind: str, options: dict[str, Any], strict: bool) -> AudioSink:
    cls = _sink_class(kind)
    accepted = _accepted(cls)
    unknown = sorted(set(options) - accepted)
    if unknown and strict:
        raise AudioSinkError(f"audio output {kind!r} does not take option(s) {unknown}; it takes {sorted(accepted)}")
    return cls(**{k: v for k, v in options.items() if k in accepted})


def open_sink(kind: str = "auto", **options: Any) -> AudioSink:
    """Build (not start) the sink ``kind`` with ``options`` (see each sink class for its keywords).

    Common options: ``ring`` (an AudioRing to read; a new one otherwise), ``sample_rate``, ``block_size``,
    ``ring_frames``. ``auto`` takes the union of the jack/portaudio/wav options and passes each backend the ones
    it accepts; its WAV fallback records to ``path`` (default ``musika-live-<time>.wav`` in the current folder).
    """
    if kind not in KINDS:
        raise AudioSinkError(f"unknown audio output {kind!r}; valid outputs are {', '.join(KINDS)}")
    if kind != "auto":
        return _build(kind, options, strict=True)
    from .jack_sink import jack_server_running

    if jack_server_running(options.get("servername")):
        logger.info("audio output auto: a JACK server is running, using JACK")
        return _build("jack", options, strict=False)
    if _portaudio_default_output() is not None:
        logger.info("audio output auto: no JACK server, using the default PortAudio output device")
        return _build("portaudio", options, strict=False)
    options = dict(options)
    options.setdefault("path", Path.cwd() / time.strftime("musika-live-%Y%m%d-%H%M%S.wav"))
    logger.warning(
        "audio output auto: no JACK server and no audio output device found, so the output is recorded to "
        "%s instead. Start JACK or pick --output portaudio/reastream to hear it live.",
        options["path"],
    )
    return _build("wav", options, strict=False)


def _portaudio_default_output() -> str | None:
    """Name of PortAudio's default output device, or None (no library, no device)."""
    try:
        from .portaudio_sink import import_sounddevice

        sd = import_sounddevice()
        return str(sd.query_devices(kind="output")["name"])
    except Exception:  # AudioSinkError (no library), sd.PortAudioError / ValueError (no default device)
        return None


def describe_audio(servername: str | None = None, timeout: float = 20.0) -> dict[str, Any]:
    """What the machine offers, for ``musika doctor``; never raises.

    ``{"jack": {"library", "running", "server", "sample_rate", "block_size", "error"},
    "portaudio": {"library", "devices": [...], "default", "error"}, "reastream": {"port"}, "recommended"}``.
    PortAudio is probed in a child process: its JACK host API can abort a process whose JACK server later dies.
    """
    info: dict[str, Any] = {"jack": _describe_jack(servername), "portaudio": _describe_portaudio(timeout)}
    info["reastream"] = {"port": 58710}
    if info["jack"]["running"]:
        info["recommended"] = "jack"
    elif info["portaudio"]["default"] is not None:
        info["recommended"] = "portaudio"
    else:
        info["recommended"] = "wav"
    return info


def _describe_jack(servername: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "library": False,
        "running": False,
        "server": servername or "default",
        "sample_rate": None,
        "block_size": None,
        "error": None,
    }
    try:
        from .jack_sink import import_jack

        jack = import_jack()
        out["library"] = True
        client = jack.Client("musika-doctor", servername=servername, no_start_server=True)
    except Exception as exc:  # AudioSinkError (no libjack) or jack.JackError (no server)
        out["error"] = str(exc) if not out["library"] else f"no JACK server {out['server']!r} is running ({exc})"
        return out
    out.update(running=True, sample_rate=client.samplerate, block_size=client.blocksize)
    client.close()
    return out


def _describe_portaudio(timeout: float) -> dict[str, Any]:
    out: dict[str, Any] = {"library": False, "devices": [], "default": None, "error": None}
    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "bridge.audio.portaudio_sink"],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        out["error"] = f"PortAudio probe failed: {exc}"
        return out
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        out["error"] = f"PortAudio probe exited with {proc.returncode}: {tail}"
        return out
    out["library"] = True
    out["devices"] = json.loads(lines[-1])
    out["default"] = next((d["name"] for d in out["devices"] if d["default"]), None)
    return out
