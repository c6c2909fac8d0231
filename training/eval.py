"""`musika eval`: measure a preset (tempo, density, autoencoder, realism, seams) and write the figures.

:func:`evaluate` runs the ONNX engine exactly as a user would and returns a JSON-ready dict (NaN -> None);
:func:`write_results` merges it into preset.json "metrics" (model hashes untouched) and rewrites MODEL_CARD.md.
What runs depends on the preset: a tempo sweep for a tempo-conditioned preset, a density sweep for a
density-conditioned one, plain seeded clips for an unconditioned one; held-out audio (``dataset``) adds the
autoencoder (needs encoder1/encoder2 in the preset) and realism figures. Everything is seeded: clip i of a
sweep uses seed i, reconstructions decode with seed 0, so two runs give the same figures.
"""

from __future__ import annotations

import datetime as _dt
import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from generator.runtime import spectral
from generator.runtime.engine import Engine
from generator.runtime.preset import Condition, Preset, update_preset_json
from generator.timeline.beat_grid import heard_grid_offsets
from training import metrics as M
from training.analysis import TempoEstimate, measure_tempo, onset_times
from training.data.dataset import Dataset, DatasetError
from training.errors import TrainingError
from training.listening import classifier_auc, frame_comb_ratio, output_levels

logger = logging.getLogger(__name__)

TEMPO_BPMS = tuple(range(120, 161, 4))
QUICK_BPMS = (120, 140, 160)
DENSITY_LEVELS, QUICK_DENSITY_LEVELS = 5, 3
QUICK_SECONDS, QUICK_HELDOUT = 6.0, 2
MAX_HELDOUT = 32
PULSE_CONFIDENCE = 0.5  # held-out clips below this have no steady beat; "tempo preserved" skips them
EVAL_SECTIONS = ("eval", "tempo", "beats", "density", "autoencoder", "realism", "seams", "output", "bars", "skipped")
SEAM_MAX_RATIO = 1.25  # joins "do not stand out": mean peak flux at joins at most 25 % above elsewhere
# (metric key, comparison, threshold): the bars shipped presets must meet; reported as pass/fail in the card
BARS = (
    ("tempo/within_tolerance", ">=", 0.85),
    ("tempo/median_ibi_cv", "<=", 0.05),
    ("beats/median_abs_ms", "<=", 5.0),
    ("beats/p95_abs_ms", "<=", 15.0),
    ("seams/max_ratio", "<=", SEAM_MAX_RATIO),
    ("density/spearman", ">=", 0.9),
    ("output/true_peak_max_dbtp", "<=", -1.0),
    ("output/clipped_samples", "<=", 0),
    ("realism/classifier_auc", "<=", 0.75),
    ("realism/ratio", "<=", 2.0),
    ("realism/comb_vs_heldout", "<=", 1.5),
)


@dataclass
class Job:
    """One generated clip: which sweep, the conditioning sent, the requested value and the seed."""

    kind: str  # "tempo" | "density" | "plain"
    seed: int
    conditioning: dict[str, float] = field(default_factory=dict)
    requested: float = math.nan


def data_tempi(ds: Dataset, levels: int = len(TEMPO_BPMS)) -> list[float]:
    """The tempi a dataset's training chunks are labelled with, as up to `levels` distinct quantiles (5 % to 95 %,
    to 0.5 BPM): what a preset trained on real recordings, whose tracks each keep one tempo, can be asked for."""
    tempi = [c.labels["tempo"] for c in ds.split("train") if "tempo" in c.labels]
    if not tempi:
        raise TrainingError(f"{ds.root}: no training chunk has a tempo label to take the eval's tempi from")
    return sorted({round(2 * float(q)) / 2 for q in np.quantile(tempi, np.linspace(0.05, 0.95, levels))})


def requested_tempo(audio: np.ndarray, sr: int, requested: float) -> TempoEstimate:
    """The tempo of a clip asked for `requested` BPM, tracked within half an octave of the request (so a reading at
    twice or half the tempo counts at the asked level, and one at 3:2 or 4:3 counts as a miss)."""
    return measure_tempo(audio, sr, bpm_range=(requested / math.sqrt(2), requested * math.sqrt(2)))


def density_levels(c: Condition, levels: int = DENSITY_LEVELS) -> list[float]:
    """The densities a sweep asks for: `levels` geometrically spaced over the condition's range (a range that
    starts at silence: from max/16)."""
    lo = c.min if c.min > 0 else c.max / 16
    return [float(v) for v in np.geomspace(lo, c.max, levels)]


