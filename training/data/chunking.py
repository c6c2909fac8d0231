"""Chunk boundaries, train/held-out assignment and the re-run cache shared by the piano and folder sources.

Chunks are whole latent steps (4096 samples at 44.1 kHz) long, so per-step label curves line up exactly with
the audio: a 30 s request gives 323 steps = 1,323,008 samples.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from generator.atomic import write_json
from generator.runtime.model_config import SAMPLE_RATE, SAMPLES_PER_LATENT
from training.data.dataset import DatasetWriter

CACHE_FILE = ".prepare-cache.json"


def steps_for(seconds: float, sr: int = SAMPLE_RATE) -> int:
    """Whole latent steps closest to ``seconds`` (at least 1)."""
    return max(1, int(round(seconds * sr / SAMPLES_PER_LATENT)))


def chunk_spans(n_samples: int, chunk_steps: int, min_steps: int) -> list[tuple[int, int]]:
    """Split ``n_samples`` into [start, stop) sample spans of ``chunk_steps`` latent steps.

    A remainder shorter than ``min_steps`` is merged into the previous chunk (nothing is dropped); audio
    shorter than one chunk gives one chunk. ``stop`` may exceed ``n_samples`` by < 4096 samples: the caller pads
    the last chunk with silence up to a whole step.
    """
    if n_samples <= 0:
        return []
    total_steps = -(-n_samples // SAMPLES_PER_LATENT)  # ceil
    bounds = list(range(0, total_steps, chunk_steps)) + [total_steps]
    if len(bounds) > 2 and bounds[-1] - bounds[-2] < min_steps:
        del bounds[-2]
    return [(a * SAMPLES_PER_LATENT, b * SAMPLES_PER_LATENT) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def _unit_hash(source: str) -> float:
    return int(hashlib.sha1(source.encode("utf-8")).hexdigest()[:8], 16) / 0xFFFFFFFF


def assign_splits(sources: list[str], heldout_fraction: float = 0.1) -> dict[str, str]:
    """Deterministic split per source from a hash of its name (as ``dataset.split_for``).

    With two or more sources, at least one is held out and at least one trains: if the hash leaves a side
    empty, the source with the smallest (resp. largest) hash moves across.
    """
    splits = {s: ("heldout" if _unit_hash(s) < heldout_fraction else "train") for s in sources}
    if len(sources) >= 2:
        ranked = sorted(sources, key=_unit_hash)
        if "heldout" not in splits.values():
            splits[ranked[0]] = "heldout"
        if "train" not in splits.values():
            splits[ranked[-1]] = "train"
    return splits


def chunk_id(prefix: str, source: str, index: int) -> str:
    """Stable, filesystem-safe chunk id from a source name and the chunk's index within it."""
    slug = "".join(ch if ch.isalnum() else "_" for ch in Path(source).stem)[:40].strip("_") or "x"
    digest = hashlib.sha1(source.encode("utf-8")).hexdigest()[:8]
    return f"{prefix}{slug}-{digest}-{index:03d}"


class RunCache:
    """What an earlier run made of each source (file or work), so a re-run can skip finished sources.

    Stored as ``OUT/.prepare-cache.json``: {source: {"key": {...}, "status": "ok"|"skipped", "reason": str,
    "chunks": [chunk ids], "seconds": [float], "notes": [str]}}. An entry is reused only when its key (file size,
    mtime, settings) is unchanged and, for "ok", every chunk file still exists.
    """

    def __init__(self, root: Path):
        self.path = Path(root) / CACHE_FILE
        self.entries: dict[str, dict[str, Any]] = {}
        if self.path.exists():
            try:
                self.entries = json.loads(self.path.read_text())["entries"]
            except (ValueError, KeyError, TypeError):
                self.entries = {}  # a damaged cache only costs recomputation

    def lookup(self, source: str, key: dict[str, Any], writer: DatasetWriter | None = None) -> dict[str, Any] | None:
        """The entry for ``source`` if its key matches (and, given ``writer``, all its chunks exist)."""
        entry = self.entries.get(source)
        if entry is None or entry.get("key") != key:
            return None
        if writer is not None and entry.get("status") == "ok":
            if not all(writer.has(c) for c in entry.get("chunks", [])):
                return None
        return entry

    def store(self, source: str, key: dict[str, Any], **entry: Any) -> None:
        self.entries[source] = {"key": key, **entry}

    def save(self) -> None:
        write_json(self.path, {"entries": self.entries}, indent=1)


def drop_stale(writer: DatasetWriter, keep: set[str]) -> int:
    """Remove chunks (manifest entries and their files) not in ``keep``; returns how many were removed."""
    stale = [cid for cid in writer.chunks if cid not in keep]
    for cid in stale:
        chunk = writer.chunks.pop(cid)
        for rel in [chunk.file, *chunk.curves.values()]:
            (writer.root / rel).unlink(missing_ok=True)
    return len(stale)
