"""MODEL_CARD.md of a shared autoencoder, written from its autoencoder.json (training.shared_autoencoder)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

# what each domain's held-out reconstructions must reach (the shared autoencoder's quality bar)
TARGETS = {"mr_log_spectral_distance_db": ("<=", 4.0), "onset_f_measure": (">=", 0.95),
           "tempo_preserved": (">=", 1.0), "onset_offset_ms_median": ("abs<=", 5.0)}
ROWS = (("mr_log_spectral_distance_db", "log-spectral distance (dB)", "{:.2f}"),
        ("onset_f_measure", "onset F-measure (50 ms)", "{:.3f}"),
        ("onset_offset_ms_median", "attack timing, median (ms; < 0 early)", "{:+.1f}"),
        ("tempo_preserved", "tempo kept (clips with a pulse)", "{:.0%}"),
        ("comb_vs_original", "43 Hz frame comb / original's", "{:.1f}"),
        ("bass_vs_original_db", "below 120 Hz vs original (dB; median)", "{:+.1f}"),
        ("classifier_auc", "classifier AUC, reconstruction vs original", "{:.3f}"),
        ("clips", "held-out clips", "{}"))


LINEAR_NOTE = " (and a linear path beside each level-1 network, started as principal components)"

def passes(key: str, value: float) -> bool | None:
    """Whether a figure meets its target (None: no target or no value)."""
    if key not in TARGETS or value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    op, bound = TARGETS[key]
    return {"<=": value <= bound, ">=": value >= bound, "abs<=": abs(value) <= bound}[op]


def _fmt(value: Any, fmt: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return fmt.format(value)


def _size(directory: Path) -> str:
    total = sum(p.stat().st_size for p in directory.iterdir() if p.is_file())
    return f"{total / 1e6:.1f} MB"


def evaluation_lines(metrics: Mapping[str, Any]) -> list[str]:
    """One table per level: a row per measure, a column per domain, each cell marked against its target."""
    domains = [d for d in metrics.get("domains", {})]
    if not domains:
        return ["Not measured yet: `musika autoencoder eval DIR --data DATASET ...`."]
    lines = [f"`musika autoencoder eval` on {metrics.get('date', '?')}: {metrics.get('clips_per_domain', '?')} "
             f"held-out clips of {metrics.get('seconds', '?')} s per domain (noise seed 0)."]
    for level, title in (("level2", "Both levels (what a GAN's latents can sound like at best)"),
                         ("level1", "Level 1 only (encoder1 -> decoder1)")):
        lines += ["", f"### {title}", "", "| measure | target | " + " | ".join(domains) + " |",
                  "|---|---|" + "---|" * len(domains)]
        for key, label, fmt in ROWS:
            op, bound = TARGETS.get(key, ("", None))
            target = "" if bound is None else (f"within ±{bound:g}" if op == "abs<=" else f"{op} {bound:g}")
            cells = []
            for d in domains:
                value = metrics["domains"][d].get(level, {}).get(key)
                ok = passes(key, value)
                cells.append(_fmt(value, fmt) + ("" if ok is None else (" ✓" if ok else " ✗")))
            lines.append(f"| {label} | {target} | " + " | ".join(cells) + " |")
    return lines


def write_card(directory: str | Path, manifest: Mapping[str, Any]) -> Path:
    """Write MODEL_CARD.md beside autoencoder.json."""
    directory = Path(directory)
    arch = manifest["architecture"]["autoencoder"]
    audio = manifest["architecture"]["audio"]
    training = manifest.get("training", {})
    params = manifest.get("parameters", {})
    shipped = f"presets/_autoencoders/{directory.name}"  # where the repository ships it
    lines = [f"# Shared autoencoder `{manifest['name']}`", "", manifest.get("description", ""), "",
             f"License: {manifest.get('license', 'unknown')}", "",
             "Presets point at this folder instead of shipping their own encoders and decoders (`models` entries "
             f"by relative path, checked against the same sha256). Train your own preset on it with `musika train "
             f"preset FOLDER --name NAME --autoencoder-dir {shipped}` (the default for `universal`), or stage by "
             f"stage with `musika train encode --autoencoder {shipped}/checkpoint.pt`, `musika train gan` and "
             f"`musika export --autoencoder-dir {shipped}`.", "",
             "## Networks", "",
             f"STFT {audio['n_fft']}/{audio['hop']} at {audio['sample_rate']} Hz; level 1: one frame -> "
             f"{arch['frame_dim']} floats{LINEAR_NOTE if arch.get('level1_linear') else ''}; "
             f"level 2: {arch['level2_frames']} level-1 vectors -> {arch['latent_dim']} "
             f"floats per channel ({arch['level2_frames'] * arch['frame_dim'] // arch['latent_dim']}x).", "",
             "| network | parameters | ONNX parity (max abs) |", "|---|---|---|"]
    lines += [f"| {k} | {v:,} | {manifest.get('onnx_parity_max_abs', {}).get(k, float('nan')):.1e} |"
              for k, v in params.items()]
    int8 = manifest.get("int8") or {}
    quality = int8.get("quality") or {}
    if int8:
        int8_line = (f"int8 decoders: {int8.get('method')}; quality guard "
                     f"{'passed' if quality.get('passed') else 'not passed'} (ratio {quality.get('ratio')}; "
                     f"{quality.get('rule', '')}).")
    else:
        int8_line = "int8 decoders: none (the engine plays the fp32 ones)."
    lines += ["", f"{int8_line} Folder size: {_size(directory)}.", "", "## Training data", "",
              "| domain | dataset | hours (train) | source | licence |", "|---|---|---|---|---|"]
    for d in training.get("data", []):
        lines.append(f"| {d.get('kind')} | `{d.get('dataset')}` | {d.get('hours_train', 0):.2f} | "
                     f"{'; '.join(d.get('sources', []))} | {'; '.join(d.get('licences', []))} |")
    lines += ["", "Every domain is drawn equally often, whatever its hours.", "", "## Training", "",
              f"Steps: {training.get('steps')} (level 1 {training.get('steps_level1', '?')}, level 2 "
              f"{training.get('steps_level2', '?')}); wall time {training.get('wall_hours', float('nan')):.2f} h; "
              f"hardware: {training.get('hardware', '?')}.", ""]
    lines += [f"- {note}" for note in training.get("notes", [])]
    lines += ["", "## Evaluation", "", *evaluation_lines(manifest.get("metrics", {}))]
    if (directory / "reconstructions.png").is_file():
        lines += ["", "Held-out audio (top of each pair) and its reconstruction through both levels:", "",
                  "![reconstructions](reconstructions.png)"]
    path = directory / "MODEL_CARD.md"
    path.write_text("\n".join(lines) + "\n")
    return path
