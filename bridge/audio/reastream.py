"""ReaStream over UDP: audio straight into Reaper (ReaStream plug-in in receive mode), no virtual device.

Packet layout (all integers little-endian, reference: Cockos' reastream.txt)::

    4 bytes  'MRSR'
    4 bytes  int   packet size = 47 + sblocklen
    32 bytes identifier, zero padded, last byte always 0
    1 byte   channel count (1-64)
    4 bytes  int   sample rate
    2 bytes  short sblocklen = bytes of sample data, at most 1200
    sblocklen bytes of float32 samples, non-interleaved (all of channel 0, then channel 1, ...)

:func:`encode_packets` / :func:`decode_packet` are pure. :class:`ReaStreamSink` paces itself with its own clock
thread, sending ``block_size`` frames every ``block_size / sample_rate`` seconds (silence when the ring is
short). :class:`ReaStreamReceiver` is a small listener used by the tests and by ``musika doctor``.
"""

from __future__ import annotations

import logging
import socket
import struct
import threading
from dataclasses import dataclass

import numpy as np

from .base import (
    DEFAULT_BLOCK_SIZE,
    DEFAULT_RING_FRAMES,
    DEFAULT_SAMPLE_RATE,
    AudioSink,
    AudioSinkError,
    run_paced,
)
from .ring import AudioRing

logger = logging.getLogger(__name__)

DEFAULT_PORT = 58710
MAGIC = b"MRSR"
HEADER = struct.Struct("<4sI32sBIH")  # 47 bytes
MAX_SAMPLE_BYTES = 1200


class ReaStreamError(AudioSinkError, ValueError):
    """A ReaStream identifier, block or packet is not valid."""


@dataclass(frozen=True)
class ReaStreamPacket:
    identifier: str
    sample_rate: int
    samples: np.ndarray  # (channels, frames) float32


def check_identifier(identifier: str) -> bytes:
    """The identifier as bytes; at most 31 ASCII characters (byte 32 is the terminating zero)."""
    try:
        raw = identifier.encode("ascii")
    except UnicodeEncodeError as exc:
        raise ReaStreamError(f"ReaStream identifier {identifier!r} must be plain ASCII") from exc
    if not 0 < len(raw) <= 31 or b"\0" in raw:
        raise ReaStreamError(
            f"ReaStream identifier {identifier!r} has {len(raw)} characters; use 1-31 ASCII characters and "
            "type the same one into the ReaStream plug-in in Reaper (receive mode)"
        )
    return raw


def frames_per_packet(channels: int) -> int:
    """Largest frame count whose non-interleaved float32 data fits in 1200 bytes (150 for stereo)."""
    return MAX_SAMPLE_BYTES // (4 * channels)


def encode_packets(block: np.ndarray, identifier: str, sample_rate: int) -> list[bytes]:
    """Split ``block`` (channels, frames) into ReaStream audio packets of at most 1200 bytes of samples."""
    block = np.asarray(block, dtype="<f4")
    if block.ndim != 2 or not 1 <= block.shape[0] <= 64:
        raise ReaStreamError(f"ReaStream block has shape {block.shape}; expected (channels 1-64, frames)")
    ident = check_identifier(identifier)
    channels, frames = block.shape
    step = frames_per_packet(channels)
    packets = []
    for start in range(0, frames, step):
        chunk = block[:, start : start + step]
        data = chunk.tobytes(order="C")  # row-major (channels, frames): non-interleaved
        packets.append(HEADER.pack(MAGIC, HEADER.size + len(data), ident, channels, sample_rate, len(data)) + data)
    return packets


def decode_packet(data: bytes) -> ReaStreamPacket:
    """Parse one ReaStream audio packet; raises :class:`ReaStreamError` naming what is wrong."""
    if len(data) < HEADER.size:
        raise ReaStreamError(f"ReaStream packet of {len(data)} bytes is shorter than the {HEADER.size}-byte header")
    magic, size, ident, channels, rate, nbytes = HEADER.unpack_from(data)
    if magic != MAGIC:
        raise ReaStreamError(f"not a ReaStream audio packet: magic {magic!r}, expected {MAGIC!r}")
    if size != len(data) or nbytes != size - HEADER.size or nbytes > MAX_SAMPLE_BYTES:
        raise ReaStreamError(
            f"ReaStream packet sizes disagree: header says {size} bytes and {nbytes} bytes of samples, "
            f"datagram has {len(data)} (at most {MAX_SAMPLE_BYTES} sample bytes are allowed)"
        )
    if channels < 1 or nbytes % (4 * channels) or ident[31] != 0:
        raise ReaStreamError(f"ReaStream packet has {channels} channels for {nbytes} bytes or a bad identifier")
    samples = np.frombuffer(data, dtype="<f4", offset=HEADER.size).reshape(channels, -1).astype(np.float32)
    return ReaStreamPacket(ident.rstrip(b"\0").decode("ascii", "replace"), rate, samples)


