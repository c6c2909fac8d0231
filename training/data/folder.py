"""User audio: any folder of wav/flac/mp3/ogg/aiff -> a training dataset (``musika prepare folder``).

Every file is decoded (soundfile, pedalboard as fallback), made stereo (mono is duplicated, more than two
channels keep the first two), resampled to 44.1 kHz with soxr (HQ), cut into chunks of whole latent steps and
labelled automatically (training.data.folder_labels): ``tempo`` (per chunk, agreed over the track, only where
confident), ``density`` (onsets per second) or ``none``.

Files that cannot be decoded are skipped and listed with the reason. A folder is refused with
:class:`FolderError`, before anything is trained on it, when it holds no usable audio, less than
``min_minutes`` of it, or (``--label tempo``/``density``) when fewer than ``min_labelled`` of the chunks carry
the label. Re-running on the same folder and output reuses every file whose size, mtime and settings are
unchanged.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from generator.runtime.model_config import SAMPLE_RATE, SAMPLES_PER_LATENT
from training.data.chunking import RunCache, assign_splits, chunk_id, chunk_spans, drop_stale, steps_for
from training.data.dataset import DatasetError, DatasetWriter
from training.data.folder_checks import MIN_LABELLED, MIN_MINUTES, FolderTally, refusal_reason, unlabelled_section
from training.data.folder_labels import LABEL_SPECS, LABELS, TEMPO_LABELLER, label_chunks
from training.data.report import dataset_stats, finish_dataset

logger = logging.getLogger(__name__)

AUDIO_EXTENSIONS = (".wav", ".wave", ".flac", ".mp3", ".ogg", ".oga", ".opus", ".aif", ".aiff", ".aifc")
SILENCE_PEAK = 10 ** (-80 / 20)  # -80 dBFS


class FolderError(DatasetError):
    """The input folder is missing, empty, or holds no readable audio."""


class AudioReadError(DatasetError):
    """One audio file cannot be decoded (corrupt, empty, unsupported, silent)."""


@dataclass
class LoadedAudio:
    """Decoded file: ``audio`` float32 (2, samples) at 44.1 kHz, plus what was done to get there."""

    audio: np.ndarray
    source_sr: int
    source_channels: int
    notes: list[str] = field(default_factory=list)


def _decode(path: Path) -> tuple[np.ndarray, int, list[str]]:
    """(frames, channels) float32 and the sample rate; soundfile first, pedalboard for what it cannot read."""
    notes: list[str] = []
    try:
        data, sr = sf.read(path, dtype="float32", always_2d=True)
    except Exception as sf_exc:  # libsndfile raises several types for unreadable input
        try:
            from pedalboard.io import AudioFile

            with AudioFile(str(path)) as fh:
                sr = int(fh.samplerate)
                data = fh.read(fh.frames).T.astype(np.float32)
        except Exception as pb_exc:
            raise AudioReadError(f"not decodable as audio (soundfile: {sf_exc}; pedalboard: {pb_exc})") from pb_exc
        return data, sr, notes
    try:  # a header promising more frames than the file holds means the file was cut short
        from pedalboard.io import AudioFile

        with AudioFile(str(path)) as fh:
            promised = int(fh.frames)
        if promised > 1.1 * data.shape[0] + 4096:
            kept = data.shape[0] / sr
            notes.append(f"truncated: header promises {promised / sr:.1f} s, kept the {kept:.1f} s present")
    except Exception:  # the check is advisory; soundfile already decoded the audio
        pass
    return data, int(sr), notes


def load_audio(path: str | Path) -> LoadedAudio:
    """Decode ``path`` to float32 (2, samples) at 44.1 kHz; raises AudioReadError with the reason."""
    import soxr

    path = Path(path)
    if path.stat().st_size == 0:
        raise AudioReadError("empty file (0 bytes)")
    data, sr, notes = _decode(path)
    if data.shape[0] == 0:
        raise AudioReadError("no audio frames in the file")
    if not np.all(np.isfinite(data)):
        notes.append("non-finite samples replaced by 0")
        data = np.nan_to_num(data, nan=0.0, posinf=0.0, neginf=0.0)
    channels = data.shape[1]
    if channels == 1:
        data = np.repeat(data, 2, axis=1)
        notes.append("mono, upmixed to stereo")
    elif channels > 2:
        data = data[:, :2]
        notes.append(f"{channels} channels, kept the first two")
    if sr != SAMPLE_RATE:
        data = soxr.resample(data, sr, SAMPLE_RATE, quality="HQ").astype(np.float32)
        notes.append(f"resampled {sr} Hz -> {SAMPLE_RATE} Hz")
    peak = float(np.max(np.abs(data))) if data.size else 0.0
    if peak < SILENCE_PEAK:
        raise AudioReadError(f"silent (peak {20 * math.log10(max(peak, 1e-12)):.0f} dBFS)")
    if peak > 1.0:
        data = data / peak
        notes.append(f"peak {peak:.2f} above full scale, scaled down")
    return LoadedAudio(np.ascontiguousarray(data.T), sr, channels, notes)


def find_audio_files(in_dir: Path, exclude: Path | None = None) -> tuple[list[Path], list[Path]]:
    """(audio files by extension, other files), both sorted, recursing; files under ``exclude`` are ignored."""
    audio, other = [], []
    for p in sorted(in_dir.rglob("*")):
        if not p.is_file() or p.name.startswith("."):
            continue
        if exclude is not None and p.resolve().is_relative_to(exclude):
            continue
        (audio if p.suffix.lower() in AUDIO_EXTENSIONS else other).append(p)
    return audio, other


def _progress_bar(files: list[Path], progress: bool | None) -> Any:
    from tqdm import tqdm

    return tqdm(files, desc="prepare folder", unit="file", disable=None if progress is None else not progress)


def _prepare_file(
    path: Path,
    rel: str,
    writer: DatasetWriter,
    label: str,
    steps: tuple[int, int],
    bpm_range: tuple[float, float],
    smooth_s: float,
) -> dict[str, Any]:
    """Decode, chunk, label and write one file; returns its cache entry (status, chunks, notes, unlabelled)."""
    try:
        loaded = load_audio(path)
    except (AudioReadError, OSError) as exc:
        logger.info("skipping %s: %s", rel, exc)
        return {"status": "skipped", "reason": str(exc)}
    chunk_steps, min_steps = steps
    n = loaded.audio.shape[1]
    spans = chunk_spans(n, chunk_steps, min_steps)
    if n < chunk_steps * SAMPLES_PER_LATENT:
        loaded.notes.append(f"short ({n / SAMPLE_RATE:.2f} s): kept as one short chunk")
    padded = np.pad(loaded.audio, ((0, 0), (0, spans[-1][1] - n)))
    ids, unlabelled, silent = [], {}, 0
    for k, ((start, stop), item) in enumerate(
        zip(spans, label_chunks(loaded.audio, SAMPLE_RATE, spans, label, bpm_range, smooth_s), strict=True)
    ):
        piece = padded[:, start:stop]
        if float(np.max(np.abs(piece))) < SILENCE_PEAK:
            silent += 1
            continue
        cid = chunk_id("", rel, k)
        writer.add(cid, piece, source=rel, labels=item.labels, curves=item.curves)
        ids.append(cid)
        if item.unlabelled:
            unlabelled[cid] = item.unlabelled
    if silent:
        loaded.notes.append(f"{silent} silent chunks dropped")
    return {"status": "ok", "chunks": ids, "notes": loaded.notes, "unlabelled": unlabelled}


def prepare_folder(
    in_dir: str | Path,
    out: str | Path,
    label: str = "tempo",
    chunk_seconds: float = 30.0,
    min_chunk_seconds: float = 5.0,
    bpm_range: tuple[float, float] = (60.0, 200.0),
    smooth_s: float = 1.0,
    heldout_fraction: float = 0.1,
    min_minutes: float = MIN_MINUTES,
    min_labelled: float = MIN_LABELLED,
    progress: bool | None = None,
) -> dict[str, Any]:
    """Turn every audio file under ``in_dir`` into a dataset in ``out``; returns the result dict (report.py).

    chunk_seconds: chunk length (rounded to whole latent steps). A tail shorter than ``min_chunk_seconds`` joins
    the previous chunk; files shorter than one chunk become one short chunk; silent chunks are dropped.
    min_minutes / min_labelled: the refusal thresholds (see the module docstring); 0 turns a check off.
    progress: tqdm bar (None = only on a terminal).
    """
    started = time.monotonic()
    in_dir, out = Path(in_dir), Path(out)
    if label not in LABELS:
        raise DatasetError(f"label {label!r} is not known; use one of {', '.join(LABELS)}")
    if not in_dir.is_dir():
        raise FolderError(f"input folder {in_dir} does not exist or is not a folder; pass a folder of audio files")
    if chunk_seconds <= 0 or min_chunk_seconds < 0:
        raise DatasetError(
            f"chunk_seconds must be > 0 and min_chunk_seconds >= 0, got {chunk_seconds}, {min_chunk_seconds}"
        )
    if not 0 < bpm_range[0] < bpm_range[1]:
        raise DatasetError(f"bpm_range must be (low, high) with 0 < low < high, got {bpm_range}; e.g. 60 200")
    if min_minutes < 0 or not 0 <= min_labelled <= 1:
        raise DatasetError(f"min_minutes must be >= 0 and min_labelled 0..1, got {min_minutes}, {min_labelled}")
    files, others = find_audio_files(in_dir, exclude=out.resolve())
    if not files:
        raise FolderError(
            f"no audio files in {in_dir} ({len(others)} other files); supported: {', '.join(AUDIO_EXTENSIONS)}"
        )
    writer = DatasetWriter(
        out,
        kind="folder",
        meta={
            "description": f"User audio from {in_dir.resolve()}: {len(files)} files, decoded, made stereo, resampled "
            f"to 44.1 kHz (soxr HQ) and cut into {chunk_seconds:g} s chunks; labels: {label}.",
            "labels": LABEL_SPECS[label],
            "sources": [str(in_dir.resolve())],
            "licences": [
                "as supplied by the user: check the rights to every file before sharing a dataset or a "
                "model trained on it"
            ],
            "label_mode": label,
        },
    )
    cache = RunCache(out)
    chunk_steps, min_steps = steps_for(chunk_seconds), steps_for(min_chunk_seconds) if min_chunk_seconds else 0
    settings: dict[str, Any] = {
        "label": label,
        "chunk_steps": chunk_steps,
        "min_steps": min_steps,
        "bpm_range": list(bpm_range),
        "smooth_s": smooth_s,
        **({"labeller": TEMPO_LABELLER} if label == "tempo" else {}),
    }
    run = FolderTally()
    completed = False
    try:
        for path in _progress_bar(files, progress):
            rel = path.relative_to(in_dir).as_posix()
            st = path.stat()
            key = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, **settings}
            entry = cache.lookup(rel, key, writer)
            if entry is None:
                entry = _prepare_file(path, rel, writer, label, (chunk_steps, min_steps), bpm_range, smooth_s)
                cache.store(rel, key, **entry)
                run.new += len(entry.get("chunks", []))
            else:
                run.reused += len(entry.get("chunks", []))
            run.add(rel, entry)
        completed = True
    finally:
        if not completed:  # keep finished files for the next run
            writer.meta["complete"] = False
            writer.finish({})
            cache.save()
    drop_stale(writer, run.keep)
    cache.save()
    refusal = refusal_reason(in_dir, len(files), run, list(writer.chunks.values()), label, min_minutes, min_labelled)
    if refusal:
        if writer.chunks:  # the decoded chunks stay reusable for a re-run with other settings
            writer.meta["complete"] = False
            writer.finish({})
        raise FolderError(refusal)
    splits = assign_splits(sorted({c.source for c in writer.chunks.values()}), heldout_fraction)
    for c in writer.chunks.values():
        c.split = splits[c.source]
    scalars = [n for n, s in LABEL_SPECS[label].items() if s["kind"] == "scalar"]
    curves = [n for n, s in LABEL_SPECS[label].items() if s["kind"] == "curve"]
    stats = dataset_stats(out, writer.chunks.values(), scalars=scalars, curves=curves)
    notes = [f"{rel}: {'; '.join(n)}" for rel, n in run.notes.items()]
    if others:
        notes.append(
            f"ignored {len(others)} files without an audio extension: "
            + ", ".join(p.relative_to(in_dir).as_posix() for p in others[:10])
            + (" ..." if len(others) > 10 else "")
        )
    sections = []
    if run.unlabelled:
        notes.append(f"{len(run.unlabelled)} of {len(writer.chunks)} chunks have no tempo label (DATASET.md)")
        sections.append(unlabelled_section("tempo", writer.chunks.values(), run.unlabelled))
    writer.meta["complete"] = True
    result = finish_dataset(
        writer,
        stats=stats,
        started=started,
        new_chunks=run.new,
        reused_chunks=run.reused,
        skipped=run.skipped,
        notes=notes,
        sections=sections,
        command=f"musika prepare folder {in_dir} --out {out} --label {label} --chunk-seconds {chunk_seconds:g}",
    )
    return result
