"""MODEL_CARD.md for a preset directory, written from preset.json alone (plus a spectrogram of generated audio).

Sections: description and licence, configuration, networks, conditioning, training (data, data hours, steps,
wall time, hardware), evaluation (the figures `musika eval` wrote into preset.json "metrics", with the bars as
pass/fail), a spectrogram picture of a generated excerpt, generated audio beside held-out training audio (written by
`musika eval` with a dataset), and any hand-written ``## Notes`` section of the
previous card, kept verbatim. Rewriting is idempotent: the card is a function of preset.json and the notes.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from generator.atomic import write_text
from generator.runtime.preset import Preset, load_preset

logger = logging.getLogger(__name__)

CARD_FILE = "MODEL_CARD.md"
SPECTROGRAM_FILE = "spectrogram.png"  # the name training/finalize.py writes too
LISTENING_FILE = "listening.png"  # generated audio beside held-out training audio (written by `musika eval`)
NOTES_HEADING = "## Notes"
PHASE_TEXT = {"decoder": "decoder1's", "vocoder": "made from the magnitudes (generator.runtime.phase_vocoder)",
              "vocoder-joins": "made from the magnitudes, restarted at attacks on decoder-window joins too"}
EXCERPT_SECONDS = 8.0
EVAL_ROWS: dict[str, list[tuple[str, str, str]]] = {  # section -> (key, label, format)
    "tempo": [("within_tolerance", "clips within +-2 % of the requested tempo", "{:.0%}"),
              ("median_abs_error_pct", "median tempo error (%)", "{:.2f}"),
              ("median_ibi_cv", "median inter-beat-interval CV", "{:.3f}"),
              ("spearman", "Spearman, requested vs measured BPM", "{:.3f}"),
              ("found_fraction", "clips where a beat was found", "{:.0%}")],
    "beats": [("median_abs_ms", "heard beats: median absolute offset from the conditioned grid (ms)", "{:.1f}"),
              ("p95_abs_ms", "heard beats: 95th percentile of the absolute offset (ms)", "{:.1f}"),
              ("median_ms", "heard beats: median offset (ms, + late)", "{:+.1f}")],
    "density": [("spearman", "Spearman, requested vs measured onsets/s", "{:.3f}"),
                ("median_abs_log_ratio", "median abs log(measured / requested)", "{:.2f}")],
    "autoencoder": [("onset_f_measure", "onset F-measure, original vs reconstruction (50 ms)", "{:.3f}"),
                    ("tempo_preserved", "clips whose tempo survives reconstruction (+-2 %)", "{:.0%}"),
                    ("mr_log_spectral_distance_db", "multi-resolution log-spectral distance (dB)", "{:.2f}"),
                    ("clips", "held-out clips", "{}")],
    "realism": [("ratio", "Frechet distance ratio, generated / held-out halves (1 = as close as the data "
                 "is to itself)", "{:.2f}"),
                ("fd_generated", "Frechet distance, generated vs held-out", "{:.1f}"),
                ("fd_heldout_halves", "Frechet distance, held-out half vs half", "{:.1f}"),
                ("classifier_auc", "classifier AUC, generated vs held-out 3 s segments, split by source (0.5 = "
                 "indistinguishable)", "{:.3f}"),
                ("comb_ratio_heldout", "43 Hz frame comb of the held-out audio", "{:.1f}"),
                ("comb_vs_heldout", "43 Hz frame comb, generated / held-out", "{:.2f}")],
    "output": [("true_peak_max_dbtp", "highest true peak of any clip (dBTP)", "{:.2f}"),
               ("clipped_samples", "clipped samples over all clips", "{}"),
               ("loudness_lufs_median", "median integrated loudness (LUFS)", "{:.1f}"),
               ("loudness_lufs_min", "quietest clip (LUFS)", "{:.1f}"),
               ("loudness_lufs_max", "loudest clip (LUFS)", "{:.1f}"),
               ("comb_ratio", "43 Hz frame comb of the generated audio (power at multiples / around)", "{:.1f}")],
    "seams": [("decoder_ratio", "peak spectral flux at decoder-window joins / elsewhere", "{:.2f}"),
              ("generator_ratio", "peak spectral flux at generator-half joins / elsewhere", "{:.2f}")],
}


def extract_notes(card_text: str) -> str:
    """The ``## Notes`` section of a card (heading included, up to the next ``## `` heading), or ""."""
    lines = card_text.splitlines()
    for i, line in enumerate(lines):
        if line.strip() == NOTES_HEADING:
            end = next((j for j in range(i + 1, len(lines)) if lines[j].startswith("## ")), len(lines))
            return "\n".join(lines[i:end]).rstrip() + "\n"
    return ""


