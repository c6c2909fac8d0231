"""Writing audio files atomically: a temporary file in the target folder, renamed when complete."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import soundfile as sf

from generator.atomic import replacing
from generator.errors import AudioOutputError

SUBTYPES = {"16": "PCM_16", "24": "PCM_24", "float": "FLOAT"}


def check_writable(path: str | Path) -> Path:
    """Fail early, before any work, when `path` cannot be written."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise AudioOutputError(f"cannot write {path}: folder {folder} does not exist; create it first")
    if not os.access(folder, os.W_OK):
        raise AudioOutputError(f"cannot write {path}: folder {folder} is not writable; choose another --out")
    if path.is_dir():
        raise AudioOutputError(f"cannot write {path}: it is a directory; give a file name such as {path / 'out.wav'}")
    return path


def write_audio(path: str | Path, audio: np.ndarray, sample_rate: int, bits: str = "24") -> Path:
    """Write (channels, samples) float audio to wav/flac/ogg by extension, atomically."""
    path = check_writable(path)
    fmt = {".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG", ".aiff": "AIFF", ".aif": "AIFF"}.get(path.suffix.lower())
    if fmt is None:
        raise AudioOutputError(f"cannot write {path}: unknown extension {path.suffix!r}; use .wav, .flac, .ogg, .aiff")
    subtype = SUBTYPES.get(bits)
    if subtype is None:
        raise AudioOutputError(f"bit depth {bits!r} is not supported; use one of {', '.join(SUBTYPES)}")
    if fmt == "OGG":
        subtype = "VORBIS"
    elif fmt == "FLAC" and subtype == "FLOAT":
        subtype = "PCM_24"
    try:
        with replacing(path) as tmp:
            sf.write(tmp, np.asarray(audio, dtype=np.float32).T, sample_rate, subtype=subtype, format=fmt)
    except Exception as exc:
        if isinstance(exc, AudioOutputError):
            raise
        raise AudioOutputError(f"cannot write {path}: {exc}") from exc
    return path
