"""A second JACK client that records two ports exactly, for the sink tests, plus test signals."""

from __future__ import annotations

import threading

import numpy as np

SR = 44100


def stereo_sine(frames: int, start: int = 0) -> np.ndarray:
    """(2, frames) float32: left 440 Hz at 0.5, right 660 Hz at 0.25, from sample index ``start``."""
    t = (np.arange(frames) + start) / SR
    return np.stack([0.5 * np.sin(2 * np.pi * 440 * t), 0.25 * np.sin(2 * np.pi * 660 * t)]).astype(np.float32)


def locate(recording: np.ndarray, reference: np.ndarray, atol: float = 1e-6) -> int:
    """Offset k such that recording[:, i] == reference[:, i + k] for most frames i (majority of probes)."""
    votes: dict[int, int] = {}
    for i in range(0, recording.shape[1], 997):
        frame = recording[:, i : i + 1]
        if not frame.any():
            continue
        hits = np.nonzero(np.all(np.abs(reference - frame) <= atol, axis=0))[0]
        for k in hits - i:
            votes[int(k)] = votes.get(int(k), 0) + 1
    assert votes, "no recorded frame matches the fed signal at all"
    return max(votes, key=votes.__getitem__)


def mismatched_frames(audio: np.ndarray, expected: np.ndarray, atol: float = 1e-6) -> int:
    """Frames (columns) where (2, n) ``audio`` and ``expected`` differ by more than ``atol``."""
    return int(np.any(np.abs(audio - expected) > atol, axis=0).sum())


def continuity_errors(audio: np.ndarray, reference: np.ndarray, atol: float = 0.0) -> int:
    """Frames of ``audio`` (after its leading silence) that differ from one contiguous slice of ``reference``."""
    offset = locate(audio, reference, max(atol, 1e-6))
    first = int(np.argmax(np.abs(audio[0]) > 0))
    n = audio.shape[1] - first
    return mismatched_frames(audio[:, first:], reference[:, offset + first : offset + first + n], atol)


def glitch_allowance(period: int, xruns: int) -> int:
    """Frames a loaded shared CPU may spoil in a Python JACK client: 2 late cycles, plus 4 per reported xrun.

    A late real-time thread can glitch a cycle even without a reported xrun (JACK2's asynchronous mode). A
    sink or ring bug (gap, repeat, swapped or shifted block) spoils far more than this in half a second.
    """
    return period * (2 + 4 * xruns)


def dominant_hz(x: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spectrum) * SR / len(x))


class JackRecorder:
    """Records ``frames`` frames from two JACK ports into a (2, frames) array once armed."""

    def __init__(self, frames: int, servername: str | None = None, name: str = "recorder") -> None:
        import jack

        self.client = jack.Client(name, servername=servername, no_start_server=True)
        self.ports = [self.client.inports.register("in_L"), self.client.inports.register("in_R")]
        self.audio = np.zeros((2, frames), dtype=np.float32)
        self._pos = 0
        self._armed = False
        self.done = threading.Event()
        self.xruns = 0
        self.client.set_process_callback(self._process)
        self.client.set_xrun_callback(self._xrun)
        self.client.activate()

    def _process(self, n: int) -> None:
        if not self._armed or self._pos >= self.audio.shape[1]:
            return
        k = min(n, self.audio.shape[1] - self._pos)
        for c, port in enumerate(self.ports):
            self.audio[c, self._pos : self._pos + k] = port.get_array()[:k]
        self._pos += k
        if self._pos >= self.audio.shape[1]:
            self.done.set()

    def _xrun(self, delay: float) -> None:
        self.xruns += 1

    def connect(self, sources: list[str]) -> None:
        for src, dst in zip(sources, self.ports, strict=True):
            self.client.connect(src, dst)

    def arm(self) -> None:
        """Start capturing from the next JACK cycle."""
        self._pos = 0
        self.done.clear()
        self._armed = True

    def record(self, timeout: float = 20.0, arm: bool = True) -> np.ndarray:
        """Arm (unless already armed), wait for the buffer to fill (real time), return it."""
        if arm:
            self.arm()
        assert self.done.wait(timeout), "the JACK recorder did not fill its buffer (server stalled?)"
        self._armed = False
        return self.audio.copy()

    def close(self) -> None:
        self.client.deactivate()
        self.client.close()

    def __enter__(self) -> JackRecorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
