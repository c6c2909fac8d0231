"""Training checkpoints -> a shipped preset: ONNX export with parity checks (training.export.export_preset),
then the model card's training section and a spectrogram of a generated excerpt.

The preset gets the EMA generator, decoder2 and decoder1, and (unless ``encoders=False``) encoder1 and
encoder2. preset.json "training" records data, steps, wall time, hardware and date; "metrics" the final
training losses under their names from training/losses.py.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import logging
import math
import platform
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from generator.runtime.model_config import PHASES, ModelConfig
from generator.runtime.preset import Condition
from training.checkpoint import load_checkpoint
from training.errors import CheckpointError
from training.losses import LOSSES, METRICS

logger = logging.getLogger(__name__)

SPECTROGRAM_FILE = "spectrogram.png"


def _card_rows(metrics: Mapping[str, float]) -> list[str]:
    rows = ["| loss | final value | weight (default) | what it measures |", "|---|---|---|---|"]
    for name, value in metrics.items():
        if name in LOSSES:
            rows.append(f"| `{name}` | {value:.4g} | {LOSSES[name].weight:g} | {LOSSES[name].help} |")
        elif name in METRICS:
            rows.append(f"| `{name}` | {value:.4g} | - | {METRICS[name]} |")
    return rows


def training_section(ae: Mapping[str, Any], gan: Mapping[str, Any], hardware: str) -> str:
    """Markdown for the model card: data, steps, wall time, final losses of both stages."""
    ac, gc = ae.get("config", {}), gan["config"]
    lines = [
        f"Data: `{ac.get('dataset', '?')}` (latent cache `{gc['latents']}`); hardware: {hardware}.", "",
        f"Autoencoder: {ae['step']} steps (level 1: {ac.get('steps_level1', '?')}, level 2: "
        f"{ac.get('steps_level2', '?')}), batch {ac.get('batch', '?')}, {ae.get('wall_seconds', 0.0) / 60:.1f} min"
        f"{' (a shared autoencoder, weights only)' if ae.get('weights_only') else ''}.", "",
        f"GAN: {gan['step']} steps, batch {gc['batch']}, lr {gc['lr']:g}, conditions "
        f"{', '.join(gc['conditions']) or 'none'} (dropout {gc['cond_dropout']:g}), EMA {gc['ema_decay']:g}, "
        f"{gan.get('wall_seconds', 0.0) / 60:.1f} min.", "",
        "Final training losses (the names are the config weights and the TensorBoard tags):", "",
        *_card_rows({**ae.get("metrics", {}), **gan.get("metrics", {})}), "",
        f"![generated excerpt]({SPECTROGRAM_FILE})", "",
    ]
    return "\n".join(lines)


def export_run(
    autoencoder: str | Path,
    gan: str | Path,
    out_dir: str | Path,
    name: str,
    description: str = "",
    license: str = "unknown",
    encoders: bool = True,
    int8: str | None = "static",
    guidance: float = 1.0,
    truncation: float | None = None,
    phase: str = "decoder",
    autoencoder_dir: str | Path | None = None,
) -> Path:
    """Export the checkpoints into ``out_dir/name`` and return the preset directory.

    autoencoder_dir: a shared autoencoder folder (its checkpoint.pt is ``autoencoder``): the preset ships only
    its generator and points at the shared encoders and decoders.

    int8 "static" (default) also ships int8 decoders, used by the engine only when their quality guard passed.
    guidance: the preset's default conditioning guidance (see generator.runtime.engine.Engine). truncation: the preset's
    default truncation bound of the latent coordinates (the `variation` control; None: the config's, 2). phase: how
    the engine makes the phase of decoded spectra by default ("decoder" or "vocoder",
    generator.runtime.phase_vocoder)."""
    from generator.offline.spectrogram_png import spectrogram_png
    from training.encode import load_autoencoder
    from training.export import export_preset
    from training.loop_gan import generate_audio
    from training.models import Generator

    if not (math.isfinite(guidance) and 0.0 <= guidance <= 10.0):
        raise CheckpointError(f"--guidance {guidance} is invalid; use a value between 0 and 10 (1 = as trained)")
    if truncation is not None and not (math.isfinite(truncation) and 0.0 < truncation <= 10.0):
        raise CheckpointError(f"--truncation {truncation} is invalid; use a bound above 0 and at most 10 "
                              "(smaller: closer to the typical output, less varied)")
    ae_state = load_checkpoint(autoencoder)
    gan_state = load_checkpoint(gan)
    if gan_state.get("kind") != "gan":
        raise CheckpointError(f"{gan} is not a GAN checkpoint (expected RUN/gan/checkpoint.pt)")
    model = ModelConfig.from_dict(gan_state["model"])
    defaults = {"default_guidance": float(guidance)}
    if truncation is not None:
        defaults["default_truncation"] = float(truncation)
    model = dataclasses.replace(model, gan=dataclasses.replace(model.gan, **defaults))
    ae_model, nets = load_autoencoder(autoencoder)
    if ae_model.autoencoder != model.autoencoder or dataclasses.replace(ae_model.audio, phase=model.audio.phase,
                                                                        loudness_lufs=None) != dataclasses.replace(
            model.audio, loudness_lufs=None):
        raise CheckpointError(f"{gan} was trained on latents of a different autoencoder than {autoencoder} "
                              f"(the GAN's: {model.autoencoder}; the autoencoder's: {ae_model.autoencoder}); "
                              "export the GAN with the autoencoder its latent cache was encoded with")
    if phase not in PHASES:
        raise CheckpointError(f"--phase {phase!r} is invalid; use one of {', '.join(PHASES)}")
    model = dataclasses.replace(model, audio=dataclasses.replace(model.audio, phase=phase))
    gen = Generator(model)
    gen.load_state_dict(gan_state["networks"]["generator_ema"])
    gen.eval()
    conds = tuple(Condition(**c) for c in gan_state["conditioning"])
    networks = {"generator": gen, "decoder2": nets["decoder2"], "decoder1": nets["decoder1"]}
    if encoders:
        networks.update(encoder1=nets["encoder1"], encoder2=nets["encoder2"])
    hardware = f"{platform.machine()} {platform.processor() or platform.system()}, torch {torch.__version__}"
    training = {
        "data": ae_state.get("config", {}).get("dataset"),
        "autoencoder_steps": int(ae_state["step"]),
        "gan_steps": int(gan_state["step"]),
        "wall_time_s": round(float(ae_state.get("wall_seconds", 0.0)) + float(gan_state.get("wall_seconds", 0.0)), 1),
        "hardware": hardware,
        "date": _dt.date.today().isoformat(),
        "conditions": list(gan_state["config"]["conditions"]),
    }
    metrics = {k: float(v) for k, v in {**ae_state.get("metrics", {}), **gan_state.get("metrics", {})}.items()}
    directory = export_preset(networks, model, out_dir, name, description or f"Musika preset {name}",
                              conditioning=conds, training=training, metrics={"training_losses": metrics},
                              license=license, int8=int8, autoencoder_dir=autoencoder_dir)
    audio = generate_audio(gen, nets["decoder2"], nets["decoder1"], model, conds, seed=1, windows=1, phase=phase)
    label = ", ".join(f"{c.name} {c.default:g} {c.unit}" for c in conds) or "unconditioned"
    spectrogram_png(directory / SPECTROGRAM_FILE, [(f"{name}: generated excerpt ({label}), seed 1", audio)])
    card = directory / "MODEL_CARD.md"
    text = card.read_text().replace("(to be filled in by the training run)",
                                    training_section(ae_state, gan_state, hardware))
    card.write_text(text)
    logger.info("exported preset %s to %s", name, directory)
    return directory