def _fmt(value: Any, fmt: str) -> str:
    if value is None:
        return "n/a"
    try:
        return fmt.format(value)
    except (TypeError, ValueError):
        return str(value)


def _onnx_parameters(path: Path) -> int | None:
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError:
        return None
    model = onnx.load(str(path), load_external_data=False)
    return int(sum(numpy_helper.to_array(t).size for t in model.graph.initializer))


def data_hours(training: Mapping[str, Any]) -> float | None:
    """Training hours: training["data_hours"], else the train split of the dataset.json at training["data"]."""
    if training.get("data_hours") is not None:
        return float(training["data_hours"])
    data = training.get("data")
    info = Path(str(data)) / "dataset.json" if data else None
    if info is not None and info.is_file():
        meta = json.loads(info.read_text())
        return float(meta.get("hours_by_split", {}).get("train", meta.get("hours", 0.0)))
    return None


def _training_lines(preset: Preset) -> list[str]:
    t = preset.training
    if not t:
        return ["Not recorded (the preset was exported without a training run)."]
    hours = data_hours(t)
    wall = t.get("wall_time_s")
    rows = [("data", f"`{t['data']}`" if t.get("data") else None),
            ("data hours (train split)", f"{hours:.2f}" if hours is not None else None),
            ("autoencoder steps", t.get("autoencoder_steps")), ("GAN steps", t.get("gan_steps")),
            ("wall time", f"{wall / 3600:.2f} h" if isinstance(wall, int | float) else None),
            ("hardware", t.get("hardware")), ("date", t.get("date")),
            ("conditions", ", ".join(t.get("conditions", [])) or "none")]
    if t.get("gan_snapshot"):  # musika train preset: which of the GAN's snapshots plays, and why
        rows.append(("GAN snapshot played", t["gan_snapshot"]))
    lines = ["| | |", "|---|---|", *[f"| {k} | {_fmt(v, '{}')} |" for k, v in rows]]
    extra = sorted(set(t) - {"data", "data_hours", "autoencoder_steps", "gan_steps", "wall_time_s", "hardware",
                             "date", "conditions", "gan_snapshot"})
    lines += [f"| {k} | {_fmt(t[k], '{}')} |" for k in extra]
    losses = preset.metrics.get("training_losses") or {}
    if losses:
        lines += ["", "Final training losses (names as in training/losses.py):", "", "| loss | value |", "|---|---|"]
        lines += [f"| `{k}` | {_fmt(v, '{:.4g}')} |" for k, v in losses.items()]
    return lines


