"""What a ``musika prepare folder`` run found, and whether it can train a model: pure tallies and messages.

:class:`FolderTally` collects, file by file, the chunks kept, the files skipped (with the reason), per-file notes
and the chunks left without their label. :func:`refusal_reason` turns a tally into the one error a user sees
before any training starts (no usable audio, only silence, too little audio, too few labelled chunks), naming
what was found and what to do; :func:`unlabelled_section` lists the unlabelled chunks for DATASET.md.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from training.data.dataset import Chunk

MIN_MINUTES = 10.0  # least usable audio a folder must hold
MIN_LABELLED = 0.3  # least share of chunks that must carry the chosen label


@dataclass
class FolderTally:
    """Per-run totals; ``add`` takes one file's cache entry (see folder.py ``_prepare_file``)."""

    keep: set[str] = field(default_factory=set)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    notes: dict[str, list[str]] = field(default_factory=dict)
    unlabelled: dict[str, str] = field(default_factory=dict)  # chunk id -> why it has no label
    used_files: int = 0
    new: int = 0
    reused: int = 0

    def add(self, rel: str, entry: dict[str, Any]) -> None:
        if entry["status"] == "skipped":
            self.skipped.append((rel, entry["reason"]))
            return
        self.used_files += 1
        self.keep.update(entry["chunks"])
        self.unlabelled.update(entry.get("unlabelled", {}))
        if entry.get("notes"):
            self.notes[rel] = entry["notes"]


def refusal_reason(
    in_dir: Path,
    n_files: int,
    tally: FolderTally,
    chunks: list[Chunk],
    label: str,
    min_minutes: float,
    min_labelled: float,
) -> str | None:
    """The error message when the prepared folder cannot train a model, else None."""
    if not chunks:
        reasons = [why for _, why in tally.skipped]
        if reasons and all(why.startswith("silent") for why in reasons):
            return (
                f"all {n_files} audio files in {in_dir} are silent (peak below -80 dBFS); check that they play, "
                "or point at the folder that holds the music"
            )
        listed = "; ".join(f"{item}: {why}" for item, why in tally.skipped[:5])
        return (
            f"none of the {n_files} audio files in {in_dir} could be used ({listed}); "
            "check that they are audio files in a supported format"
        )
    minutes = sum(c.seconds for c in chunks) / 60.0
    if minutes < min_minutes:
        return (
            f"{in_dir} holds {minutes:.1f} minutes of usable audio ({_files(tally, n_files)}); a model needs at "
            f"least {min_minutes:g} minutes (an hour or more of one style works best). Add more audio to the "
            "folder, or pass --min-minutes 0 to prepare it anyway"
        )
    if label not in ("tempo", "density") or min_labelled <= 0:
        return None
    if label == "tempo":
        labelled = [c for c in chunks if "tempo" in c.labels]
        missing = [tally.unlabelled.get(c.id, "no tempo") for c in chunks if "tempo" not in c.labels]
        what, todo = "a confident tempo label", "use --label density or --label none, or add music with a steady beat"
    else:
        labelled = [c for c in chunks if c.labels.get("onset_rate", 0.0) > 0]
        missing = ["no onsets detected"] * (len(chunks) - len(labelled))
        what, todo = "any detected onsets", "use --label tempo or --label none, or add music with clear onsets"
    if len(labelled) >= min_labelled * len(chunks):
        return None
    why = ", ".join(f"{n} {reason}" for reason, n in Counter(missing).most_common(3))
    none_at_all = sorted({c.source for c in chunks} - {c.source for c in labelled})
    files = f"; files without any labelled chunk: {', '.join(none_at_all[:5])}" if none_at_all else ""
    return (
        f"only {len(labelled)} of {len(chunks)} chunks ({100 * len(labelled) / len(chunks):.0f} %) in {in_dir} "
        f"have {what}; "
        f"the {label} condition needs at least {100 * min_labelled:.0f} % ({why}{files}). To train on this "
        f"folder, {todo}, or lower --min-labelled"
    )


def _files(tally: FolderTally, n_files: int) -> str:
    text = f"{tally.used_files} of {n_files} audio files used"
    if tally.skipped:
        names = ", ".join(item for item, _ in tally.skipped[:3]) + (" ..." if len(tally.skipped) > 3 else "")
        text += f", {len(tally.skipped)} unreadable or silent: {names}"
    return text


def unlabelled_section(label: str, chunks: Iterable[Chunk], unlabelled: dict[str, str]) -> tuple[str, list[str]]:
    """(title, lines) for DATASET.md: each chunk without its ``label``, with its place in the file and why."""
    starts: dict[str, float] = {}
    lines = []
    for c in sorted(chunks, key=lambda c: (c.source, c.id)):
        start = starts.get(c.source, 0.0)
        starts[c.source] = start + c.seconds
        if c.id in unlabelled:
            conf = c.labels.get(f"{label}_confidence")
            extra = f", confidence {conf:.2f}" if conf is not None else ""
            lines.append(f"`{c.source}` {_clock(start)}-{_clock(start + c.seconds)} (`{c.id}`): {unlabelled[c.id]}"
                         f"{extra}")
    title = f"Chunks without a {label} label ({len(lines)}; trained with the condition dropped)"
    return title, lines


def _clock(seconds: float) -> str:
    return f"{int(seconds // 60)}:{int(seconds % 60):02d}"
