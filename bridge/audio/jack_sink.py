"""JACK output: a client "musika" with ports out_L/out_R that any JACK (or PipeWire-JACK) host can record.

The process callback only copies from the ring into the two port buffers. When the JACK server goes away, the
shutdown callback marks the client dead; a watcher thread logs it once, keeps the engine running and tries to
reconnect every ``retry_interval`` seconds, re-registering the ports (and their connections) when the server is back.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
import threading
from collections.abc import Sequence
from typing import Any

from ..jack_midi import FrameClock
from .base import DEFAULT_RING_FRAMES, DEFAULT_SAMPLE_RATE, AudioSink, AudioSinkError
from .ring import AudioRing

logger = logging.getLogger(__name__)

PORT_NAMES = ("out_L", "out_R")


def import_jack() -> Any:
    """Import JACK-Client, turning a missing libjack into an :class:`AudioSinkError` with the remedy."""
    try:
        import jack
    except (ImportError, OSError) as exc:
        raise AudioSinkError(
            f"JACK output is unavailable: cannot load JACK-Client ({exc}). Install libjack (Debian/Ubuntu: "
            "apt install libjack-jackd2-0, or pipewire-jack) and `pip install JACK-Client`, or choose another "
            "--output (portaudio, reastream, wav)"
        ) from exc
    jack.set_error_function(lambda msg: logger.debug("libjack: %s", msg))
    jack.set_info_function(lambda msg: logger.debug("libjack: %s", msg))
    return jack


def port_latency_range(client: Any, port: Any, playback: bool = True) -> tuple[int, int] | None:
    """(min, max) latency in frames of a JACK-Client port (playback: to the speaker; else from the microphone),
    through libjack's jack_port_get_latency_range (JACK-Client does not wrap it); None if unavailable."""
    try:
        import jack

        lib = _libjack()
        rng = (ctypes.c_uint32 * 2)()
        ptr = int(jack._ffi.cast("uintptr_t", port._ptr))
        lib.jack_port_get_latency_range(ctypes.c_void_p(ptr), ctypes.c_int(1 if playback else 0), rng)
        return int(rng[0]), int(rng[1])
    except (OSError, AttributeError, TypeError):
        return None


def set_port_latency_range(port: Any, frames: tuple[int, int], playback: bool = True) -> bool:
    """Declare a port's latency range (frames), e.g. a loopback port's own delay; False if unavailable."""
    try:
        import jack

        lib = _libjack()
        rng = (ctypes.c_uint32 * 2)(int(frames[0]), int(frames[1]))
        ptr = int(jack._ffi.cast("uintptr_t", port._ptr))
        lib.jack_port_set_latency_range(ctypes.c_void_p(ptr), ctypes.c_int(1 if playback else 0), rng)
        return True
    except (OSError, AttributeError, TypeError):
        return False


@functools.lru_cache(maxsize=1)
def _libjack() -> Any:
    name = ctypes.util.find_library("jack") or "libjack.so.0"
    lib = ctypes.CDLL(name)
    for fn in (lib.jack_port_get_latency_range, lib.jack_port_set_latency_range):
        fn.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.POINTER(ctypes.c_uint32 * 2)]
        fn.restype = None
    return lib


def jack_server_running(servername: str | None = None) -> bool:
    """True if a JACK server (``servername`` or the default one) accepts clients; never starts one."""
    try:
        jack = import_jack()
        client = jack.Client("musika-probe", servername=servername, no_start_server=True)
    except Exception:  # AudioSinkError, jack.JackError: either way not usable
        return False
    client.close()
    return True


