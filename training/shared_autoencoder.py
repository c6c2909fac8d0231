"""A shared autoencoder: one set of encoders and decoders every preset can point at, as the paper's universal ones.

Layout of ``presets/_autoencoders/<name>/``::

    autoencoder.json     format, name, description, licence, the audio and autoencoder configuration, the ONNX
                         files and the training checkpoint with their sha256, the int8 note, training, metrics
    encoder1.onnx encoder2.onnx decoder2.onnx decoder1.onnx     fp32, parity-checked against PyTorch at export
    decoder2.int8.onnx decoder1.int8.onnx                       used only when their quality guard passed
    checkpoint.pt        weights-only training checkpoint (float16 weights of the four networks, no optimiser or
                         critic): `musika train gan --autoencoder` and `musika train encode` read it, and
                         `musika train ae --init-from` continues from it
    MODEL_CARD.md

A preset exported against it (``musika export --autoencoder-dir DIR``) lists these files in its own preset.json by
relative path with the same sha256, so loading checks them as it checks its own.
"""

from __future__ import annotations

import copy
import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from generator.errors import MusikaError
from generator.runtime.model_config import ModelConfig
from generator.runtime.preset import REPO_PRESETS, ModelFile, check_sha256

logger = logging.getLogger(__name__)

FORMAT = "musika-autoencoder/1"
MANIFEST = "autoencoder.json"
CHECKPOINT = "checkpoint.pt"
SHARED_ROOT = REPO_PRESETS / "_autoencoders"
AE_NETWORKS = ("encoder1", "encoder2", "decoder2", "decoder1")


class SharedAutoencoderError(MusikaError):
    """A shared autoencoder directory is missing, malformed, fails its hashes, or does not fit a model."""


def weights_only(state: Mapping[str, Any]) -> dict[str, Any]:
    """The part of an autoencoder training checkpoint a user needs to train on it: the four networks' weights as
    float16, the model configuration, the step and the training configuration (no optimisers, no critic, no RNG)."""
    nets = {name: {k: v.to(torch.float16) if v.is_floating_point() else v
                   for k, v in state["networks"][name].items()} for name in AE_NETWORKS}
    return {"kind": "autoencoder", "format": 1, "weights_only": True, "step": int(state["step"]),
            "model": state["model"], "config": state.get("config", {}), "networks": nets,
            "metrics": dict(state.get("metrics", {})), "wall_seconds": float(state.get("wall_seconds", 0.0))}


def latent_windows(latents: Sequence[np.ndarray], cfg: ModelConfig) -> np.ndarray:
    """Encoded clips (steps, 2 latent_dim) -> decoder2 windows (items, dec2_window, latent_dim), channels stacked
    (as generator_latents gives them), for int8 calibration and its quality guard."""
    ae = cfg.autoencoder
    out = []
    for lat in latents:
        n = (lat.shape[0] // ae.dec2_window) * ae.dec2_window
        for c in range(2):
            out.append(lat[:n, c * ae.latent_dim : (c + 1) * ae.latent_dim].reshape(-1, ae.dec2_window,
                                                                                    ae.latent_dim))
    return np.ascontiguousarray(np.concatenate(out).astype(np.float32))


def read_autoencoder(directory: str | Path, verify: bool = True) -> dict[str, Any]:
    """The manifest of a shared autoencoder directory, every file checked against its sha256 (with verify)."""
    directory = Path(directory)
    path = directory / MANIFEST
    if not directory.is_dir():
        raise SharedAutoencoderError(
            f"no shared autoencoder at {directory}: the folder does not exist. Export one from an autoencoder "
            "training checkpoint with `musika autoencoder export CHECKPOINT --name NAME --data DATASET ...` "
            "(or `musika train ae --data A B C` first), or pass the folder of one you have (--autoencoder-dir)")
    if not path.is_file():
        raise SharedAutoencoderError(
            f"{directory} is not a shared autoencoder: it has no {MANIFEST}. Restore it (git checkout -- "
            f"{directory}) or export one with `musika autoencoder export CHECKPOINT --name NAME`")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise SharedAutoencoderError(f"{path}: not valid JSON (line {exc.lineno}): {exc.msg}") from exc
    if data.get("format") != FORMAT:
        raise SharedAutoencoderError(f"{path}: format {data.get('format')!r} is not supported; this version reads "
                                     f"{FORMAT!r}. Re-export it with `musika autoencoder export`")
    entries = {**data["models"], "checkpoint": data["checkpoint"]}
    entries.update({f"{k}.int8": v for k, v in ((data.get("int8") or {}).get("files") or {}).items()})
    for what, entry in entries.items():
        file = directory / entry["file"]
        if not file.is_file():
            raise SharedAutoencoderError(f"shared autoencoder {directory}: {what} file {file.name} is missing; "
                                         f"restore the folder (git checkout -- {directory}) or re-export it")
        if verify:
            check_sha256(file, entry["sha256"], f"shared autoencoder {directory}", MANIFEST,
                         f"restore the folder (git checkout -- {directory}) or re-export it with `musika autoencoder "
                         "export`", error=SharedAutoencoderError)
    return data


def check_fits(data: Mapping[str, Any], cfg: ModelConfig, directory: str | Path) -> None:
    """Refuse a model whose audio or autoencoder configuration differs from the shared autoencoder's, showing
    both."""
    mine = {"audio": cfg.to_dict()["audio"], "autoencoder": cfg.to_dict()["autoencoder"]}
    theirs = data["architecture"]
    for section in ("audio", "autoencoder"):
        a = json.loads(json.dumps({k: v for k, v in theirs[section].items() if k not in ("phase", "loudness_lufs")}))
        b = json.loads(json.dumps({k: v for k, v in mine[section].items() if k not in ("phase", "loudness_lufs")}))
        if a != b:
            raise SharedAutoencoderError(
                f"the model's {section} configuration does not match the shared autoencoder {directory}: "
                f"autoencoder {a}; model {b}. Encode the latents and train the GAN with this autoencoder "
                f"(musika train encode --autoencoder {Path(directory) / CHECKPOINT})")


def shared_models(data: Mapping[str, Any], ae_dir: str | Path, preset_dir: str | Path) -> tuple[
        dict[str, ModelFile], dict[str, Any] | None]:
    """The preset.json model entries for the shared networks (paths relative to ``preset_dir``, where the preset
    will live) and the int8 note with its files re-pointed the same way."""
    rel = Path(os.path.relpath(Path(ae_dir).resolve(), Path(preset_dir).resolve()))
    models = {k: ModelFile(file=str(rel / v["file"]), sha256=v["sha256"]) for k, v in data["models"].items()}
    note = copy.deepcopy(data.get("int8"))
    if note:
        note["files"] = {k: {"file": str(rel / v["file"]), "sha256": v["sha256"]} for k, v in note["files"].items()}
    return models, note
