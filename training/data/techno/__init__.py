"""Procedural techno corpus: `musika prepare techno --hours H --seed N --out DIR`.

Stages: patterns (pure planning from a seed) -> synth/samples (voices) -> mix (pedalboard) -> render (one track,
chunk labels) -> here (tracks -> dataset directory with DATASET.md). Track i of seed N is planned from
``np.random.default_rng([N, i])``, so a seed always gives the same tracks, and chunks already on disk are reused.
"""

from __future__ import annotations

import json
import logging
import math
import time
from concurrent.futures import ProcessPoolExecutor
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from generator.atomic import write_json
from training.data.dataset import Chunk, DatasetWriter
from training.data.techno.card import dataset_card
from training.data.techno.patterns import TrackPlan, plan_track
from training.data.techno.render import chunk_count, chunks, render_track
from training.data.techno.samples import SampleLibrary
from training.errors import TrainingError

logger = logging.getLogger(__name__)

KIND = "techno"
MIN_TRACK_S, MAX_TRACK_S = 90.0, 240.0


class TechnoConfigError(TrainingError, ValueError):
    """An argument of prepare_techno is out of range."""


def _check(hours: float, chunk_seconds: float, workers: int) -> None:
    if not (isinstance(hours, (int, float)) and math.isfinite(hours) and hours > 0):
        raise TechnoConfigError(f"--hours must be a positive number of hours, got {hours!r}; e.g. --hours 2")
    if not (isinstance(chunk_seconds, (int, float)) and 1.0 <= chunk_seconds <= MIN_TRACK_S / 2):
        raise TechnoConfigError(
            f"chunk_seconds must be between 1 and {MIN_TRACK_S / 2:g} s, got {chunk_seconds!r}; the default is 30"
        )
    if not (isinstance(workers, int) and workers >= 1):
        raise TechnoConfigError(f"--workers must be an integer >= 1, got {workers!r}; use 1 on a busy machine")


def plan_corpus(hours: float, seed: int, chunk_seconds: float) -> list[TrackPlan]:
    """Plans of all tracks (pure): tracks are added until their whole chunks reach *hours*.

    The last track is shortened to what is still needed (its id names its length, so a longer re-run
    never mistakes its chunks for another track's).
    """
    plans: list[TrackPlan] = []
    need = hours * 3600.0
    i = 0
    while need > 0:
        hi = min(MAX_TRACK_S, max(need + chunk_seconds * 1.5, 2 * chunk_seconds))
        plan = plan_track(np.random.default_rng([seed, i]), "", min(MIN_TRACK_S, hi), hi)
        plan.track_id = f"techno-s{seed}-t{i:05d}-b{plan.bars}"
        n = chunk_count(plan, chunk_seconds)
        if n > 0:
            plans.append(plan)
            need -= n * chunk_seconds
        i += 1
    return plans


def chunk_ids(plan: TrackPlan, chunk_seconds: float) -> list[str]:
    return [f"{plan.track_id}-c{j:03d}" for j in range(chunk_count(plan, chunk_seconds))]


@lru_cache(maxsize=1)
def _library() -> SampleLibrary:
    return SampleLibrary()


def _render_and_write(
    plan: TrackPlan, root: str, chunk_seconds: float
) -> tuple[list[Chunk], dict[str, Any], tuple[float, float]]:
    """Render one track and write its chunks (also in a worker process). Returns (chunks, record, (wall s, CPU s))."""
    t0, c0 = time.perf_counter(), time.process_time()
    rendered = render_track(plan, _library())
    render_s, cpu_s = time.perf_counter() - t0, time.process_time() - c0
    writer = DatasetWriter(root, KIND)
    written = [
        writer.add(cid, audio, source=plan.track_id, labels=labels)
        for cid, (audio, labels) in zip(chunk_ids(plan, chunk_seconds), chunks(plan, rendered.audio, chunk_seconds),
                                        strict=True)
    ]
    record = {"tempo": plan.tempo, "bars": plan.bars, "seconds": plan.seconds, "styles": plan.styles,
              "sources": rendered.sources, "kits": rendered.kits,
              "sections": [[s.start_bar, s.bars, s.kind, sorted(s.layers)] for s in plan.sections]}
    return written, record, (render_s, cpu_s)


def _save_tracks(out: Path, tracks: dict[str, dict[str, Any]]) -> None:
    write_json(out / "tracks.json", tracks, indent=1)


