"""How well an autoencoder keeps music, per domain: its reconstructions of held-out audio against the originals.

For each dataset (one domain) and each held-out clip the clip is encoded and decoded twice, through level 1 only
(encoder1 -> decoder1) and through both levels (what a GAN's latents sound like at best), and compared with
weight-free measures: multi-resolution log-spectral distance (dB), onset F-measure (50 ms), the signed timing of
attacks (ms, 1.45 ms resolution; negative = the reconstruction's attack comes early), tempo kept on clips with a
pulse, the 43 Hz frame comb relative to the original's, the level below 120 Hz against the original's (dB: kick
fundamentals and sub bass, which the spectral distance barely weighs), and a classifier two-sample test (AUC of
reconstructed vs original 3 s segments, split by clip; 0.5 = indistinguishable).

Audio is float32 (2, samples) at 44.1 kHz. Noise is fixed (seed 0), so the figures repeat.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from training import metrics as M
from training.analysis import measure_tempo, onset_times
from training.listening import bass_level_db, classifier_auc, frame_comb_ratio

logger = logging.getLogger(__name__)

PULSE_CONFIDENCE = 0.5  # clips below this have no steady beat; "tempo kept" skips them


FINE_HOP = 64  # samples: 1.45 ms at 44.1 kHz
ATTACK_WINDOW_S = 0.03


def attack_offsets_ms(original: np.ndarray, recon: np.ndarray, sr: int, onsets: np.ndarray) -> np.ndarray:
    """Signed offset (ms, reconstruction - original) of the steepest rise around each detected onset: the peak of
    each signal's onset strength (hop 64, 1.45 ms) within 30 ms of the onset. Finer than the onset detector's
    frames, so a kick that arrives a few ms early shows."""
    import librosa

    from training.analysis import to_mono

    env = [librosa.onset.onset_strength(y=to_mono(x).astype(np.float32), sr=sr, hop_length=FINE_HOP)
           for x in (original, recon)]
    half = int(ATTACK_WINDOW_S * sr / FINE_HOP)
    out = []
    for t in onsets:
        c = int(round(t * sr / FINE_HOP))
        lo, hi = max(0, c - half), min(len(env[0]), len(env[1]), c + half + 1)
        if hi - lo < 3:
            continue
        a, b = np.argmax(env[0][lo:hi]), np.argmax(env[1][lo:hi])
        out.append((b - a) * FINE_HOP / sr * 1000.0)
    return np.asarray(out)


def clip_figures(original: np.ndarray, recon: np.ndarray, sr: int) -> dict[str, float]:
    """Reconstruction figures of one clip (both (2, samples), cut to the shorter)."""
    n = min(original.shape[1], recon.shape[1])
    a, b = original[:, :n], recon[:, :n]
    ref_on, rec_on = onset_times(a, sr), onset_times(b, sr)
    offsets = attack_offsets_ms(a, b, sr, ref_on)
    out = {"lsd_db": M.mr_log_spectral_distance(a, b, sr), "onset_f": M.onset_f_measure(ref_on, rec_on)[0],
           "onset_offset_ms": float(np.median(offsets)) if offsets.size else math.nan,
           "comb_vs_original": frame_comb_ratio(b, sr) / max(frame_comb_ratio(a, sr), 1e-9),
           "bass_vs_original_db": bass_level_db(b, sr) - bass_level_db(a, sr), "tempo_kept": math.nan}
    tempo = measure_tempo(a, sr)
    if tempo.confidence >= PULSE_CONFIDENCE:
        rec = measure_tempo(b, sr, bpm_range=(tempo.bpm / math.sqrt(2), tempo.bpm * math.sqrt(2)))
        out["tempo_kept"] = float(abs(rec.bpm / tempo.bpm - 1) <= M.TEMPO_TOLERANCE)
    return out


def summarise(rows: Sequence[Mapping[str, float]], originals: Sequence[np.ndarray],
              recons: Sequence[np.ndarray], sr: int) -> dict[str, Any]:
    """Means over clips (NaN-aware), the kick/attack timing median, and the classifier AUC."""
    def mean(key: str) -> float:
        vals = [r[key] for r in rows if not math.isnan(r[key])]
        return float(np.mean(vals)) if vals else math.nan

    feats_o = [M.segment_features(a, sr) for a in originals]
    feats_r = [M.segment_features(r[:, : a.shape[1]], sr) for a, r in zip(originals, recons, strict=True)]
    offsets = [r["onset_offset_ms"] for r in rows if not math.isnan(r["onset_offset_ms"])]
    return {"mr_log_spectral_distance_db": mean("lsd_db"), "onset_f_measure": mean("onset_f"),
            "onset_offset_ms_median": float(np.median(offsets)) if offsets else math.nan,
            "tempo_preserved": mean("tempo_kept"),
            "clips_with_pulse": sum(1 for r in rows if not math.isnan(r["tempo_kept"])),
            "comb_vs_original": float(np.median([r["comb_vs_original"] for r in rows])),
            "bass_vs_original_db": float(np.median([r["bass_vs_original_db"] for r in rows])),
            "classifier_auc": classifier_auc(feats_r, feats_o), "clips": len(rows)}


Reconstruct = Callable[[np.ndarray, int], np.ndarray]


def torch_codec(checkpoint: str | Path) -> tuple[Reconstruct, int]:
    """A reconstruction function of an autoencoder training checkpoint (levels 1 and 2) and its sample rate."""
    from training.encode import decode_latents, encode_audio, load_autoencoder, reconstruct_level1

    cfg, nets = load_autoencoder(checkpoint)

    def reconstruct(audio: np.ndarray, level: int) -> np.ndarray:
        if level == 1:
            return reconstruct_level1(nets["encoder1"], nets["decoder1"], audio, cfg)
        lat = encode_audio(nets["encoder1"], nets["encoder2"], audio, cfg)
        return decode_latents(nets["decoder2"], nets["decoder1"], lat, cfg, seed=0)

    return reconstruct, cfg.audio.sample_rate


def preset_codec(preset: str | Path, phase: str | None = None) -> tuple[Reconstruct, int]:
    """The same for a preset's ONNX encoders and decoders (level 2 only), as the engine plays them; ``phase``
    overrides the preset's (generator.runtime.phase_vocoder)."""
    from generator.runtime.engine import Engine
    from training.eval import OnnxEncoder

    engine = Engine.load(preset, threads=1, precision="fp32", phase=phase)
    encoder = OnnxEncoder(engine)

    def reconstruct(audio: np.ndarray, level: int) -> np.ndarray:
        if level != 2:
            raise ValueError("a preset's ONNX networks reconstruct through both levels only")
        return np.clip(engine.decode(encoder.encode(audio), seed=0), -1.0, 1.0)

    return reconstruct, engine.config.audio.sample_rate