class ReaStreamSink(AudioSink):
    """Sends the ring's audio as ReaStream packets to ``host:port`` (default 127.0.0.1:58710)."""

    name = "reastream"

    def __init__(
        self,
        ring: AudioRing | None = None,
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        identifier: str = "musika",
        sample_rate: int = DEFAULT_SAMPLE_RATE,
        block_size: int = DEFAULT_BLOCK_SIZE,
        ring_frames: int = DEFAULT_RING_FRAMES,
    ) -> None:
        super().__init__(ring, sample_rate=sample_rate, block_size=block_size, ring_frames=ring_frames)
        check_identifier(identifier)
        if not 0 < int(port) < 65536:
            raise ReaStreamError(f"ReaStream port {port!r} is not valid; use 1-65535 (ReaStream's is 58710)")
        self.host, self.port, self.identifier = host, int(port), identifier
        self.packets_sent = 0
        self.send_errors = 0
        self._sock: socket.socket | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._scratch = np.zeros((self.ring.channels, self._block_size), dtype=np.float32)

    @property
    def device(self) -> str:
        return f"udp://{self.host}:{self.port} identifier {self.identifier!r}"

    def stats(self) -> dict:
        return {**super().stats(), "packets_sent": self.packets_sent, "send_errors": self.send_errors}

    def _open(self) -> None:
        try:
            addr = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_DGRAM)[0]
            self._sock = socket.socket(addr[0], socket.SOCK_DGRAM)
            self._sock.connect(addr[4])
        except OSError as exc:
            raise AudioSinkError(f"cannot open a UDP socket to ReaStream at {self.host}:{self.port}: {exc}") from exc
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="musika-reastream", daemon=True)
        self._thread.start()

    def _close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _run(self) -> None:
        run_paced(self._stop, self._block_size / self._sample_rate, self._step, self._late)

    def _step(self) -> None:
        self.ring.read_into(self._scratch, channels_first=True)
        self.send(self._scratch)

    def _late(self) -> None:
        self.xruns += 1

    def send(self, block: np.ndarray) -> None:
        """Send ``block`` (channels, frames) now (the clock thread does this; an offline writer may too)."""
        for packet in encode_packets(block, self.identifier, self._sample_rate):
            try:
                self._sock.send(packet)
                self.packets_sent += 1
            except OSError:  # e.g. ECONNREFUSED from an earlier packet: nobody listening yet, keep going
                self.send_errors += 1


class ReaStreamReceiver:
    """Listens for ReaStream audio on ``host:port`` (port 0: any free port, see :attr:`port`)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, identifier: str | None = None) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self._sock.bind((host, port))
        self._sock.settimeout(0.1)
        self.port = self._sock.getsockname()[1]
        self.identifier = identifier
        self.raw: list[bytes] = []
        self.packets: list[ReaStreamPacket] = []
        self.errors: list[str] = []
        self.frames = 0
        self._frames_changed = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="reastream-receiver", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self._sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                packet = decode_packet(data)
            except ReaStreamError as exc:
                self.errors.append(str(exc))
                continue
            if self.identifier is not None and packet.identifier != self.identifier:
                continue
            with self._frames_changed:
                self.raw.append(data)
                self.packets.append(packet)
                self.frames += packet.samples.shape[1]
                self._frames_changed.notify_all()

    def wait_frames(self, frames: int, timeout: float = 10.0) -> bool:
        """Block until at least ``frames`` frames have arrived (or ``timeout`` s passed); True if they did."""
        with self._frames_changed:
            return self._frames_changed.wait_for(lambda: self.frames >= frames, timeout)

    def audio(self) -> np.ndarray:
        """Everything received so far, (channels, frames) float32."""
        with self._frames_changed:
            packets = list(self.packets)
        if not packets:
            return np.zeros((2, 0), dtype=np.float32)
        return np.concatenate([p.samples for p in packets], axis=1)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._sock.close()

    def __enter__(self) -> ReaStreamReceiver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