def plan_jobs(preset: Preset, seeds: int, quick: bool, tempi: list[float] | None = None) -> list[Job]:
    """The clips to generate: BPM x seed for tempo (`tempi`, else 120-160 BPM), level x seed for density, else
    max(2, seeds) plain clips."""
    if seeds < 1:
        raise TrainingError(f"seeds must be at least 1, got {seeds}")
    jobs: list[Job] = []
    if preset.has_condition("tempo"):
        c = preset.condition("tempo")
        sweep = tempi if tempi else (QUICK_BPMS if quick else TEMPO_BPMS)
        bpms = [b for b in sweep if c.min <= b <= c.max]
        if not bpms:
            bpms = [c.default]
            logger.warning("preset %s: tempo range %g..%g excludes 120-160 BPM; sweeping the default %g only",
                           preset.name, c.min, c.max, c.default)
        jobs += [Job("tempo", s, {"tempo": float(b)}, float(b)) for b in bpms for s in range(seeds)]
    if preset.has_condition("density"):
        levels = density_levels(preset.condition("density"), QUICK_DENSITY_LEVELS if quick else DENSITY_LEVELS)
        jobs += [Job("density", s, {"density": float(v)}, float(v)) for v in levels for s in range(seeds)]
    if not jobs:  # at least two clips, so that realism has two rows even in quick mode
        jobs = [Job("plain", s) for s in range(max(2, seeds))]
    return jobs


def joins(preset: Preset, samples: int) -> tuple[list[int], list[int]]:
    """Sample positions of decoder-window joins (not on a generator join) and of generator-half joins."""
    cfg = preset.config
    dec = cfg.autoencoder.dec2_window * cfg.samples_per_latent
    gen = cfg.gan.half_len * cfg.samples_per_latent
    gen_joins = list(range(gen, samples, gen))
    return [j for j in range(dec, samples, dec) if j % gen], gen_joins


