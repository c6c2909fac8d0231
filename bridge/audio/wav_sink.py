"""Record the live output to a sound file, in real time or as fast as the renderer produces (offline).

The file is written as ``<name>.partial`` beside the target and renamed on :meth:`WavSink.stop`, so a crash never
leaves a truncated file under the final name. The format follows the extension (.wav, .flac, .aiff, .ogg).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from .base import (
    DEFAULT_BLOCK_SIZE,
    DEFAULT_RING_FRAMES,
    DEFAULT_SAMPLE_RATE,
    AudioSink,
    AudioSinkError,
    run_paced,
)
from .ring import AudioRing

FORMATS = {".wav": "WAV", ".flac": "FLAC", ".aiff": "AIFF", ".aif": "AIFF", ".ogg": "OGG"}


class WavSink(AudioSink):
    """Writes the ring's audio to ``path``.

    ``offline=False`` (default): a clock thread takes ``block_size`` frames per block period, like a device,
    so underruns become recorded silence and are counted. ``offline=True``: takes whatever the renderer has
    written, as fast as it comes, never inserting silence; :meth:`stop` drains the ring before closing.
    ``subtype``: soundfile subtype, default "FLOAT" for WAV (32-bit float) and "PCM_24" for FLAC/AIFF.
    """

    name = "wav"

    def __init__(
        self,
        path: str | os.PathLike[str],
        ring: AudioRing | None = None,
        sample_rate: int = DEFAULT_SAMPLE_RATE,
        block_size: int = DEFAULT_BLOCK_SIZE,
        offline: bool = False,
        subtype: str | None = None,
        ring_frames: int = DEFAULT_RING_FRAMES,
    ) -> None:
        super().__init__(ring, sample_rate=sample_rate, block_size=block_size, ring_frames=ring_frames)
        self.path = Path(path)
        fmt = FORMATS.get(self.path.suffix.lower())
        if fmt is None:
            raise AudioSinkError(
                f"cannot record to {str(self.path)!r}: unknown extension {self.path.suffix!r}; "
                f"use one of {sorted(FORMATS)}"
            )
        self.format = fmt
        self.subtype = subtype or {"WAV": "FLOAT", "OGG": "VORBIS"}.get(fmt, "PCM_24")
        if not sf.check_format(fmt, self.subtype):
            raise AudioSinkError(f"soundfile cannot write {fmt} with subtype {self.subtype!r}; omit --subtype")
        self.offline = bool(offline)
        self.frames_recorded = 0
        self._file: Any = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._scratch = np.zeros((self.ring.channels, self._block_size), dtype=np.float32)

    @property
    def partial_path(self) -> Path:
        return self.path.with_name(self.path.name + ".partial")

    @property
    def device(self) -> str:
        return f"file {self.path} ({'offline' if self.offline else 'real time'})"

    def stats(self) -> dict[str, Any]:
        return {**super().stats(), "frames_recorded": self.frames_recorded, "path": str(self.path)}

    def _open(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = sf.SoundFile(
                self.partial_path, "w", self._sample_rate, self.ring.channels, self.subtype, format=self.format
            )
        except (OSError, sf.LibsndfileError) as exc:
            raise AudioSinkError(f"cannot write the recording {str(self.partial_path)!r}: {exc}") from exc
        self._stop.clear()
        target = self._run_offline if self.offline else self._run_realtime
        self._thread = threading.Thread(target=target, name="musika-wav", daemon=True)
        self._thread.start()

    def _close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        if self._file is not None:
            self._file.close()
            self._file = None
            os.replace(self.partial_path, self.path)

    def _write(self, frames: int) -> None:
        self._file.write(self._scratch[:, :frames].T)
        self.frames_recorded += frames

    def _run_realtime(self) -> None:
        def step() -> None:
            self.ring.read_into(self._scratch, channels_first=True)
            self._write(self._block_size)

        run_paced(self._stop, self._block_size / self._sample_rate, step, self._late)

    def _late(self) -> None:
        self.xruns += 1

    def _run_offline(self) -> None:
        while True:
            stopping = self._stop.is_set()  # read before draining, so nothing written before stop() is lost
            k = self.ring.read_into(self._scratch, channels_first=True, fill_silence=False)
            if k:
                self._write(k)
            elif stopping:
                return
            else:
                self._stop.wait(0.005)
