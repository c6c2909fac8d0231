"""Exporting a training checkpoint's autoencoder into a shared autoencoder folder (training.shared_autoencoder
describes the folder and reads it; this module writes it, through the ONNX export and the int8 variants)."""

from __future__ import annotations

import copy
import json
import logging
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from generator.atomic import replace_dir
from generator.runtime.preset import sha256_file
from training.shared_autoencoder import (
    AE_NETWORKS,
    CHECKPOINT,
    FORMAT,
    MANIFEST,
    SHARED_ROOT,
    latent_windows,
    read_autoencoder,
    weights_only,
)

logger = logging.getLogger(__name__)


def export_autoencoder(checkpoint: str | Path, name: str, audio: Sequence[np.ndarray],
                       out_root: str | Path = SHARED_ROOT, description: str = "", license: str = "unknown",
                       training: Mapping[str, Any] | None = None, int8: str | None = "static") -> Path:
    """Export the autoencoder of a training checkpoint into ``out_root/name`` and return that directory.

    audio: a few real clips (2, samples) float32 at 44.1 kHz from the training domains; their latents calibrate
    the int8 decoders (first half) and check them (second half). Nothing appears at the destination unless every
    network passes its parity check; an existing directory is replaced.
    """
    from training.checkpoint import load_checkpoint, save_checkpoint
    from training.encode import encode_audio, load_autoencoder
    from training.export import export_onnx, parity_check
    from training.export_opt import fast_network, write_int8_decoders

    cfg, nets = load_autoencoder(checkpoint)
    state = load_checkpoint(checkpoint)
    out_root = Path(out_root)
    out_root.mkdir(parents=True, exist_ok=True)
    final, tmp = out_root / name, out_root / f".{name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        files, parity, params = {}, {}, {}
        for net_name in AE_NETWORKS:
            path = tmp / f"{net_name}.onnx"
            fast = fast_network(net_name, copy.deepcopy(nets[net_name]))
            export_onnx(net_name, fast if fast is not None else nets[net_name], cfg, path)
            parity[net_name] = parity_check(net_name, nets[net_name], path, cfg)
            params[net_name] = sum(p.numel() for p in nets[net_name].parameters())
            files[net_name] = {"file": path.name, "sha256": sha256_file(path)}
        note = None
        if int8 is not None:
            with torch.no_grad():
                lat = [encode_audio(nets["encoder1"], nets["encoder2"], a, cfg) for a in audio]
            half = max(1, len(lat) // 2)
            note = write_int8_decoders(tmp, latent_windows(lat[:half], cfg)[:64], latent_windows(lat[half:] or lat,
                                                                                                 cfg)[:64], cfg, int8)
        save_checkpoint(tmp / CHECKPOINT, weights_only(state))
        manifest = {
            "format": FORMAT, "name": name, "description": description, "license": license,
            "architecture": {"audio": cfg.to_dict()["audio"], "autoencoder": cfg.to_dict()["autoencoder"]},
            "models": files, "checkpoint": {"file": CHECKPOINT, "sha256": sha256_file(tmp / CHECKPOINT)},
            "int8": note, "parameters": params, "onnx_parity_max_abs": parity,
            "training": {"steps": int(state["step"]), **dict(training or {})}, "metrics": {},
        }  # fmt: skip
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        read_autoencoder(tmp)  # the checks a preset export will run
        replace_dir(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    logger.info("wrote the shared autoencoder %s to %s", name, final)
    return final