class OnnxEncoder:
    """The preset's encoder1 + encoder2 in ONNX Runtime: audio (2, samples) -> latents (steps, 2 latent_dim)."""

    def __init__(self, engine: Engine):
        from generator.runtime.engine import _session

        self.cfg = engine.config
        self.enc1 = _session(engine.preset.model_path("encoder1"), engine.threads)
        self.enc2 = _session(engine.preset.model_path("encoder2"), engine.threads)
        self.block = int(self.enc1.get_inputs()[0].shape[1])  # STFT frames per call (enc1_window)

    def encode(self, audio: np.ndarray) -> np.ndarray:
        """steps = ceil(samples / samples_per_latent) rounded up to whole encoder blocks; audio zero-padded."""
        ae, spl = self.cfg.autoencoder, self.cfg.samples_per_latent
        per_block = self.block // ae.level2_frames
        steps = max(1, math.ceil(audio.shape[1] / spl))
        steps = math.ceil(steps / per_block) * per_block
        padded = np.zeros((2, steps * spl + self.cfg.audio.n_fft - self.cfg.audio.hop), np.float32)
        n = min(audio.shape[1], padded.shape[1])
        padded[:, :n] = audio[:, :n]
        spec = np.stack([spectral.spectrogram(ch, self.cfg.audio) for ch in padded])  # (2, steps * 16, bins)
        blocks = spec.reshape(2 * steps // per_block, self.block, -1)
        frames = self.enc1.run(["frames"], {"spec": blocks})[0]
        lat = self.enc2.run(["latents"], {"frames": frames})[0].reshape(2, steps, ae.latent_dim)
        return np.concatenate([lat[0], lat[1]], axis=1)


def _dataset(dataset: str | Path | Dataset | None, preset: Preset) -> tuple[Dataset | None, str]:
    if isinstance(dataset, Dataset):
        return dataset, ""
    if dataset is None:  # the held-out audio of the last eval, else the training data (a shared autoencoder's: a list)
        data = preset.training.get("data")
        guesses = [(preset.metrics.get("eval") or {}).get("dataset"), *(data if isinstance(data, list) else [data])]
        found = [g for g in guesses if isinstance(g, str) and g and (Path(g) / "dataset.json").is_file()]
        if not found:
            return None, "no held-out audio: pass --dataset DIR (a prepared dataset)"
        dataset = found[0]
        logger.info("using the preset's training dataset %s for held-out audio", dataset)
    try:
        return Dataset(dataset), ""
    except DatasetError as exc:
        raise TrainingError(f"--dataset {dataset}: {exc}") from exc


def _heldout(ds: Dataset, limit: int) -> list:
    chunks = sorted(ds.split("heldout"), key=lambda c: c.id)
    if len(chunks) > limit:
        chunks = [chunks[int(i)] for i in np.linspace(0, len(chunks) - 1, limit).round()]
    return chunks


def _progress(iterable, desc: str, progress: bool | None, total: int | None = None):
    from tqdm import tqdm

    return tqdm(iterable, desc=desc, total=total, unit="clip", disable=None if progress is None else not progress)


def evaluate(
    preset_path: str | Path,
    dataset: str | Path | Dataset | None = None,
    seeds: int = 4,
    seconds: float = 24.0,
    quick: bool = False,
    threads: int | None = None,
    progress: bool | None = None,
    max_heldout: int = MAX_HELDOUT,
    phase: str | None = None,
    tempo_from_data: bool = False,
) -> dict[str, Any]:
    """Measure a preset; returns {"eval", sections..., "bars", "skipped"} ready for preset.json "metrics".

    quick: 3 BPMs / 3 density levels, 1 seed, at most 6 s clips and 2 held-out clips (for tests and smoke runs).
    tempo_from_data: ask for the tempi of the dataset's training chunks (:func:`data_tempi`) instead of 120-160 BPM.
    """
    if not math.isfinite(seconds) or seconds <= 0:
        raise TrainingError(f"seconds must be a positive number, got {seconds}")
    if seeds < 1:
        raise TrainingError(f"seeds must be at least 1, got {seeds}")
    started = time.perf_counter()
    engine = Engine.load(preset_path, threads=threads, phase=phase)
    preset, sr = engine.preset, engine.config.audio.sample_rate
    if quick:
        seeds, seconds, max_heldout = 1, min(seconds, QUICK_SECONDS), min(max_heldout, QUICK_HELDOUT)
    ds, why_no_data = _dataset(dataset, preset)
    if tempo_from_data and ds is None:
        raise TrainingError(f"the tempi to ask for come from the training data, and there is none: {why_no_data}")
    tempi = data_tempi(ds, len(QUICK_BPMS) if quick else len(TEMPO_BPMS)) if tempo_from_data else None
    jobs = plan_jobs(preset, seeds, quick, tempi)
    rows: dict[str, list[tuple[float, float, float]]] = {"tempo": [], "density": []}
    seam_dec, seam_gen, gen_feats, levels, combs, heard = [], [], [], [], [], []
    for job in _progress(jobs, "generate", progress):
        audio = engine.generate(seconds, job.conditioning, seed=job.seed)
        levels.append(output_levels(audio, sr))
        combs.append(frame_comb_ratio(audio, sr, engine.config.audio.n_fft))
        if job.kind == "tempo":
            req = job.requested
            est = requested_tempo(audio, sr, req)
            rows["tempo"].append((req, est.bpm, est.ibi_cv))
            if preset.phases:  # its beats, as heard, against the conditioned grid (a bar line at the first sample)
                heard.append(heard_grid_offsets(audio, sr, req))
        elif job.kind == "density":
            rows["density"].append((job.requested, onset_times(audio, sr).size / (audio.shape[1] / sr), math.nan))
        dec, gen = joins(preset, audio.shape[1])
        seam_dec.append(M.seam_flux_ratio(audio, dec, exclude=gen))
        seam_gen.append(M.seam_flux_ratio(audio, gen, exclude=dec))
        if ds is not None:
            gen_feats.append(M.segment_features(audio, sr))
    out: dict[str, Any] = {"skipped": {}}
    if rows["tempo"]:
        out["tempo"] = _tempo_section(rows["tempo"])
    if heard:
        out["beats"] = _beat_section(heard)
    if rows["density"]:
        out["density"] = _density_section(rows["density"])
    out["seams"] = _seam_section(seam_dec, seam_gen)
    out["output"] = _output_section(engine, levels, combs)
    if ds is None:
        out["skipped"].update(autoencoder=why_no_data, realism=why_no_data)
    else:
        crop = max(seconds, 2 * M.SEGMENT_S) if quick else None  # >= 2 segments per clip for realism halves
        out.update(_heldout_sections(engine, ds, max_heldout, crop, gen_feats, combs, progress, out["skipped"]))
    out["bars"] = bars(out)
    out["eval"] = {
        "seeds": seeds, "seconds": seconds, "quick": quick, "clips": len(jobs), "phase": engine.phase,
        "dataset": str(ds.root) if ds is not None else None, "tempi": "training data" if tempi else "120-160 BPM",
        "date": _dt.date.today().isoformat(), "wall_time_s": round(time.perf_counter() - started, 1),
    }
    return clean(out)


def _tempo_section(rows: list[tuple[float, float, float]]) -> dict[str, Any]:
    req, bpm, cv = (np.array(x) for x in zip(*rows, strict=True))
    summary = M.tempo_summary(req, bpm, cv)
    per = [{"bpm": float(b), "median_measured": float(np.nanmedian(bpm[req == b])) if np.isfinite(bpm[req == b]).any()
            else None, "within_tolerance": float(np.mean(np.abs(bpm[req == b] / b - 1) <= M.TEMPO_TOLERANCE))}
           for b in np.unique(req)]
    return {**summary, "per_bpm": per, "requested": req.tolist(), "measured": bpm.tolist()}


def _beat_section(per_clip: list[np.ndarray]) -> dict[str, Any]:
    """Heard beats against the conditioned grid (ms, positive: late), what a listener's beat tracker measures."""
    err = np.concatenate(per_clip)
    err = err[np.isfinite(err)]
    if not err.size:
        return {"beats": 0, "median_ms": None, "median_abs_ms": None, "p95_abs_ms": None}
    return {"beats": int(err.size), "median_ms": float(np.median(err)), "median_abs_ms": float(np.median(np.abs(err))),
            "p95_abs_ms": float(np.percentile(np.abs(err), 95))}


def _density_section(rows: list[tuple[float, float, float]]) -> dict[str, Any]:
    req, rate, _ = (np.array(x) for x in zip(*rows, strict=True))
    per = [{"requested": float(v), "median_measured": float(np.median(rate[req == v]))} for v in np.unique(req)]
    with np.errstate(divide="ignore"):
        logratio = np.abs(np.log(np.maximum(rate, 1e-3) / req))
    return {"spearman": M.spearman(req, rate), "median_abs_log_ratio": float(np.median(logratio)),
            "per_level": per, "requested": req.tolist(), "measured": rate.tolist()}


def _nanmean(values: list[float]) -> float:
    v = np.asarray(values, dtype=np.float64)
    return float(np.mean(v[np.isfinite(v)])) if np.isfinite(v).any() else math.nan


def _seam_section(dec: list[float], gen: list[float]) -> dict[str, Any]:
    d, g = _nanmean(dec), _nanmean(gen)
    finite = [x for x in (d, g) if math.isfinite(x)]
    return {"decoder_ratio": d, "generator_ratio": g, "max_ratio": max(finite) if finite else math.nan,
            "threshold": SEAM_MAX_RATIO}


def _output_section(engine: Engine, levels: list[dict[str, float]], combs: list[float]) -> dict[str, Any]:
    """What the default output stage writes: peaks, loudness, clipped samples, the frame comb (generated)."""
    lufs = [v["loudness_lufs"] for v in levels if math.isfinite(v["loudness_lufs"])]
    return {
        "true_peak_max_dbtp": max(v["true_peak_dbtp"] for v in levels),
        "clipped_samples": int(sum(v["clipped_samples"] for v in levels)),
        "loudness_lufs_median": float(np.median(lufs)) if lufs else math.nan,
        "loudness_lufs_min": min(lufs, default=math.nan), "loudness_lufs_max": max(lufs, default=math.nan),
        "target_lufs": engine.output.target_lufs, "ceiling_dbtp": engine.output.ceiling_dbtp,
        "calibrated_lufs": engine.config.audio.loudness_lufs,
        "comb_ratio": float(np.median(combs)),
    }


def _heldout_sections(
    engine: Engine, ds: Dataset, limit: int, crop_s: float | None, gen_feats: list[np.ndarray],
    gen_combs: list[float], progress: bool | None, skipped: dict[str, str],
) -> dict[str, Any]:
    """Autoencoder reconstruction figures, the realism ratio, the classifier test and the frame comb of the
    held-out chunks."""
    sr = engine.config.audio.sample_rate
    chunks = _heldout(ds, limit)
    if not chunks:
        skipped.update(autoencoder=f"dataset {ds.root} has no held-out chunks",
                       realism=f"dataset {ds.root} has no held-out chunks")
        return {}
    has_enc = all(n in engine.preset.models for n in ("encoder1", "encoder2"))
    encoder = OnnxEncoder(engine) if has_enc else None
    if encoder is None:
        skipped["autoencoder"] = "the preset ships no encoder1/encoder2 (exported with --no-encoders)"
    f_scores, lsd, tempo_ok, ref_feats, bad, ref_combs = [], [], [], [], [], []
    for chunk in _progress(chunks, "held-out", progress):
        try:
            audio = ds.audio(chunk)
        except (OSError, RuntimeError) as exc:  # soundfile raises RuntimeError subclasses
            bad.append({"id": chunk.id, "reason": str(exc)})
            logger.warning("skipping held-out chunk %s: %s", chunk.id, exc)
            continue
        if crop_s is not None:
            audio = audio[:, : int(crop_s * sr)]
        ref_feats.append(M.segment_features(audio, sr))
        ref_combs.append(frame_comb_ratio(audio, sr, engine.config.audio.n_fft))
        if encoder is None:
            continue
        recon = engine.decode(encoder.encode(audio), seed=0)[:, : audio.shape[1]]
        f_scores.append(M.onset_f_measure(onset_times(audio, sr), onset_times(recon, sr))[0])
        lsd.append(M.mr_log_spectral_distance(audio, recon, sr))
        orig = measure_tempo(audio, sr)
        if orig.confidence >= PULSE_CONFIDENCE:
            rec = measure_tempo(recon, sr, bpm_range=(orig.bpm / math.sqrt(2), orig.bpm * math.sqrt(2)))
            tempo_ok.append(bool(abs(rec.bpm / orig.bpm - 1) <= M.TEMPO_TOLERANCE))
    out: dict[str, Any] = {}
    if encoder is not None and f_scores:
        out["autoencoder"] = {
            "onset_f_measure": float(np.mean(f_scores)), "onset_window_s": M.ONSET_WINDOW_S,
            "mr_log_spectral_distance_db": float(np.mean(lsd)),
            "tempo_preserved": float(np.mean(tempo_ok)) if tempo_ok else math.nan,
            "clips": len(f_scores), "clips_with_pulse": len(tempo_ok), "skipped_clips": bad,
        }
    halves = (sum(len(f) for f in ref_feats[0::2]), sum(len(f) for f in ref_feats[1::2]))
    if min(halves) >= 2 and sum(len(f) for f in gen_feats) >= 2:
        comb_ref = float(np.median(ref_combs))
        out["realism"] = {**M.realism_ratio(gen_feats, ref_feats), "heldout_clips": len(ref_feats),
                          "segment_s": M.SEGMENT_S, "classifier_auc": classifier_auc(gen_feats, ref_feats),
                          "comb_ratio_heldout": comb_ref, "comb_vs_heldout": float(np.median(gen_combs)) / comb_ref}
    else:
        skipped["realism"] = (f"needs 2 segments of {M.SEGMENT_S:g} s in each held-out half and 2 generated; "
                              f"got {halves} from {len(ref_feats)} readable clips and "
                              f"{sum(len(f) for f in gen_feats)}")
    return out


def _lookup(metrics: Mapping[str, Any], key: str) -> Any:
    section, name = key.split("/")
    return (metrics.get(section) or {}).get(name)


def bars(metrics: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Pass/fail for each bar in BARS whose section was measured (a missing or NaN value fails)."""
    out = {}
    for key, op, threshold in BARS:
        if key.split("/")[0] not in metrics:
            continue
        value = _lookup(metrics, key)
        ok = value is not None and math.isfinite(value) and (value >= threshold if op == ">=" else value <= threshold)
        out[key] = {"value": value, "op": op, "threshold": threshold, "pass": bool(ok)}
    return out


def clean(value: Any) -> Any:
    """JSON-ready copy: numpy scalars -> Python, NaN/inf -> None, tuples -> lists."""
    if isinstance(value, Mapping):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_results(preset_dir: str | Path, results: Mapping[str, Any], card: bool = True) -> Path:
    """Merge `results` into preset.json "metrics" and (with card) rewrite MODEL_CARD.md; returns the directory."""
    from training.model_card import write_model_card

    directory = Path(preset_dir)
    stale = {k: None for k in EVAL_SECTIONS if k not in results}  # the last evaluation replaces all sections
    update_preset_json(directory, metrics={**stale, **results})
    if card:
        write_model_card(directory)
    return directory