def _evaluation_lines(metrics: Mapping[str, Any]) -> list[str]:
    ev = metrics.get("eval")
    if not ev:
        return ["Not evaluated yet: run `musika eval PRESET --dataset DIR`."]
    lines = [f"`musika eval` on {ev.get('date')}: {ev.get('clips')} generated clips of {ev.get('seconds')} s "
             f"({ev.get('seeds')} seed(s) per setting{', quick mode' if ev.get('quick') else ''}); held-out audio "
             f"from `{ev.get('dataset')}`; {ev.get('wall_time_s')} s.", ""]
    bar_rows = metrics.get("bars") or {}
    if bar_rows:
        lines += ["Bars a shipped preset must meet (tempo presets: tempo and seams; density presets: Spearman):",
                  "", "| bar | value | required | result |", "|---|---|---|---|"]
        lines += [f"| `{k}` | {_fmt(b.get('value'), '{:.3g}')} | {b['op']} {b['threshold']:g} | "
                  f"{'PASS' if b.get('pass') else 'FAIL'} |" for k, b in bar_rows.items()]
        lines.append("")
    lines += ["| metric | value | what it measures |", "|---|---|---|"]
    for section, rows in EVAL_ROWS.items():
        values = metrics.get(section)
        if values:
            lines += [f"| `{section}/{k}` | {_fmt(values.get(k), f)} | {label} |" for k, label, f in rows]
    for section, reason in (metrics.get("skipped") or {}).items():
        lines.append(f"| `{section}` | skipped | {reason} |")
    per = (metrics.get("tempo") or {}).get("per_bpm") or []
    if per:
        asked = ("the tempi of its training chunks (quantiles)" if ev.get("tempi") == "training data"
                 else "120-160 BPM within its range")
        lines += ["", f"Tempi asked for: {asked}.", "", "| requested BPM | median measured | within +-2 % |",
                  "|---|---|---|"]
        lines += [f"| {p['bpm']:g} | {_fmt(p.get('median_measured'), '{:.2f}')} | "
                  f"{_fmt(p.get('within_tolerance'), '{:.0%}')} |" for p in per]
    per = (metrics.get("density") or {}).get("per_level") or []
    if per:
        lines += ["", "| requested onsets/s | median measured |", "|---|---|"]
        lines += [f"| {p['requested']:.2f} | {_fmt(p.get('median_measured'), '{:.2f}')} |" for p in per]
    lines += ["", "Tempo: librosa beat_track (hop 64) plus a line fit over the beat times, octave errors folded. "
              "Realism: Frechet distance on log-mel/MFCC/chroma/onset statistics of 3 s segments."]
    return lines


def render_card(preset: Preset, notes: str = "", picture: str | None = SPECTROGRAM_FILE,
                listening: str | None = None) -> str:
    """The card's markdown from a loaded preset (pure apart from reading ONNX weight counts)."""
    cfg = preset.config
    lines = [f"# {preset.name}", "", preset.description, "", f"License: {preset.license}", "", "## Configuration", "",
             "| | |", "|---|---|",
             f"| audio | {cfg.audio.sample_rate} Hz, {cfg.audio.channels} channels, STFT {cfg.audio.n_fft}/"
             f"{cfg.audio.hop}; phase: {PHASE_TEXT[cfg.audio.phase]} |",
             f"| latents | {cfg.autoencoder.latent_dim} per channel at {cfg.latent_rate_hz:.2f} Hz |",
             f"| generator window | {cfg.gan.window_len} latents ({cfg.gan.window_len / cfg.latent_rate_hz:.1f} s), "
             f"two halves of {cfg.gan.half_len}; truncation {cfg.gan.default_truncation:g} (the `variation` default) |",
             f"| widths | generator base {cfg.gan.base_channels}, decoder1 {list(cfg.autoencoder.dec1_widths)}, "
             f"decoder2 {list(cfg.autoencoder.dec2_widths)} |",
             "", "## Networks", "", "| network | file | ONNX weights | parity (max abs) |", "|---|---|---|---|"]
    parity = preset.metrics.get("onnx_parity_max_abs") or {}
    for name, model in preset.models.items():
        count = _onnx_parameters(preset.model_path(name)) if preset.path else None
        lines.append(f"| {name} | `{model.file}` | {_fmt(count, '{:,}')} | {_fmt(parity.get(name), '{:.2e}')} |")
    lines += ["", "## Conditioning", ""]
    if preset.conditioning:
        lines += ["| name | kind | unit | range | default |", "|---|---|---|---|---|"]
        lines += [f"| {c.name} | {c.kind} | {c.unit} | {c.min:g}..{c.max:g} | {c.default:g} |"
                  for c in preset.conditioning]
        if preset.phases:
            lines += ["", "Phases (" + ", ".join(f"`{c.name}`, periods {', '.join(f'{p:g}' for p in c.periods)} "
                                                 "beats" for c in preset.phases)
                      + ") are not controls: the engine computes them from the tempo and the host's bar grid."]
        lines += ["", f"Guidance (default): {preset.config.gan.default_guidance:g} "
                      "(latents = u + g (c - u); 1 = the conditioned generator as trained)."]
    else:
        lines.append("None: the model is unconditional.")
    lines += ["", "## Training", "", *_training_lines(preset), "", "## Evaluation", "",
              *_evaluation_lines(preset.metrics), ""]
    if picture:
        label = ", ".join(f"{c.name} {c.default:g} {c.unit}" for c in preset.conditioning) or "unconditioned"
        lines += ["## Generated excerpt", "", f"![spectrogram of a generated excerpt ({label}, seed 1)]({picture})",
                  ""]
    if listening:
        lines += ["## Generated next to its training audio", "",
                  "Same length, same colour scale (dB re full scale), log frequency: a generated clip at the held-out "
                  "clip's own labels (seed 1, as `musika generate` writes it) beside that held-out training clip.",
                  "", f"![generated audio beside held-out training audio]({listening})", ""]
    if notes:
        lines += [notes.rstrip(), ""]
    return "\n".join(lines)