def prepare_techno(hours: float, seed: int, out: Path, chunk_seconds: float = 30.0, workers: int = 1) -> dict:
    """Write a techno dataset of at least *hours* hours to *out*; returns the summary (also in dataset.json).

    Re-running on the same directory reuses finished chunks; chunks of tracks no longer in the plan are dropped
    from the manifest. workers > 1 renders tracks in that many processes.
    """
    _check(hours, chunk_seconds, workers)
    out = Path(out)
    start = time.perf_counter()
    plans = plan_corpus(hours, seed, chunk_seconds)
    writer = DatasetWriter(out, KIND, seed=seed)
    tracks_file = out / "tracks.json"
    tracks: dict[str, dict[str, Any]] = json.loads(tracks_file.read_text()) if tracks_file.exists() else {}
    todo = [p for p in plans if not (p.track_id in tracks and all(writer.has(c) for c in chunk_ids(p, chunk_seconds)))]
    reused = sum(len(chunk_ids(p, chunk_seconds)) for p in plans) - sum(len(chunk_ids(p, chunk_seconds)) for p in todo)
    render_s = cpu_s = audio_s = 0.0
    bar = tqdm(total=round(sum(p.seconds for p in todo)), unit="s", desc="techno", disable=None)
    try:
        if workers == 1:
            results = (_render_and_write(p, str(out), chunk_seconds) for p in todo)
            pool = None
        else:
            pool = ProcessPoolExecutor(max_workers=workers)
            results = pool.map(_render_and_write, todo, [str(out)] * len(todo), [chunk_seconds] * len(todo))
        for plan, (written, record, secs) in zip(todo, results, strict=True):
            for c in written:
                writer.chunks[c.id] = c
            tracks[plan.track_id] = record
            _save_tracks(out, tracks)
            writer.finish()  # checkpoint: an interrupted run keeps the tracks finished so far
            render_s += secs[0]
            cpu_s += secs[1]
            audio_s += plan.seconds
            bar.update(round(plan.seconds))
    finally:
        bar.close()
        if workers > 1 and pool is not None:
            pool.shutdown(cancel_futures=True)
    wanted = {cid for p in plans for cid in chunk_ids(p, chunk_seconds)}
    for cid in [c for c in writer.chunks if c not in wanted]:
        del writer.chunks[cid]
    tracks = {p.track_id: tracks[p.track_id] for p in plans}
    _save_tracks(out, tracks)
    chunk_list = sorted(writer.chunks.values(), key=lambda c: c.id)
    tempos = [p.tempo for p in plans]
    kits = {k: v for r in tracks.values() for k, v in r["kits"].items()}
    wall = time.perf_counter() - start
    stats = {"tempo_bpm": {"min": min(tempos), "mean": float(np.mean(tempos)), "max": max(tempos)},
             "kick_fraction_mean": float(np.mean([c.labels.get("kick_fraction", 1.0) for c in chunk_list]))}
    writer.meta.update({"labels": ["tempo", "first_beat_s", "beats_per_bar", "first_downbeat_s", "kick_fraction"],
                        "sources": len(plans), "licences": kits, "chunk_seconds": chunk_seconds})
    info = writer.finish(stats)
    (out / "DATASET.md").write_text(dataset_card(chunk_list, tracks, seed, hours, chunk_seconds))
    summary = {
        "kind": "techno", "out": str(out), "tracks": len(plans), "chunks": len(chunk_list), "chunks_reused": reused,
        "chunks_rendered": len(chunk_list) - reused, "new_chunks": len(chunk_list) - reused, "reused_chunks": reused,
        "hours": info["hours"], "hours_by_split": info["hours_by_split"],
        "tempo_bpm": stats["tempo_bpm"], "kits": kits, "rendered_audio_s": audio_s, "render_s": render_s,
        "wall_s": wall, "render_cpu_s": cpu_s, "x_realtime_render": audio_s / render_s if render_s else None,
        "x_realtime_render_cpu": audio_s / cpu_s if cpu_s else None,
        "x_realtime_wall": audio_s / wall if audio_s else None,
    }
    logger.info("techno dataset: %s", format_summary(summary))
    return summary


def format_summary(s: dict) -> str:
    """One paragraph for the CLI to print at the end."""
    speed = f", rendered at {s['x_realtime_wall']:.0f}x real time" if s.get("x_realtime_wall") else ""
    return (
        f"{s['out']}: {s['tracks']} tracks, {s['chunks']} chunks ({s['chunks_reused']} reused), "
        f"{s['hours']:.2f} h (train {s['hours_by_split']['train']:.2f} h, held-out "
        f"{s['hours_by_split']['heldout']:.2f} h), tempo {s['tempo_bpm']['min']:.1f}-{s['tempo_bpm']['max']:.1f} "
        f"BPM, {len(s['kits'])} drum kits{speed}; see DATASET.md"
    )


__all__ = ["TechnoConfigError", "format_summary", "plan_corpus", "prepare_techno"]
