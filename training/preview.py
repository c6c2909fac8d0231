"""Preview files written during training: a WAV (atomic write, rank 0 only); the spectrogram PNG is
generator.offline.spectrogram_png's.

Audio is float32 (channels, samples) or (samples,) at 44.1 kHz in [-1, 1].
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from generator.atomic import replacing
from generator.runtime.model_config import SAMPLE_RATE


def write_wav(path: str | Path, audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> Path:
    """PCM-16 WAV, written to a temporary name and renamed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    a = np.asarray(audio, np.float32)
    data = a if a.ndim == 1 else a.T
    with replacing(path) as tmp:
        sf.write(tmp, np.clip(data, -1.0, 1.0), sample_rate, subtype="PCM_16", format="WAV")
    return path