def write_spectrogram(preset: Preset, seconds: float = EXCERPT_SECONDS, seed: int = 1,
                      threads: int | None = None) -> Path:
    """Generate `seconds` at the default conditioning and save its spectrogram as SPECTROGRAM_FILE."""
    from generator.offline.spectrogram_png import spectrogram_png
    from generator.runtime.engine import Engine

    audio = Engine(preset, threads=threads).generate(seconds, seed=seed)
    label = ", ".join(f"{c.name} {c.default:g} {c.unit}" for c in preset.conditioning) or "unconditioned"
    return spectrogram_png(Path(preset.path) / SPECTROGRAM_FILE,
                           [(f"{preset.name}: generated excerpt ({label}), seed {seed}", audio)])


def write_listening(preset: Preset, dataset: Any, seconds: float = EXCERPT_SECONDS, seed: int = 1,
                    threads: int | None = None) -> Path | None:
    """Write LISTENING_FILE: `seconds` of the first held-out chunk of `dataset` (a training.data.dataset.Dataset)
    that long (else of its longest) beside as much audio the preset generates at that chunk's labels (its controls
    clamped to their ranges). Returns None when the dataset has no held-out chunk."""
    import numpy as np

    from generator.offline.spectrogram_png import spectrogram_png
    from generator.runtime.engine import Engine

    chunks = sorted(dataset.split("heldout"), key=lambda c: c.id)
    if not chunks:
        return None
    chunk = next((c for c in chunks if c.seconds >= seconds), max(chunks, key=lambda c: c.seconds))
    seconds = min(seconds, chunk.seconds)
    engine = Engine(preset, threads=threads)
    sr = engine.config.audio.sample_rate
    start = int(min(chunk.seconds - seconds, seconds) * sr)  # past a track's first bars where the chunk allows
    real = dataset.audio(chunk)[:, start : start + int(seconds * sr)]
    values = {}
    for c in preset.conditioning:
        if c.kind == "phase":
            continue
        if c.name in chunk.curves:  # per latent step: its mean over the excerpt
            a, b = (int(t * engine.config.latent_rate_hz) for t in (start / sr, start / sr + seconds))
            curve = np.load(dataset.root / chunk.curves[c.name])[a:b]
            value = float(np.nanmean(curve)) if curve.size else np.nan
        else:
            value = float(chunk.labels.get(c.name, np.nan))
        if np.isfinite(value):
            values[c.name] = float(np.clip(value, c.min, c.max))
    generated = engine.generate(seconds, values, seed=seed)
    label = ", ".join(f"{k} {v:.3g}" for k, v in values.items()) or "unconditioned"
    return spectrogram_png(Path(preset.path) / LISTENING_FILE,
                           [(f"{preset.name}: generated ({label}, seed {seed})", generated),
                            (f"held-out training audio ({chunk.id})", real)], columns=True)


def write_model_card(preset_dir: str | Path, picture: bool = True, seconds: float = EXCERPT_SECONDS,
                     threads: int | None = None) -> Path:
    """(Re)write MODEL_CARD.md (and with `picture`, the spectrogram PNG) in a preset directory; keeps ## Notes."""
    preset = load_preset(preset_dir)
    directory = Path(preset.path)
    card = directory / CARD_FILE
    notes = extract_notes(card.read_text()) if card.is_file() else ""
    if picture:
        write_spectrogram(preset, seconds=seconds, threads=threads)
    has_picture = (directory / SPECTROGRAM_FILE).is_file()
    has_listening = (directory / LISTENING_FILE).is_file()
    write_text(card, render_card(preset, notes, SPECTROGRAM_FILE if has_picture else None,
                                 LISTENING_FILE if has_listening else None))
    logger.info("wrote %s", card)
    return card