class JackSink(AudioSink):
    """Stereo JACK client. ``connect``: None/False (leave unconnected), True or "system" (physical playback
    ports), or a list of two destination port names such as ``["REAPER:in1", "REAPER:in2"]``.

    The server's sample rate must equal ``sample_rate`` (the rate of the audio in the ring); the block size is
    the server's period.
    """

    name = "jack"

    def __init__(
        self,
        ring: AudioRing | None = None,
        client_name: str = "musika",
        servername: str | None = None,
        connect: bool | str | Sequence[str] | None = None,
        sample_rate: int = DEFAULT_SAMPLE_RATE,
        ring_frames: int = DEFAULT_RING_FRAMES,
        retry_interval: float = 1.0,
    ) -> None:
        super().__init__(ring, sample_rate=sample_rate, ring_frames=ring_frames)
        if isinstance(connect, str) and connect not in ("system", ""):
            connect = [connect]
        if isinstance(connect, Sequence) and not isinstance(connect, str) and len(connect) not in (1, 2):
            raise AudioSinkError(
                f"JACK connect={list(connect)!r} names {len(connect)} ports; give one port (both channels) "
                "or two (left, right), True for the system playback ports, or nothing"
            )
        self.client_name = client_name
        self.servername = servername
        self._connect = connect
        self._retry_interval = float(retry_interval)
        self._client: Any = None
        self._frames: FrameClock | None = None  # JACK frames on the host clock (set when the client opens)
        self._anchor0: float | None = None  # the frame clock's anchor when the drift was 0
        self._ports: tuple[Any, ...] = ()
        self._alive = False
        self._down_reason = ""
        self._stop_event = threading.Event()
        self._watcher: threading.Thread | None = None

    # --------------------------------------------------------------------------------------------- properties
    @property
    def connected(self) -> bool:
        """True while registered with a running JACK server."""
        return self._alive

    @property
    def device(self) -> str:
        server = self.servername or "default"
        return f"JACK server {server!r}, ports {self.client_name}:{PORT_NAMES[0]}/{PORT_NAMES[1]}"

    @property
    def port_names(self) -> list[str]:
        """Full names of the output ports (the actual client name may differ if "musika" was taken)."""
        client = self._client
        name = client.name if client is not None and self._alive else self.client_name
        return [f"{name}:{p}" for p in PORT_NAMES]

    @property
    def latency_frames(self) -> int:
        """The route's playback latency as JACK reports it for the output ports (the largest of their ranges:
        from the port to the speaker, or 0 into a client such as a DAW's input, which aligns what it records by
        its own latency). Without a client, or where libjack cannot say: one period of processing plus one of
        driver buffering (jackd's default -n 2)."""
        ports, client = self._ports, self._client
        if client is not None and self._alive and ports:
            ranges = [port_latency_range(client, p) for p in ports]
            if all(r is not None for r in ranges):
                return max(r[1] for r in ranges if r is not None)
        return 2 * self._block_size

    def stats(self) -> dict[str, Any]:
        return {**super().stats(), "connected": self._alive}

    # ----------------------------------------------------------------------------------------------- lifecycle
    def _open(self) -> None:
        self._stop_event.clear()
        self._register(strict=True)
        self._watcher = threading.Thread(target=self._watch, name="musika-jack-watch", daemon=True)
        self._watcher.start()

    def _close(self) -> None:
        self._stop_event.set()
        if self._watcher is not None:
            self._watcher.join(timeout=5)
            self._watcher = None
        self._drop_client()

    def _register(self, strict: bool) -> None:
        """Open the client, register ports, activate and connect. Raises AudioSinkError if impossible."""
        jack = import_jack()
        server = self.servername or "default"
        try:
            client = jack.Client(self.client_name, servername=self.servername, no_start_server=True)
        except jack.JackError as exc:
            raise AudioSinkError(
                f"cannot connect to JACK server {server!r} ({exc}). Start it (e.g. `jackd -d alsa` or qjackctl; "
                "on PipeWire run musika under `pw-jack`), or choose --output portaudio/reastream/wav"
            ) from exc
        if client.samplerate != self._sample_rate:
            rate = client.samplerate
            client.close()
            raise AudioSinkError(
                f"JACK server {server!r} runs at {rate} Hz but the audio is {self._sample_rate} Hz; restart "
                f"jackd with -r {self._sample_rate} (or set PipeWire's clock.force-rate) to avoid a pitch shift"
            )
        try:
            ports = tuple(client.outports.register(p) for p in PORT_NAMES)
            client.set_process_callback(self._process)
            client.set_shutdown_callback(self._on_shutdown)
            client.set_xrun_callback(self._on_xrun)
            client.set_blocksize_callback(self._on_blocksize)
            self._frames = FrameClock(client.samplerate)
            self._anchor0 = None
            self._block_size = client.blocksize
            self._ports = ports
            client.activate()
        except jack.JackError as exc:
            client.close()
            raise AudioSinkError(f"JACK client {self.client_name!r} could not register its ports: {exc}") from exc
        self._client, self._alive = client, True
        try:
            self._autoconnect(client, ports)
        except AudioSinkError:
            if strict:
                self._drop_client()
                raise
            logger.warning("JACK auto-connect failed after reconnecting", exc_info=True)

    def _autoconnect(self, client: Any, ports: tuple[Any, ...]) -> None:
        if not self._connect:
            return
        if self._connect is True or self._connect == "system":
            targets = [p.name for p in client.get_ports(is_audio=True, is_input=True, is_physical=True)]
            if not targets:
                logger.warning("JACK has no physical playback ports; %s left unconnected", self.port_names)
                return
        else:
            targets = list(self._connect)
        if len(targets) == 1:
            targets = targets * 2
        for port, target in zip(ports, targets[:2], strict=False):
            try:
                client.connect(port, target)
            except Exception as exc:  # jack.JackError, or ValueError for an unknown port name
                inputs = [p.name for p in client.get_ports(is_audio=True, is_input=True)]
                raise AudioSinkError(
                    f"cannot connect JACK port {port.name} to {target!r} ({exc}); audio input ports now are "
                    f"{inputs}. Pass existing port names, or connect by hand (qjackctl, the DAW's I/O settings)"
                ) from exc

    def _drop_client(self) -> None:
        client, self._client, self._alive = self._client, None, False
        self._ports = ()
        if client is not None:
            try:
                client.deactivate()
                client.close()
            except Exception:  # a dead server may refuse; nothing is left to release
                logger.debug("closing the JACK client failed", exc_info=True)

    # ----------------------------------------------------------------------------------- JACK thread callbacks
    def _process(self, frames: int) -> None:
        ports, client, frames_clock = self._ports, self._client, self._frames
        if len(ports) == 2 and frames_clock is not None:
            played = self.ring.frames_played
            start = frames_clock.cycle(client)  # this period's first frame on the host clock
            self.ring.cycle = (start, played)  # before the read: frame `played` is heard from `start` on
            if self._anchor0 is None:  # a new client (or server): the drift carries on from where it was
                self._anchor0 = frames_clock.anchor - self.ring.clock_drift_s
            self.ring.clock_drift_s = frames_clock.anchor - self._anchor0
            self.ring.read_into((ports[0].get_array(), ports[1].get_array()))

    def _on_shutdown(self, status: Any, reason: str) -> None:
        self._down_reason = reason
        self._alive = False

    def _on_xrun(self, delay_usecs: float) -> None:
        self.xruns += 1

    def _on_blocksize(self, blocksize: int) -> None:
        self._block_size = int(blocksize)

    # ---------------------------------------------------------------------------------------- watcher thread
    def _watch(self) -> None:
        down_logged = False
        last_error = ""
        while not self._stop_event.wait(self._retry_interval):
            if self._alive:
                continue
            if not down_logged:
                logger.warning(
                    "JACK server %r shut down (%s). Audio output paused; the engine keeps running and musika "
                    "will reconnect when the server returns (retrying every %.0f s).",
                    self.servername or "default",
                    self._down_reason or "no reason given",
                    self._retry_interval,
                )
                self._drop_client()
                down_logged = True
            try:
                self._register(strict=False)
            except AudioSinkError as exc:
                if "cannot connect to JACK server" in str(exc):
                    logger.debug("JACK reconnect failed: %s", exc)
                elif str(exc) != last_error:  # the server is back but unusable (e.g. wrong rate): say why
                    logger.error("JACK server is back but musika cannot use it: %s", exc)
                last_error = str(exc)
                continue
            last_error = ""
            self.reconnects += 1
            down_logged = False
            logger.warning("reconnected to JACK server %r as %s", self.servername or "default", self.port_names)
