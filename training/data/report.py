"""DATASET.md, label statistics and the end-of-run summary, shared by every data source.

A source (techno, piano, folder) writes its chunks through :class:`~training.data.dataset.DatasetWriter`, passing
these keys in ``meta`` (they end up in dataset.json and DATASET.md)::

    description: str                       one paragraph: what the audio is and how it was made
    labels: {name: {"kind": "scalar"|"curve", "unit": str, "description": str}}
    sources: [str]                         where the material comes from
    licences: [str]                        licence of each source / tool whose output is in the audio

and then calls :func:`finish_dataset`, which computes label statistics, writes dataset.json, manifest.jsonl and
DATASET.md, and returns the result dict that ``prepare_*`` functions return and :func:`format_summary` prints.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from training.data.dataset import Chunk, DatasetWriter

logger = logging.getLogger(__name__)


def value_stats(values: Iterable[float] | np.ndarray) -> dict[str, float]:
    """count, mean, std, min, p05, p50, p95, max of the finite values (only count=0 when there are none)."""
    v = np.asarray(list(values) if not isinstance(values, np.ndarray) else values, dtype=np.float64).ravel()
    v = v[np.isfinite(v)]
    if v.size == 0:
        return {"count": 0}
    p05, p50, p95 = np.percentile(v, [5, 50, 95])
    return {
        "count": int(v.size),
        "mean": float(v.mean()),
        "std": float(v.std()),
        "min": float(v.min()),
        "p05": float(p05),
        "p50": float(p50),
        "p95": float(p95),
        "max": float(v.max()),
    }


def dataset_stats(
    root: str | Path, chunks: Iterable[Chunk], scalars: Sequence[str] = (), curves: Sequence[str] = ()
) -> dict[str, dict[str, float]]:
    """Statistics of scalar labels (one value per chunk) and curves (every step of every chunk), by name.

    Use them for normalisation, e.g. ``(x - stats["density"]["mean"]) / stats["density"]["std"]``.
    A name that is both a scalar and a curve gets the curve statistics.
    """
    root = Path(root)
    chunks = list(chunks)
    out: dict[str, dict[str, float]] = {}
    for name in scalars:
        out[name] = value_stats([c.labels[name] for c in chunks if name in c.labels])
    for name in curves:
        parts = [np.load(root / c.curves[name]).ravel() for c in chunks if name in c.curves]
        out[name] = value_stats(np.concatenate(parts) if parts else np.zeros(0))
    return out


def finish_dataset(
    writer: DatasetWriter,
    *,
    stats: dict[str, Any],
    started: float,
    new_chunks: int,
    reused_chunks: int,
    skipped: Sequence[tuple[str, str]] = (),
    notes: Sequence[str] = (),
    sections: Sequence[tuple[str, Sequence[str]]] = (),
    command: str | None = None,
) -> dict[str, Any]:
    """Write dataset.json + manifest (``writer.finish``) and DATASET.md; return the run's result dict.

    started: ``time.monotonic()`` at the start of the run. skipped: (item, reason) pairs. notes: free-text
    remarks for the summary (e.g. "3 files were mono and were upmixed"). sections: extra (title, lines) for
    DATASET.md only (e.g. the chunks left without a label). command: how to reproduce the run.
    """
    info = writer.finish(stats)
    md = write_dataset_md(writer.root, info, skipped=skipped, notes=notes, sections=sections, command=command)
    return {
        "kind": info["kind"],
        "out": str(writer.root),
        "chunks": info["chunks"],
        "hours": info["hours"],
        "hours_by_split": info["hours_by_split"],
        "new_chunks": int(new_chunks),
        "reused_chunks": int(reused_chunks),
        "stats": info.get("stats", {}),
        "skipped": [{"item": str(item), "reason": str(reason)} for item, reason in skipped],
        "notes": list(notes),
        "elapsed_s": time.monotonic() - started,
        "dataset_md": str(md),
    }


def _fmt(x: Any) -> str:
    return f"{x:.3g}" if isinstance(x, float) else str(x)


def write_dataset_md(
    root: str | Path,
    info: dict[str, Any],
    *,
    skipped: Sequence[tuple[str, str]] = (),
    notes: Sequence[str] = (),
    sections: Sequence[tuple[str, Sequence[str]]] = (),
    command: str | None = None,
) -> Path:
    """Write ``root/DATASET.md`` from the dataset.json content ``info`` (see module docstring for its keys)."""
    root = Path(root)
    split = info.get("hours_by_split", {})
    lines = [
        f"# Dataset: {info.get('kind', '?')}",
        "",
        info.get("description", "").strip() or "(no description)",
        "",
        "## Contents",
        "",
        f"- Chunks: {info.get('chunks', 0)} ({info.get('sample_rate', 44100)} Hz stereo PCM-16 WAV in `audio/`)",
        f"- Hours: {info.get('hours', 0.0):.3f} (train {split.get('train', 0.0):.3f}, "
        f"held-out {split.get('heldout', 0.0):.3f})",
        "- Split: by source (a whole track or file never straddles train/held-out); training reads `train`, "
        "evaluation reads `heldout`.",
        f"- Seed: {info.get('seed')}",
        f"- Format: {info.get('format', '?')} (`manifest.jsonl` lists every chunk; curves in `labels/` are "
        "float32 per latent step at 44100/4096 Hz)",
    ]
    if command:
        lines.append(f"- Reproduce: `{command}`")
    labels = info.get("labels", {})
    lines += ["", "## Labels", ""]
    if labels:
        for name, spec in labels.items():
            lines.append(
                f"- `{name}` ({spec.get('kind', '?')}, {spec.get('unit', '-')}): {spec.get('description', '')}"
            )
    else:
        lines.append("None.")
    stats = info.get("stats", {})
    if stats:
        lines += [
            "",
            "## Label statistics",
            "",
            "| label | count | mean | std | min | p05 | p50 | p95 | max |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for name, s in stats.items():
            cols = [_fmt(s.get(k, "-")) for k in ("count", "mean", "std", "min", "p05", "p50", "p95", "max")]
            lines.append(f"| {name} | " + " | ".join(cols) + " |")
    lines += ["", "## Sources and licences", ""]
    lines += [f"- Source: {s}" for s in info.get("sources", [])] or ["- Source: (not recorded)"]
    lines += [f"- Licence: {s}" for s in info.get("licences", [])] or ["- Licence: (not recorded)"]
    if notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in notes]
    if skipped:
        lines += ["", f"## Skipped ({len(skipped)})", ""] + [f"- `{item}`: {reason}" for item, reason in skipped]
    for title, body in sections:
        lines += ["", f"## {title}", ""] + [f"- {line}" for line in body]
    path = root / "DATASET.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def format_summary(result: dict[str, Any]) -> str:
    """Human-readable end-of-run summary of a ``prepare_*`` result dict (missing keys are tolerated)."""
    split = result.get("hours_by_split", {})
    lines = [
        f"Prepared {result.get('kind', 'dataset')} dataset in {result.get('out', '?')}",
        f"  chunks: {result.get('chunks', 0)} ({result.get('new_chunks', '?')} new, "
        f"{result.get('reused_chunks', '?')} reused)",
        f"  hours: {result.get('hours', 0.0):.3f} (train {split.get('train', 0.0):.3f}, "
        f"held-out {split.get('heldout', 0.0):.3f})",
    ]
    for name, s in result.get("stats", {}).items():
        if s.get("count"):
            lines.append(
                f"  {name}: mean {s['mean']:.3g}, std {s['std']:.3g}, range {s['min']:.3g}..{s['max']:.3g}"
                f" (n={s['count']})"
            )
    for note in result.get("notes", []):
        lines.append(f"  note: {note}")
    skipped = result.get("skipped", [])
    if skipped:
        lines.append(f"  skipped {len(skipped)}:")
        lines += [f"    {s['item']}: {s['reason']}" for s in skipped]
    if "elapsed_s" in result:
        lines.append(f"  time: {result['elapsed_s']:.1f} s")
    if "dataset_md" in result:
        lines.append(f"  description: {result['dataset_md']}")
    return "\n".join(lines)
