"""Datasets rendered from scores with FluidSynth: the pipeline behind ``musika prepare piano`` and ``classical``.

A data source supplies a render function, ``render(spec, soundfont, max_seconds, tmp_dir) -> (audio, onsets)``
(audio float32 (2, samples) at 44.1 kHz, MIDI onset times in s; raises :class:`WorkError`), and
:func:`prepare_rendered` does the rest: works from the music21 corpus taken round-robin over its collections in a
seed-fixed order, interleaved with generated material, rendered in worker processes, cut into chunks, labelled with
MIDI note density, cached so that a re-run reuses finished works, split by work into train/held-out.

Label: curve ``density``, onsets per second from the MIDI (notes starting within 30 ms count as one onset, as a
chord is heard as one), Gaussian-smoothed, per latent step (44100/4096 Hz); scalar ``onset_rate`` per chunk.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from generator.runtime.model_config import SAMPLE_RATE, SAMPLES_PER_LATENT
from training.analysis import density_curve_from_onsets
from training.data.chunking import RunCache, assign_splits, chunk_spans, drop_stale, steps_for
from training.data.dataset import DatasetError, DatasetWriter
from training.data.report import dataset_stats, finish_dataset

logger = logging.getLogger(__name__)

SOUNDFONTS = ("/usr/share/sounds/sf2/FluidR3_GM.sf2", "/usr/share/sounds/sf2/TimGM6mb.sf2")
SCORE_SUFFIXES = (".mxl", ".xml", ".musicxml", ".krn", ".abc", ".mid", ".midi")
SKIP_COLLECTIONS = ("demos", "theoryExercises", "leadSheet")
CHORD_WINDOW_S = 0.03
MAX_CONSECUTIVE_FAILURES = 25
LABEL_SPECS = {
    "density": {
        "kind": "curve",
        "unit": "onsets/s",
        "description": "note onsets per second from the MIDI (notes "
        "within 30 ms count once), Gaussian-smoothed, per latent step (44100/4096 Hz)",
    },
    "onset_rate": {"kind": "scalar", "unit": "onsets/s", "description": "MIDI onsets per second in the chunk"},
}
LICENCES = {
    "corpus": "music21 corpus works: freely distributable scores shipped with music21 (BSD-3 toolkit; works public "
    "domain, encodings licensed to or freely licensed for music21, see music21.org/music21docs/about)",
    "generated": "generated figuration: made by this program, no third-party rights",
    "FluidR3_GM.sf2": "FluidR3_GM soundfont (Frank Wen): MIT licence",
    "TimGM6mb.sf2": "TimGM6mb soundfont (Tim Brechbill): GPL-2.0",
}

Note = tuple[float, float, int, int]  # start s, end s, MIDI pitch, velocity


class WorkError(DatasetError):
    """One work could not be parsed or rendered; the run skips it and lists the reason."""


@dataclass(frozen=True)
class WorkSpec:
    """Everything needed to render one work, fixed by (seed, index): picklable for worker processes."""

    index: int
    source: str  # "bach/bwv347.mxl", a file path, or "generated/00007"
    path: str | None  # score file; None for generated material
    seed: int
    tempo_scale: float
    velocity_scale: float
    velocity_jitter: float
    room_size: float
    wet_level: float


Render = Callable[[WorkSpec, str, float, str], tuple[np.ndarray, np.ndarray]]


def corpus_works(seed: int, collections: Sequence[str] | None = None) -> list[tuple[str, str]]:
    """(source name, path) of music21 corpus works, round-robin over collections in a seed-fixed order; only the
    named ``collections`` (e.g. "bach") when given."""
    from music21 import corpus

    groups: dict[str, list[Path]] = {}
    for p in corpus.getPaths():
        parts = p.parts[p.parts.index("corpus") + 1 :]
        if p.suffix.lower() not in SCORE_SUFFIXES or parts[0] in SKIP_COLLECTIONS:
            continue
        if collections is not None and parts[0] not in collections:
            continue
        groups.setdefault(parts[0], []).append(p)
    rng = np.random.default_rng([seed, 1])
    names = sorted(groups)
    rng.shuffle(names)
    queues = []
    for name in names:
        paths = sorted(groups[name])
        rng.shuffle(paths)
        queues.append(deque(paths))
    out = []
    while any(queues):
        for q in queues:
            if q:
                p = q.popleft()
                out.append(("/".join(p.parts[p.parts.index("corpus") + 1 :]), str(p)))
    return out


def work_specs(seed: int, works: Sequence[tuple[str, str]], generated_fraction: float) -> Iterator[WorkSpec]:
    """Endless stream of specs: ``works`` interleaved with generated pieces, then generated pieces only."""
    if not 0.0 <= generated_fraction <= 1.0:
        raise DatasetError(f"generated_fraction must be within 0..1, got {generated_fraction}")
    it = iter(works)
    index = 0
    while True:
        is_gen = int((index + 1) * generated_fraction) > int(index * generated_fraction)
        item = None if is_gen else next(it, None)
        rng = np.random.default_rng([seed, 2, index])
        source, path = item if item is not None else (f"generated/{index:05d}", None)
        yield WorkSpec(
            index=index, source=source, path=path, seed=seed,
            tempo_scale=1.0 if path is None else float(rng.uniform(0.8, 1.3)),
            velocity_scale=float(rng.uniform(0.65, 1.1)), velocity_jitter=float(rng.uniform(3.0, 10.0)),
            room_size=float(rng.uniform(0.12, 0.35)), wet_level=float(rng.uniform(0.06, 0.16)),
        )  # fmt: skip
        index += 1


def onsets_from_notes(starts: np.ndarray, window_s: float = CHORD_WINDOW_S) -> np.ndarray:
    """Sorted distinct onset times (s): a note within ``window_s`` of the previous onset joins it (a chord)."""
    out: list[float] = []
    for t in np.sort(np.asarray(starts, dtype=float)):
        if not out or t - out[-1] > window_s:
            out.append(float(t))
    return np.asarray(out)


@dataclass(frozen=True)
class RenderedSource:
    """What one rendered data source adds to the pipeline: its dataset kind, chunk-id prefix, render function,
    the DATASET.md description and source/licence lines."""

    kind: str
    render: Render
    description: str
    sources: tuple[str, ...]
    licences: tuple[str, ...]


def _needed(entry: dict[str, Any], remaining_s: float) -> list[str]:
    """The leading chunks of a cached work that fill ``remaining_s`` seconds."""
    ids = []
    for cid, s in zip(entry["chunks"], entry["seconds"], strict=True):
        if remaining_s <= 0:
            break
        ids.append(cid)
        remaining_s -= s
    return ids


def _render_safe(render: Render, spec: WorkSpec, soundfont: str, max_seconds: float, tmp_dir: str) -> Any:
    """The render's result, or its WorkError as a value (worker processes hand it back)."""
    try:
        return render(spec, soundfont, max_seconds, tmp_dir)
    except WorkError as exc:
        return exc


