"""PortAudio output (sounddevice): any sound card or loopback device by name or index.

This is the route for BlackHole (macOS), VB-Cable / Voicemeeter (Windows) and plain sound cards; on Linux
PortAudio also reaches JACK, where the stream shows up as ports ``PortAudio:out_0/1``. sounddevice is imported
(and PortAudio initialised, which scans devices) only when a sink starts or :func:`list_output_devices` runs.

PortAudio scans devices once per process and is never re-initialised here: Debian's PortAudio 19.6 aborts the
process (assertion in pa_jack.c Terminate) if the JACK server it attached to has gone away. So a process that used
PortAudio-on-JACK must not outlive that server gracefully; prefer ``--output jack`` on JACK systems (it
reconnects), and probe devices in a child process (``bridge.audio.describe_audio`` does).
"""

from __future__ import annotations

import logging
from typing import Any

from ..logs import native_output_logged
from .base import DEFAULT_BLOCK_SIZE, DEFAULT_RING_FRAMES, DEFAULT_SAMPLE_RATE, AudioSink, AudioSinkError
from .ring import AudioRing

logger = logging.getLogger(__name__)


def import_sounddevice() -> Any:
    """Import sounddevice (PortAudio scans the devices on first import)."""
    try:
        with native_output_logged(logger, "PortAudio"):  # its ALSA and JACK probes print to stderr
            import sounddevice as sd
    except (ImportError, OSError) as exc:
        raise AudioSinkError(
            f"PortAudio output is unavailable: cannot load sounddevice ({exc}). Install the PortAudio library "
            "(Debian/Ubuntu: apt install libportaudio2) and `pip install sounddevice`, or choose another "
            "--output (jack, reastream, wav)"
        ) from exc
    return sd


def list_output_devices() -> list[dict[str, Any]]:
    """Output devices as ``{"index", "name", "hostapi", "channels", "default_samplerate", "default"}``."""
    sd = import_sounddevice()
    hostapis = sd.query_hostapis()
    default_out = sd.default.device[1]
    devices = []
    for dev in sd.query_devices():
        if dev["max_output_channels"] > 0:
            devices.append(
                {
                    "index": dev["index"],
                    "name": dev["name"],
                    "hostapi": hostapis[dev["hostapi"]]["name"],
                    "channels": dev["max_output_channels"],
                    "default_samplerate": dev["default_samplerate"],
                    "default": dev["index"] == default_out,
                }
            )
    return devices


class PortAudioSink(AudioSink):
    """Stereo PortAudio output stream. ``device``: None (system default), an index, or a (sub)string of the
    device name such as ``"BlackHole 2ch"`` or ``"CABLE Input"``. ``latency``: "low", "high" or seconds."""

    name = "portaudio"

    def __init__(
        self,
        ring: AudioRing | None = None,
        device: int | str | None = None,
        sample_rate: int = DEFAULT_SAMPLE_RATE,
        block_size: int = DEFAULT_BLOCK_SIZE,
        latency: str | float = "low",
        ring_frames: int = DEFAULT_RING_FRAMES,
    ) -> None:
        super().__init__(ring, sample_rate=sample_rate, block_size=block_size, ring_frames=ring_frames)
        if isinstance(device, str) and device.strip().isdigit():
            device = int(device)
        self.requested_device = device
        self.latency = latency
        self._stream: Any = None
        self._device_label = "not open"

    @property
    def device(self) -> str:
        return self._device_label

    @property
    def latency_frames(self) -> int:
        stream = self._stream
        if stream is None:
            return self._block_size
        return int(round(stream.latency * self._sample_rate)) + self._block_size

    def _resolve(self, sd: Any) -> dict[str, Any]:
        try:
            info = sd.query_devices(self.requested_device, "output")
        except (ValueError, sd.PortAudioError) as exc:
            names = [f"{d['index']}: {d['name']} ({d['hostapi']})" for d in list_output_devices()]
            wanted = "the default output device" if self.requested_device is None else repr(self.requested_device)
            raise AudioSinkError(
                f"PortAudio has no output device matching {wanted} ({exc}). Output devices: "
                f"{names or 'none'}. Pass --device with one of these names or indices (a unique part of the "
                "name is enough); on Linux without a sound card, start JACK and use --output jack"
            ) from exc
        return info

    def _open(self) -> None:
        sd = import_sounddevice()
        info = self._resolve(sd)
        try:
            stream = sd.OutputStream(
                samplerate=self._sample_rate,
                blocksize=self._block_size,
                device=info["index"],
                channels=2,
                dtype="float32",
                latency=self.latency,
                callback=self._callback,
            )
            stream.start()
        except (sd.PortAudioError, ValueError) as exc:
            raise AudioSinkError(
                f"cannot open PortAudio device {info['name']!r} for stereo float32 at {self._sample_rate} Hz, "
                f"block {self._block_size}: {exc}. Check that the device supports {self._sample_rate} Hz "
                "(set it in the system's audio settings) or choose another --device"
            ) from exc
        self._stream = stream
        hostapi = sd.query_hostapis(info["hostapi"])["name"]
        self._device_label = f"{info['name']} ({hostapi}, device {info['index']})"

    def _close(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            stream.stop()
            stream.close()

    def _callback(self, outdata: Any, frames: int, time_info: Any, status: Any) -> None:
        if status.output_underflow:
            self.xruns += 1
        self.ring.read_into(outdata)


if __name__ == "__main__":  # `python -m bridge.audio.portaudio_sink`: devices as JSON (describe_audio's probe)
    import json

    print(json.dumps(list_output_devices()))
