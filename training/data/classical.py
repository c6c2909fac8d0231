"""Chamber and orchestral music rendered from scores (``musika prepare classical``), labelled with note density.

Works come from the polyphonic collections of the music21 corpus (Palestrina, Bach, Monteverdi, the Trecento,
Beethoven, Mozart, Haydn, Josquin, ...), round-robin in a seed-fixed order. Each work keeps its parts: the seed
picks an ensemble (string quartet, string orchestra, wind quintet, mixed chamber orchestra, strings and organ) and
its instruments take the parts from the highest to the lowest, each part moved by octaves into its instrument's
range. FluidSynth renders them (General MIDI programs), then the room and normalisation of
training.data.scores. Labels as there (MIDI note density).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from training.data.score_render import check_soundfont, render_parts, score_parts, shape_notes
from training.data.scores import (
    LICENCES,
    RenderedSource,
    WorkError,
    WorkSpec,
    corpus_works,
    onsets_from_notes,
    prepare_rendered,
)

# polyphonic art music in the music21 corpus (folk-tune and lead-sheet collections left out)
COLLECTIONS = ("palestrina", "bach", "trecento", "monteverdi", "beethoven", "mozart", "haydn", "josquin",
               "schumann_robert", "schumann_clara", "corelli", "cpebach", "handel", "schubert", "verdi", "weber",
               "luca", "lusitano", "ciconia")  # fmt: skip

# General MIDI program and playable range (lowest, highest MIDI pitch) of each instrument
INSTRUMENTS: dict[str, tuple[int, int, int]] = {
    "violin": (40, 55, 100), "viola": (41, 48, 88), "cello": (42, 36, 76), "contrabass": (43, 28, 60),
    "strings": (48, 36, 96), "slow strings": (49, 36, 96), "flute": (73, 60, 96), "oboe": (68, 58, 91),
    "clarinet": (71, 50, 91), "bassoon": (70, 34, 72), "horn": (60, 41, 77), "organ": (19, 36, 96),
}  # fmt: skip

# ensembles, instruments from the highest part down; a work with more parts repeats the last instrument
ENSEMBLES: dict[str, tuple[str, ...]] = {
    "string quartet": ("violin", "violin", "viola", "cello"),
    "string orchestra": ("strings", "strings", "slow strings", "contrabass"),
    "wind quintet": ("flute", "oboe", "clarinet", "horn", "bassoon"),
    "chamber orchestra": ("violin", "flute", "viola", "bassoon", "cello"),
    "strings and organ": ("violin", "organ", "viola", "cello"),
}


def fit_range(arr: np.ndarray, low: int, high: int) -> np.ndarray:
    """The part moved by whole octaves so its median pitch sits inside [low, high], then single notes still outside
    folded in by octaves."""
    out = arr.copy()
    median = float(np.median(out[:, 2]))
    centre = (low + high) / 2
    out[:, 2] += 12 * round((centre - median) / 12) if not low <= median <= high else 0
    while (out[:, 2] < low).any():
        out[:, 2] = np.where(out[:, 2] < low, out[:, 2] + 12, out[:, 2])
    while (out[:, 2] > high).any():
        out[:, 2] = np.where(out[:, 2] > high, out[:, 2] - 12, out[:, 2])
    return out


def orchestrate(n_parts: int, ensemble: str) -> list[str]:
    """Instrument names for parts ordered from highest to lowest."""
    names = ENSEMBLES[ensemble]
    return [names[min(i, len(names) - 1)] for i in range(n_parts)]


def render_work(spec: WorkSpec, soundfont: str, max_seconds: float, tmp_dir: str) -> tuple[np.ndarray, np.ndarray]:
    """Render one work with its parts on an ensemble: (audio float32 (2, samples) at 44.1 kHz, MIDI onset times in
    s). Raises WorkError."""
    if spec.path is None:
        raise WorkError("classical renders corpus works only (no generated material)")
    rng = np.random.default_rng([spec.seed, 4, spec.index])
    parts = score_parts(spec.path)
    if not parts:
        raise WorkError("no notes")
    ensemble = sorted(ENSEMBLES)[int(rng.integers(0, len(ENSEMBLES)))]
    origin = min(n[0] for part in parts for n in part)
    shaped = [shape_notes(p, spec, rng, origin, max_seconds) for p in parts]
    shaped = [a for a in shaped if len(a)]
    if not shaped:
        raise WorkError("no notes within the first max_work_seconds")
    shaped.sort(key=lambda a: -float(np.median(a[:, 2])))
    voiced = []
    for arr, name in zip(shaped, orchestrate(len(shaped), ensemble), strict=True):
        program, low, high = INSTRUMENTS[name]
        voiced.append((program, fit_range(arr, low, high)))
    starts = np.concatenate([a[:, 0] for _, a in voiced])
    return render_parts(voiced, spec, soundfont, tmp_dir), onsets_from_notes(starts)


def prepare_classical(
    hours: float,
    seed: int,
    out: str | Path,
    chunk_seconds: float = 30.0,
    workers: int = 1,
    soundfont: str | Path | None = None,
    works: Sequence[str | Path] | None = None,
    max_work_seconds: float = 180.0,
    progress: bool | None = None,
) -> dict[str, Any]:
    """Render ``hours`` of chamber/orchestral music into the dataset ``out``; returns the result dict
    (training.data.report). works: score/MIDI files instead of the corpus. Deterministic for (seed, arguments)."""
    sf2 = check_soundfont(soundfont)
    if works is None:
        pool = corpus_works(seed, COLLECTIONS)
        sources: tuple[str, ...] = (f"music21 corpus: {', '.join(COLLECTIONS)} (round-robin)",)
    else:
        pool = [(Path(w).name, str(w)) for w in works]
        sources = (f"{len(pool)} score files given by the caller",)
    ensembles = "; ".join(f"{k}: {', '.join(v)}" for k, v in ENSEMBLES.items())
    source = RenderedSource(
        kind="classical", render=render_work, sources=sources,
        description=f"Chamber and orchestral music rendered with FluidSynth ({Path(sf2).name}) from scores, each "
                    f"part on its own instrument ({ensembles}),"
                    " with tempo scaling (0.8-1.3x), velocity variation and a light pedalboard room reverb.",
        licences=(LICENCES["corpus"] if works is None else "scores given by the caller: see their licences",
                  LICENCES.get(Path(sf2).name, f"soundfont {Path(sf2).name}: see its licence")),
    )  # fmt: skip
    cmd = f"musika prepare classical --hours {hours:g} --seed {seed} --out {out} --chunk-seconds {chunk_seconds:g}"
    return prepare_rendered(source, pool, hours, seed, out, sf2, cmd, chunk_seconds=chunk_seconds, workers=workers,
                            generated_fraction=0.0, max_work_seconds=max_work_seconds, progress=progress)