def prepare_rendered(
    source: RenderedSource,
    pool: Sequence[tuple[str, str]],
    hours: float,
    seed: int,
    out: str | Path,
    soundfont: str,
    command: str,
    chunk_seconds: float = 30.0,
    workers: int = 1,
    generated_fraction: float = 0.2,
    max_work_seconds: float = 180.0,
    smooth_s: float = 1.0,
    progress: bool | None = None,
) -> dict[str, Any]:
    """Render ``hours`` of ``source`` from the (name, path) works in ``pool`` into the dataset ``out``; returns the
    result dict (training.data.report). Deterministic for (seed, arguments); a re-run reuses rendered works."""
    from tqdm import tqdm

    started = time.monotonic()
    out = Path(out)
    if not hours > 0:
        raise DatasetError(f"hours must be > 0, got {hours}; e.g. --hours 1")
    if not 0.0 <= generated_fraction <= 1.0:
        raise DatasetError(f"generated_fraction must be within 0..1, got {generated_fraction}")
    writer = DatasetWriter(out, kind=source.kind, seed=seed, meta={
        "description": source.description, "labels": LABEL_SPECS, "sources": list(source.sources),
        "licences": list(dict.fromkeys(source.licences)),
    })  # fmt: skip
    cache = RunCache(out)
    chunk_steps, min_steps = steps_for(chunk_seconds), steps_for(min(5.0, chunk_seconds))
    settings = {"soundfont": Path(soundfont).name, "chunk_steps": chunk_steps, "max_work_seconds": max_work_seconds,
                "smooth_s": smooth_s, "generated_fraction": generated_fraction}  # fmt: skip
    tmp_dir = out / ".render-tmp"
    tmp_dir.mkdir(parents=True, exist_ok=True)
    target = hours * 3600.0
    total = 0.0
    keep: set[str] = set()
    skipped: list[tuple[str, str]] = []
    failures = 0
    new = reused = 0
    specs = work_specs(seed, pool, generated_fraction)
    executor = ProcessPoolExecutor(workers) if workers > 1 else None
    window: deque[tuple[WorkSpec, dict[str, Any] | None, Future | None]] = deque()
    completed = False
    bar = tqdm(total=round(target), unit="s", desc=f"prepare {source.kind}",
               disable=None if progress is None else not progress)  # fmt: skip
    try:
        while total < target:
            while len(window) < max(1, 2 * workers):
                spec = next(specs)
                key = {"source": spec.source, "seed": seed, **settings}
                entry = cache.lookup(f"{spec.index:05d}", key)  # chunk files are checked when used
                fut = None
                if entry is None and executor is not None:
                    fut = executor.submit(_render_safe, source.render, spec, soundfont, max_work_seconds, str(tmp_dir))
                window.append((spec, entry, fut))
            spec, entry, fut = window.popleft()
            name = f"{spec.index:05d}"
            key = {"source": spec.source, "seed": seed, **settings}
            if entry is not None and entry["status"] == "skipped":
                skipped.append((spec.source, entry["reason"]))
                continue
            if entry is not None and not all(writer.has(c) for c in _needed(entry, target - total)):
                entry = None  # some chunk this run needs is gone: render again
            fresh = entry is None
            if entry is None:
                result = (fut.result() if fut is not None
                          else _render_safe(source.render, spec, soundfont, max_work_seconds, str(tmp_dir)))
                if isinstance(result, WorkError):
                    logger.info("skipping %s: %s", spec.source, result)
                    skipped.append((spec.source, str(result)))
                    cache.store(name, key, status="skipped", reason=str(result))
                    failures += 1
                    if failures >= MAX_CONSECUTIVE_FAILURES:
                        raise DatasetError(
                            f"{failures} works in a row failed to render (last: {spec.source}: {result}); "
                            "check the soundfont and `fluidsynth --version`"
                        )
                    continue
                failures = 0
                entry = _write_work(writer, source.kind, spec, *result, chunk_steps, min_steps, smooth_s)
                cache.store(name, key, **entry)
            for cid, s in zip(entry["chunks"], entry["seconds"], strict=True):
                if total >= target:
                    break
                keep.add(cid)
                total += s
                new, reused = (new + 1, reused) if fresh else (new, reused + 1)
                bar.update(round(min(total, target)) - bar.n)
        completed = True
    finally:
        bar.close()
        if not completed:  # keep the finished works for the next run
            writer.meta["complete"] = False
            writer.finish({})
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)
        shutil.rmtree(tmp_dir, ignore_errors=True)
        cache.save()
    drop_stale(writer, keep)
    writer.meta["complete"] = True
    splits = assign_splits(sorted({c.source for c in writer.chunks.values()}))
    for c in writer.chunks.values():
        c.split = splits[c.source]
    stats = dataset_stats(out, writer.chunks.values(), scalars=["onset_rate"], curves=["density"])
    n_gen = sum(1 for c in writer.chunks.values() if c.source.startswith("generated/"))
    notes = [f"{n_gen} of {len(writer.chunks)} chunks are generated figuration", f"soundfont: {soundfont}"]
    return finish_dataset(writer, stats=stats, started=started, new_chunks=new, reused_chunks=reused,
                          skipped=skipped, notes=notes, command=command)  # fmt: skip


