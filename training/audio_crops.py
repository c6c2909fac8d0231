"""Random mono training crops from one or several datasets (a mix of domains weighted alike).

Each stereo chunk gives either channel: stereo is two mono signals through one autoencoder. With several dataset
roots every root (domain) is drawn equally often, whatever its hours; within a root, chunks are drawn in proportion
to their length.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import soundfile as sf

from generator.runtime.model_config import SAMPLE_RATE
from training.errors import TrainingError

SILENT_PEAK = 1e-3  # -60 dBFS: a crop this quiet is drawn again (its spectral convergence has no scale)
REDRAWS = 8


class AudioCrops:
    """Random mono crops (batch, samples) from the chunks of one split of `roots`, drawn with a numpy Generator."""

    def __init__(self, roots: str | Path | Sequence[str | Path], split: str, samples: int):
        from training.data.dataset import Dataset

        roots = [roots] if isinstance(roots, str | Path) else list(roots)
        if not roots:
            raise TrainingError("no dataset given: pass at least one prepared dataset (musika prepare ...)")
        self.samples = samples
        self.items: list[tuple[Path, int, int]] = []
        weights: list[np.ndarray] = []
        for root in roots:
            ds = Dataset(root)
            items, short = [], 0
            for chunk in sorted(ds.split(split), key=lambda c: c.id):
                info = sf.info(str(ds.root / chunk.file))
                if info.frames >= samples:
                    items.append((ds.root / chunk.file, info.frames, info.channels))
                else:
                    short += 1
            if not items:
                raise TrainingError(f"dataset {root}: no {split!r} chunk has the {samples} samples "
                                    f"({samples / SAMPLE_RATE:.2f} s) one training crop needs ({short} shorter ones)")
            lengths = np.array([n - samples + 1 for _, n, _ in items], np.float64)
            weights.append(lengths / lengths.sum() / len(roots))
            self.items += items
        self.p = np.concatenate(weights)
        self.p /= self.p.sum()

    def sample(self, rng: np.random.Generator, batch: int, rows: slice | None = None) -> np.ndarray:
        """(batch, samples) float32, or only its `rows` (the same crops, the others not read: one process's share
        of a batch drawn alike by several). A crop whose peak is under -60 dBFS is replaced by the next of its
        8 spare draws, so silences between tracks or movements do not reach the waveform losses. The draws are
        made up front, so `rng` advances alike whatever the audio and `rows`."""
        idx = rng.choice(len(self.items), size=(batch, 1 + REDRAWS), p=self.p)
        chans = rng.integers(0, 2, size=(batch, 1 + REDRAWS))
        offs = rng.random((batch, 1 + REDRAWS))
        picked = range(batch)[rows or slice(None)]
        out = np.empty((len(picked), self.samples), np.float32)
        for o, b in enumerate(picked):
            for k in range(1 + REDRAWS):
                out[o] = self._read(int(idx[b, k]), int(chans[b, k]), float(offs[b, k]))
                if np.abs(out[o]).max() >= SILENT_PEAK:
                    break
        return out

    def _read(self, item: int, channel: int, offset: float) -> np.ndarray:
        path, n, ch = self.items[item]
        start = int(offset * (n - self.samples + 1))
        data = sf.read(str(path), start=start, stop=start + self.samples, dtype="float32", always_2d=True)[0]
        return data[:, channel % ch]

    def excerpt(self, seconds: float) -> np.ndarray:
        """The first `seconds` (at most one chunk) of the first chunk, (2, samples), for previews."""
        path, n, _ = self.items[0]
        data = sf.read(str(path), stop=min(n, int(seconds * SAMPLE_RATE)), dtype="float32", always_2d=True)[0]
        return np.ascontiguousarray(data.T if data.shape[1] == 2 else np.repeat(data.T, 2, axis=0))
