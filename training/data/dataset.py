"""The one dataset format every data source writes and training/evaluation read.

Layout of a dataset directory::

    DIR/dataset.json        kind, sample_rate, seed, label kinds, label statistics, sources, licences
    DIR/manifest.jsonl      one line per chunk (see Chunk)
    DIR/audio/<id>.wav      44.1 kHz stereo PCM-16 chunk
    DIR/labels/<id>.<name>.npy   per-latent-step curves (float32, rate 44100/4096 Hz), e.g. density
    DIR/DATASET.md          human-readable description

Every chunk belongs to split "train" or "heldout"; training reads only "train", evaluation only "heldout".
The split is decided from a hash of the chunk's *source* (a whole track or file), so chunks of one track never
straddle the split.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from generator.atomic import replacing, write_json, write_text
from generator.errors import MusikaError
from generator.runtime.model_config import SAMPLE_RATE

FORMAT = "musika-dataset/1"


class DatasetError(MusikaError):
    """A dataset directory is missing, malformed, or empty."""


@dataclass
class Chunk:
    id: str
    file: str  # relative to the dataset directory
    seconds: float
    split: str  # "train" | "heldout"
    source: str  # track or file the chunk comes from
    labels: dict[str, float] = field(default_factory=dict)  # scalar labels: tempo (BPM), first_beat_s, ...
    curves: dict[str, str] = field(default_factory=dict)  # curve name -> relative .npy path


def split_for(source: str, heldout_fraction: float = 0.1) -> str:
    """Deterministic train/held-out assignment from the source name."""
    h = int(hashlib.sha1(source.encode("utf-8")).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "heldout" if h < heldout_fraction else "train"


class DatasetWriter:
    """Writes chunks and the manifest atomically enough that a re-run can reuse finished work."""

    def __init__(self, root: str | Path, kind: str, seed: int | None = None, meta: dict[str, Any] | None = None):
        self.root = Path(root)
        (self.root / "audio").mkdir(parents=True, exist_ok=True)
        (self.root / "labels").mkdir(parents=True, exist_ok=True)
        self.kind = kind
        self.seed = seed
        self.meta = dict(meta or {})
        self.chunks: dict[str, Chunk] = {c.id: c for c in _read_manifest(self.root)} if self.has_manifest() else {}

    def has_manifest(self) -> bool:
        return (self.root / "manifest.jsonl").exists()

    def has(self, chunk_id: str) -> bool:
        c = self.chunks.get(chunk_id)
        return c is not None and (self.root / c.file).exists()

    def add(
        self,
        chunk_id: str,
        audio: np.ndarray,
        source: str,
        labels: dict[str, float] | None = None,
        curves: dict[str, np.ndarray] | None = None,
        split: str | None = None,
    ) -> Chunk:
        """Write one chunk. audio: float (2, samples) at 44.1 kHz in [-1, 1]."""
        audio = np.asarray(audio, dtype=np.float32)
        if audio.ndim != 2 or audio.shape[0] != 2:
            raise DatasetError(f"chunk {chunk_id}: audio must be (2, samples), got {audio.shape}")
        rel = f"audio/{chunk_id}.wav"
        with replacing(self.root / rel) as tmp:
            sf.write(tmp, np.clip(audio.T, -1.0, 1.0), SAMPLE_RATE, subtype="PCM_16", format="WAV")
        curve_files: dict[str, str] = {}
        for name, values in (curves or {}).items():
            crel = f"labels/{chunk_id}.{name}.npy"
            np.save(self.root / crel, np.asarray(values, dtype=np.float32))
            curve_files[name] = crel
        chunk = Chunk(
            id=chunk_id,
            file=rel,
            seconds=audio.shape[1] / SAMPLE_RATE,
            split=split or split_for(source),
            source=source,
            labels={k: float(v) for k, v in (labels or {}).items()},
            curves=curve_files,
        )
        self.chunks[chunk_id] = chunk
        return chunk

    def finish(self, stats: dict[str, Any] | None = None) -> dict[str, Any]:
        """Write manifest.jsonl and dataset.json; returns the dataset.json content."""
        chunks = sorted(self.chunks.values(), key=lambda c: c.id)
        write_text(self.root / "manifest.jsonl", "".join(json.dumps(asdict(c)) + "\n" for c in chunks))
        info = {
            "format": FORMAT,
            "kind": self.kind,
            "sample_rate": SAMPLE_RATE,
            "seed": self.seed,
            "chunks": len(chunks),
            "hours": sum(c.seconds for c in chunks) / 3600,
            "hours_by_split": {
                s: sum(c.seconds for c in chunks if c.split == s) / 3600 for s in ("train", "heldout")
            },
            "stats": stats or {},
            **self.meta,
        }
        write_json(self.root / "dataset.json", info)
        return info


def _read_manifest(root: Path) -> list[Chunk]:
    chunks = []
    with open(root / "manifest.jsonl") as fh:
        for n, line in enumerate(fh, 1):
            if line.strip():
                try:
                    chunks.append(Chunk(**json.loads(line)))
                except (TypeError, ValueError) as exc:
                    raise DatasetError(f"{root / 'manifest.jsonl'} line {n} is not a valid chunk: {exc}") from exc
    return chunks


class Dataset:
    """Read access to a prepared dataset."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        if not (self.root / "dataset.json").exists() or not (self.root / "manifest.jsonl").exists():
            raise DatasetError(
                f"{self.root} is not a prepared dataset (no dataset.json/manifest.jsonl); "
                "create one with `musika prepare techno|piano|folder ... --out DIR`"
            )
        self.info: dict[str, Any] = json.loads((self.root / "dataset.json").read_text())
        self.chunks = _read_manifest(self.root)

    def split(self, name: str) -> list[Chunk]:
        return [c for c in self.chunks if c.split == name]

    def audio(self, chunk: Chunk) -> np.ndarray:
        """float32 (2, samples) at 44.1 kHz."""
        data, sr = sf.read(self.root / chunk.file, dtype="float32", always_2d=True)
        return np.ascontiguousarray(data.T)

    def curve(self, chunk: Chunk, name: str) -> np.ndarray:
        return np.load(self.root / chunk.curves[name])

    def __iter__(self) -> Iterator[Chunk]:
        return iter(self.chunks)

    def __len__(self) -> int:
        return len(self.chunks)