def evaluate_autoencoder(checkpoint: str | Path, datasets: Sequence[str | Path], clips: int = 12,
                         seconds: float = 12.0, levels: Sequence[int] = (1, 2),
                         progress: bool | None = None, codec: tuple[Reconstruct, int] | None = None) -> dict[str, Any]:
    """Per dataset (named by its kind, or its folder when kinds repeat) and level: :func:`summarise` of up to
    ``clips`` held-out clips of ``seconds`` (spread evenly over the held-out split). ``codec`` replaces the
    checkpoint's networks (e.g. :func:`preset_codec`)."""
    from tqdm import tqdm

    from training.data.dataset import Dataset

    reconstruct, sr = codec or torch_codec(checkpoint)
    out: dict[str, Any] = {}
    for root in datasets:
        ds = Dataset(root)
        chunks = sorted(ds.split("heldout"), key=lambda c: c.id)
        if not chunks:
            logger.warning("dataset %s has no held-out chunks; skipped", root)
            continue
        pick = [chunks[int(i)] for i in np.linspace(0, len(chunks) - 1, min(clips, len(chunks)))]
        name = ds.info.get("kind", Path(root).name)
        name = Path(root).name if name in out or name == "folder" else name
        originals, recon = [], {lv: [] for lv in levels}
        rows: dict[int, list[dict[str, float]]] = {lv: [] for lv in levels}
        for chunk in tqdm(pick, desc=f"autoencoder on {name}", disable=None if progress is None else not progress):
            audio = ds.audio(chunk)[:, : int(seconds * sr)]
            originals.append(audio)
            for lv in levels:
                r = reconstruct(audio, lv)
                recon[lv].append(r)
                rows[lv].append(clip_figures(audio, r, sr))
        out[name] = {f"level{lv}": summarise(rows[lv], originals, recon[lv], sr) for lv in levels}
        out[name]["dataset"] = str(root)
        out[name]["heldout_hours"] = sum(c.seconds for c in chunks) / 3600
    return out