def _write_work(writer: DatasetWriter, kind: str, spec: WorkSpec, audio: np.ndarray, onsets: np.ndarray,
                chunk_steps: int, min_steps: int, smooth_s: float) -> dict[str, Any]:
    """Cut one rendered work into labelled chunks; the cache entry listing them."""
    spans = chunk_spans(audio.shape[1], chunk_steps, min_steps)
    padded = np.pad(audio, ((0, 0), (0, spans[-1][1] - audio.shape[1])))
    curve = density_curve_from_onsets(onsets, padded.shape[1] / SAMPLE_RATE, smooth_s=smooth_s)
    ids, secs = [], []
    for k, (a, b) in enumerate(spans):
        cid = f"{kind}-{spec.index:05d}-{k:03d}"
        n_on = np.sum((onsets >= a / SAMPLE_RATE) & (onsets < b / SAMPLE_RATE))
        steps = slice(a // SAMPLES_PER_LATENT, b // SAMPLES_PER_LATENT)
        writer.add(cid, padded[:, a:b], source=spec.source, curves={"density": curve[steps]},
                   labels={"onset_rate": n_on / ((b - a) / SAMPLE_RATE)})  # fmt: skip
        ids.append(cid)
        secs.append((b - a) / SAMPLE_RATE)
    return {"status": "ok", "chunks": ids, "seconds": secs}
