"""How right are the automatic labels of ``musika prepare folder`` on real recordings?

    python scripts/label_check.py DIR [DIR ...] [--before] [--cache FILE] [--json FILE]
    python scripts/label_check.py DIR [DIR ...] --density [--per-input 12]

DIR is a folder of audio (decoded and cut into 30 s chunks exactly as ``musika prepare folder`` does) or a
prepared dataset (its chunks are read back and joined per source). Tempo mode labels every track with the
labeller ``prepare`` uses (training.data.tempo_labels.label_track) and compares each chunk with two independent
trackers, neither of which shares its feature or its method:

- A: librosa ``beat_track(hop_length=64)`` on a SuperFlux envelope (log-mel, lag, max filter), tempo prior from
  librosa's own estimate, plus a least-squares line through the beat times;
- B: librosa PLP (Fourier tempogram) on the same SuperFlux envelope, a line through the pulse peaks.

Both are folded into the labeller's BPM range. A label agrees when it is within 4 % of a tracker. Where A and B
agree with each other the chunk has a reference; the headline figure is agreement there. ``--before`` also
measures per-chunk beat tracking (training.analysis.measure_tempo on each chunk alone, confident at >= 0.5) for
comparison. Density mode measures how the onset rate behind the density label moves when the middle chunk of
each track is turned down, limited, clipped, reverberated, hissed or band-limited. Single process; ``--cache``
keeps tracker results between runs.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from generator.runtime.model_config import SAMPLE_RATE  # noqa: E402
from training.analysis import fit_beat_grid, fold_bpm, measure_tempo, onset_times, to_mono  # noqa: E402
from training.data.chunking import chunk_spans, steps_for  # noqa: E402
from training.data.dataset import Dataset  # noqa: E402
from training.data.folder import AudioReadError, find_audio_files, load_audio  # noqa: E402
from training.data.tempo_labels import CONFIDENT, label_track, onset_envelope  # noqa: E402

logger = logging.getLogger("label_check")
BPM_RANGE = (60.0, 200.0)
TOLERANCE = 0.04
RATIOS = {"2:1": 2.0, "1:2": 0.5, "3:2": 1.5, "2:3": 2 / 3, "4:3": 4 / 3, "3:4": 0.75, "3:1": 3.0, "1:3": 1 / 3}
SUPERFLUX = {"lag": 2, "max_size": 3, "n_mels": 138, "fmin": 27.5, "fmax": 16000.0}


def set_name(path: Path) -> str:
    """A readable name for an input: its last two path parts (``warzone2100/music``)."""
    return "/".join(path.resolve().parts[-2:])


def tracks(path: Path) -> Iterator[tuple[str, np.ndarray, list[tuple[int, int]]]]:
    """(name, audio (2, n) at 44.1 kHz, chunk spans) per track, cut as ``musika prepare folder`` cuts."""
    if (path / "manifest.jsonl").exists():
        ds = Dataset(path)
        by_source: dict[str, list] = {}
        for c in sorted(ds, key=lambda c: c.id):
            by_source.setdefault(c.source, []).append(c)
        for source, chunks in by_source.items():
            parts = [ds.audio(c) for c in chunks]
            bounds = np.cumsum([0] + [p.shape[1] for p in parts])
            yield source, np.concatenate(parts, axis=1), list(zip(bounds[:-1], bounds[1:], strict=True))
        return
    files, _ = find_audio_files(path)
    for f in files:
        try:
            audio = load_audio(f).audio
        except (AudioReadError, OSError) as exc:
            logger.warning("skipping %s: %s", f, exc)
            continue
        spans = chunk_spans(audio.shape[1], steps_for(30.0), steps_for(5.0))
        yield f.relative_to(path).as_posix(), np.pad(audio, ((0, 0), (0, spans[-1][1] - audio.shape[1]))), spans


def _line_bpm(times: np.ndarray, from_gaps: bool) -> float:
    """Tempo of a least-squares line through event times (the first and last are dropped: trackers misplace the
    edges of an excerpt). Beat indices come from training.analysis.fit_beat_grid, or with ``from_gaps`` from each
    gap to the previous event (PLP peaks jitter, and one global rounding would drift over 80 beats)."""
    if times.size >= 8:
        times = times[1:-1]
    if times.size < 4:
        return math.nan
    if from_gaps:
        gaps = np.diff(times)
        k = np.concatenate([[0.0], np.cumsum(np.maximum(1.0, np.round(gaps / np.median(gaps))))])
        period = float(np.polyfit(k, times, 1)[0])
    else:
        period = fit_beat_grid(times)[0]
    return fold_bpm(60.0 / period, BPM_RANGE) if period > 0 else math.nan


def tracker_a(chunk: np.ndarray) -> float:
    import librosa

    y = to_mono(chunk)
    coarse = librosa.onset.onset_strength(y=y, sr=SAMPLE_RATE, hop_length=512, **SUPERFLUX)
    prior = float(np.atleast_1d(librosa.feature.tempo(onset_envelope=coarse, sr=SAMPLE_RATE, hop_length=512))[0])
    fine = librosa.onset.onset_strength(y=y, sr=SAMPLE_RATE, hop_length=64, **{**SUPERFLUX, "lag": 16})
    _, beats = librosa.beat.beat_track(onset_envelope=fine, sr=SAMPLE_RATE, hop_length=64, bpm=prior, units="time")
    return _line_bpm(np.asarray(beats, dtype=float), from_gaps=False)


def tracker_b(chunk: np.ndarray) -> float:
    import librosa

    env = librosa.onset.onset_strength(y=to_mono(chunk), sr=SAMPLE_RATE, hop_length=256, **SUPERFLUX)
    pulse = librosa.beat.plp(onset_envelope=env, sr=SAMPLE_RATE, hop_length=256, win_length=768, tempo_min=40,
                             tempo_max=320)
    peaks = np.flatnonzero(librosa.util.localmax(pulse) & (pulse > 0.3 * pulse.max()))
    return _line_bpm(librosa.frames_to_time(peaks, sr=SAMPLE_RATE, hop_length=256), from_gaps=True)


def relation(label: float, ref: float) -> str:
    """'ok' within TOLERANCE, else the metrical ratio label:ref it is near ('2:1', '3:2', ...), else 'other'."""
    if not (math.isfinite(label) and math.isfinite(ref)):
        return "none"
    for name, r in {"ok": 1.0, **RATIOS}.items():
        if abs(label / (ref * r) - 1.0) <= TOLERANCE:
            return name
    return "other"


def check_tempo(inputs: list[Path], before: bool, cache: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for path in inputs:
        for name, audio, spans in tracks(path):
            started = time.monotonic()
            new = label_track(onset_envelope(audio, SAMPLE_RATE), spans, BPM_RANGE)
            for k, ((a, b), est) in enumerate(zip(spans, new, strict=True)):
                key = f"{set_name(path)}/{name}#{k}"
                if key not in cache or (before and "old" not in cache[key]):
                    got = cache.get(key, {})
                    got.setdefault("a", tracker_a(audio[:, a:b]))
                    got.setdefault("b", tracker_b(audio[:, a:b]))
                    if before:
                        old = measure_tempo(audio[:, a:b], SAMPLE_RATE, BPM_RANGE)
                        got.update(old=old.bpm, old_conf=old.confidence)
                    cache[key] = got
                reason = "" if est.confident else est.reason()
                rows.append({"set": set_name(path), "track": name, "chunk": k, "tempo": est.bpm,
                             "confidence": est.confidence, "reason": reason, **cache[key]})
            line = " ".join(f"{r['tempo']:.0f}{'' if r['reason'] == '' else '?'}" for r in rows[-len(spans):])
            logger.info("%s %s: %s (%.0f s)", set_name(path), name, line, time.monotonic() - started)
    return rows


def summarise(rows: list[dict[str, Any]], label: str, conf: str, confident: float) -> dict[str, Any]:
    """Coverage and agreement of one labeller over ``rows``."""
    sure = [r for r in rows if r[conf] >= confident and math.isfinite(r[label])]
    decided = [r for r in sure if relation(r["a"], r["b"]) == "ok"]

    def share(items: list[dict[str, Any]], test: Any) -> float:
        return 100.0 * sum(1 for r in items if test(r)) / len(items) if items else math.nan

    return {
        "chunks": len(rows),
        "labelled_pct": 100.0 * len(sure) / len(rows) if rows else math.nan,
        "agree_a_pct": share(sure, lambda r: relation(r[label], r["a"]) == "ok"),
        "agree_b_pct": share(sure, lambda r: relation(r[label], r["b"]) == "ok"),
        "agree_either_pct": share(sure, lambda r: "ok" in (relation(r[label], r["a"]), relation(r[label], r["b"]))),
        "reference_chunks": len(decided),
        "agree_reference_pct": share(decided, lambda r: relation(r[label], r["a"]) == "ok"),
        "metrical_vs_a": dict(Counter(relation(r[label], r["a"]) for r in sure) - Counter(ok=len(sure))),
        "metrical_vs_b": dict(Counter(relation(r[label], r["b"]) for r in sure) - Counter(ok=len(sure))),
        "metrical_vs_reference": sum(relation(r[label], r["a"]) in RATIOS for r in decided),
    }


def reliability(rows: list[dict[str, Any]]) -> list[str]:
    """Agreement with the reference by confidence band: is a higher confidence more often right?"""
    out = []
    for lo, hi in ((0.0, 0.25), (0.25, 0.5), (0.5, 0.75), (0.75, 1.01)):
        band = [r for r in rows if lo <= r["confidence"] < hi and relation(r["a"], r["b"]) == "ok"]
        ok = sum(1 for r in band if relation(r["tempo"], r["a"]) == "ok")
        out.append(f"confidence {lo:.2f}-{min(hi, 1.0):.2f}: {ok}/{len(band)} agree with the reference")
    return out


def tempo_report(rows: list[dict[str, Any]], before: bool) -> dict[str, Any]:
    report: dict[str, Any] = {}
    for name in sorted({r["set"] for r in rows}):
        part = [r for r in rows if r["set"] == name]
        report[name] = {"track labeller": summarise(part, "tempo", "confidence", CONFIDENT)}
        if before:
            report[name]["per-chunk, every label"] = summarise(part, "old", "old_conf", -1.0)
            report[name]["per-chunk, confidence >= 0.5"] = summarise(part, "old", "old_conf", 0.5)
        for when, s in report[name].items():
            print(f"{name} ({when}): {s['chunks']} chunks, {s['labelled_pct']:.0f} % labelled; of those "
                  f"{s['agree_reference_pct']:.1f} % agree where A and B agree ({s['reference_chunks']} chunks), "
                  f"{s['agree_a_pct']:.1f} % with A, {s['agree_b_pct']:.1f} % with B, {s['agree_either_pct']:.1f} % "
                  f"with A or B; {s['metrical_vs_reference']} at a metrical ratio to the reference; disagreements "
                  f"with A {s['metrical_vs_a']}, with B {s['metrical_vs_b']}")
        tracks_seen = sorted({r["track"] for r in part})
        for t in tracks_seen:
            sub = [r for r in part if r["track"] == t]
            s = summarise(sub, "tempo", "confidence", CONFIDENT)
            print(f"  {t}: {len(sub)} chunks, {s['labelled_pct']:.0f} % labelled, A {s['agree_a_pct']:.0f} % "
                  f"B {s['agree_b_pct']:.0f} % either {s['agree_either_pct']:.0f} %")
        report[name]["reliability"] = reliability(part)
        print("  " + "; ".join(report[name]["reliability"]))
    return report


def density_variants(chunk: np.ndarray) -> Iterator[tuple[str, np.ndarray]]:
    from pedalboard import Gain, Limiter, LowpassFilter, Pedalboard, Reverb

    yield "-20 dB", 0.1 * chunk
    yield "limited +12 dB", Pedalboard([Gain(12.0), Limiter(threshold_db=-0.5, release_ms=80.0)])(chunk, SAMPLE_RATE)
    yield "clipped +9 dB", np.clip(2.8 * chunk, -1.0, 1.0)
    yield "reverb", Pedalboard([Reverb(room_size=0.85, wet_level=0.35, dry_level=0.8, damping=0.3)])(chunk, SAMPLE_RATE)
    yield "hiss -50 dBFS", chunk + 10 ** (-50 / 20) * np.random.default_rng(0).standard_normal(chunk.shape).astype(
        np.float32)
    yield "low-pass 5 kHz", Pedalboard([LowpassFilter(5000.0) for _ in range(3)])(chunk, SAMPLE_RATE)


def check_density(inputs: list[Path], per_input: int) -> dict[str, Any]:
    ratios: dict[str, list[float]] = {}
    base = []
    for path in inputs:
        for n, (_, audio, spans) in enumerate(tracks(path)):
            if n == per_input:
                break
            a, b = spans[len(spans) // 2]  # the middle chunk of each of the first tracks
            chunk = audio[:, a:b]
            rate = onset_times(chunk, SAMPLE_RATE).size / (chunk.shape[1] / SAMPLE_RATE)
            base.append(rate)
            for name, variant in density_variants(chunk):
                other = onset_times(variant, SAMPLE_RATE).size / (chunk.shape[1] / SAMPLE_RATE)
                ratios.setdefault(name, []).append((other + 0.1) / (rate + 0.1))
    out = {"chunks": len(base), "median_onsets_per_s": float(np.median(base)) if base else math.nan}
    print(f"density: {len(base)} chunks, median {out['median_onsets_per_s']:.2f} onsets/s; ratio to the original:")
    for name, r in ratios.items():
        q = np.percentile(r, [10, 50, 90])
        out[name] = {"p10": q[0], "median": q[1], "p90": q[2], "min": min(r), "max": max(r)}
        print(f"  {name}: median {q[1]:.2f}, 10-90 % {q[0]:.2f}-{q[2]:.2f}, range {min(r):.2f}-{max(r):.2f}")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", type=Path, nargs="+", help="folders of audio or prepared datasets")
    p.add_argument("--before", action="store_true", help="also measure per-chunk measure_tempo labels")
    p.add_argument("--density", action="store_true", help="measure the onset rate's robustness instead")
    p.add_argument("--per-input", type=int, default=12, help="tracks per input for --density (middle chunk)")
    p.add_argument("--cache", type=Path, help="JSON file keeping tracker results between runs")
    p.add_argument("--json", type=Path, help="write the figures here")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if a.density:
        result: dict[str, Any] = check_density(a.inputs, a.per_input)
    else:
        cache = json.loads(a.cache.read_text()) if a.cache and a.cache.exists() else {}
        try:
            rows = check_tempo(a.inputs, a.before, cache)
        finally:
            if a.cache:
                a.cache.write_text(json.dumps(cache))
        result = tempo_report(rows, a.before)
    if a.json:
        a.json.write_text(json.dumps(result, indent=1, default=float) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
