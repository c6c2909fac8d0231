"""Solo piano rendered from scores (``musika prepare piano``), labelled with MIDI note density.

Works come from the music21 corpus (Bach, Palestrina, Monteverdi, Beethoven, Mozart, Haydn, folk tunes, ...),
taken round-robin over its collections in an order fixed by the seed, interleaved with generated figuration
(``generated_fraction``) that spans sparse to dense playing; when the corpus runs out, only generated material
follows. Each work is merged onto one piano (GM program 0), tempo-scaled, given velocity variation, rendered by
FluidSynth (its own reverb/chorus off), given a light room reverb with pedalboard and peak-normalised. The
pipeline, labels and caching are training.data.scores'.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from training.data.score_render import check_soundfont, render_parts, score_parts, shape_notes
from training.data.scores import (
    LICENCES,
    Note,
    RenderedSource,
    WorkError,
    WorkSpec,
    corpus_works,
    onsets_from_notes,
    prepare_rendered,
)

__all__ = ["generated_notes", "onsets_from_notes", "prepare_piano", "render_work"]


def generated_notes(rng: np.random.Generator, seconds: float) -> list[Note]:
    """Random piano figuration, (start_s, end_s, pitch, velocity) per note, whose density changes by phrase.

    Each 2-bar phrase picks a subdivision (0.5..4 notes per beat) and a rest probability, so a piece spans
    roughly 0.5 to 12 onsets/s; a left hand adds a bass note and fifth every bar.
    """
    bpm = float(rng.uniform(66, 140))
    beat = 60.0 / bpm
    tonic = 48 + int(rng.integers(0, 12))
    scale = np.array([0, 2, 4, 5, 7, 9, 11] if rng.random() < 0.6 else [0, 2, 3, 5, 7, 8, 10])
    degree = 14
    notes: list[Note] = []
    t_bar = 0.1
    while t_bar < seconds:
        sub = float(rng.choice([0.5, 1, 2, 3, 4]))
        rest_p = float(rng.uniform(0.0, 0.35))
        step = beat / sub
        for bar in range(2):
            t0 = t_bar + bar * 4 * beat
            root = tonic + int(scale[int(rng.integers(0, 7))])
            for pitch in (root - 12, root - 5):
                notes.append((t0, t0 + 4 * beat * 0.95, pitch, 60))
            for k in range(int(round(4 * sub))):
                if rng.random() < rest_p:
                    continue
                degree = int(np.clip(degree + rng.integers(-2, 3), 7, 24))
                pitch = tonic + 12 * (degree // 7) + int(scale[degree % 7])
                start = t0 + k * step
                notes.append((start, start + step * 0.9, pitch, 80))
        t_bar += 8 * beat
    return [n for n in notes if n[0] < seconds]


def render_work(spec: WorkSpec, soundfont: str, max_seconds: float, tmp_dir: str) -> tuple[np.ndarray, np.ndarray]:
    """Render one work on one piano: (audio float32 (2, samples) at 44.1 kHz, MIDI onset times in s). Raises
    WorkError."""
    rng = np.random.default_rng([spec.seed, 3, spec.index])
    if spec.path is None:
        notes = generated_notes(rng, float(rng.uniform(0.5, 1.0) * max_seconds))
    else:
        notes = [n for part in score_parts(spec.path) for n in part]
    if not notes:
        raise WorkError("no notes")
    arr = shape_notes(notes, spec, rng, min(n[0] for n in notes), max_seconds)
    return render_parts([(0, arr)], spec, soundfont, tmp_dir), onsets_from_notes(arr[:, 0])


def prepare_piano(
    hours: float,
    seed: int,
    out: str | Path,
    chunk_seconds: float = 30.0,
    workers: int = 1,
    soundfont: str | Path | None = None,
    works: Sequence[str | Path] | None = None,
    generated_fraction: float = 0.2,
    max_work_seconds: float = 180.0,
    smooth_s: float = 1.0,
    progress: bool | None = None,
) -> dict[str, Any]:
    """Render ``hours`` of solo piano into the dataset ``out``; returns the result dict (training.data.report).

    works: score/MIDI files to use instead of the music21 corpus (in the given order). soundfont: a GM .sf2
    (default FluidR3_GM, else TimGM6mb). Deterministic for (seed, arguments); a re-run reuses rendered works.
    """
    sf2 = check_soundfont(soundfont)
    if works is None:
        pool = corpus_works(seed)
        sources = ("music21 corpus (round-robin over its collections)", "generated figuration")
    else:
        pool = [(Path(w).name, str(w)) for w in works]
        sources = (f"{len(pool)} score files given by the caller", "generated figuration")
    source = RenderedSource(
        kind="piano", render=render_work, sources=sources,
        description=f"Solo piano rendered with FluidSynth ({Path(sf2).name}, program 0, stereo) from scores, "
                    "with tempo scaling (0.8-1.3x), velocity variation and a light pedalboard room reverb.",
        licences=(LICENCES["corpus" if works is None else "generated"], LICENCES["generated"],
                  LICENCES.get(Path(sf2).name, f"soundfont {Path(sf2).name}: see its licence")),
    )  # fmt: skip
    cmd = f"musika prepare piano --hours {hours:g} --seed {seed} --out {out} --chunk-seconds {chunk_seconds:g}"
    return prepare_rendered(source, pool, hours, seed, out, sf2, cmd, chunk_seconds=chunk_seconds, workers=workers,
                            generated_fraction=generated_fraction, max_work_seconds=max_work_seconds,
                            smooth_s=smooth_s, progress=progress)  # fmt: skip
