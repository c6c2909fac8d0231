"""ONNX export of the networks, the ONNX Runtime vs PyTorch parity check, and writing a whole preset.

Every network is exported with the input/output names of generator/runtime/onnx_io.py (opset ``OPSET``, batch the
only dynamic axis, noise as an explicit (B, N) input). :func:`parity_check` runs the ONNX file and the
module on the same seeded inputs and noise and raises :class:`ExportError` when they differ by more than
``PARITY_TOL``. :func:`export_preset` exports every network, checks each, and writes preset.json (through
generator.runtime.preset) and a MODEL_CARD.md stub, all in a temporary directory renamed into place at the end.
"""

from __future__ import annotations

import copy
import logging
import os
import shutil
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import Tensor, nn

from generator.atomic import replace_dir
from generator.runtime.model_config import ModelConfig
from generator.runtime.onnx_io import INPUTS, NETWORKS, OPSET, OUTPUTS, REQUIRED_NETWORKS
from generator.runtime.preset import Condition, ModelFile, Preset, load_preset, sha256_file, write_preset_json
from training.errors import ExportError
from training.export_opt import INT8_METHODS, fast_network, write_int8_variants

logger = logging.getLogger(__name__)

PARITY_TOL = 1e-4
OPTIMISE = ("exact", "none")


def input_names(net_name: str, cfg: ModelConfig) -> list[str]:
    """The ONNX inputs of a network, in order: conditioning inputs only when the config declares them."""
    if net_name not in INPUTS:
        raise ExportError(f"unknown network {net_name!r}; exportable networks: {', '.join(NETWORKS)}")
    skip = set()
    if cfg.gan.cond_scalars == 0:
        skip.add("cond_scalar")
    if cfg.gan.cond_curves == 0:
        skip.add("cond_curve")
    names = INPUTS[net_name]
    return [n for n in names if not (net_name == "generator" and n in skip)]


def example_inputs(net_name: str, module: nn.Module, cfg: ModelConfig, batch: int = 2, seed: int = 0) -> dict:
    """Seeded float32 numpy inputs of the right shapes. With batch > 1 and conditioning, item 1 has NaN
    scalars and item 0 a NaN second half of its curves, so the "absent" path is exercised too."""
    rng = np.random.default_rng(seed)
    ae, g = cfg.autoencoder, cfg.gan

    def unif(*shape: int, lo: float = -1.0) -> np.ndarray:
        return rng.uniform(lo, 1.0, size=shape).astype(np.float32)

    out: dict[str, np.ndarray] = {}
    for name in input_names(net_name, cfg):
        if name == "coords":
            out[name] = rng.standard_normal((batch, g.half_len, g.coord_dim)).astype(np.float32)
        elif name == "cond_scalar":
            out[name] = unif(batch, g.cond_scalars)
            if batch > 1:
                out[name][1] = np.nan
        elif name == "cond_curve":
            out[name] = unif(batch, g.half_len, g.cond_curves)
            out[name][0, g.half_len // 2 :] = np.nan
        elif name == "noise":
            out[name] = rng.standard_normal((batch, int(module.noise_len))).astype(np.float32)
        elif name == "latents":
            out[name] = unif(batch, ae.dec2_window, ae.latent_dim)
        elif name == "frames" and net_name == "decoder1":
            out[name] = unif(batch, ae.dec1_window, ae.frame_dim)
        elif name == "frames":
            out[name] = unif(batch, ae.enc1_window, ae.frame_dim)
        elif name == "spec":
            out[name] = unif(batch, ae.enc1_window, cfg.audio.bins, lo=-1.2)
    return out


class _Positional(nn.Module):
    """Calls the network with keyword arguments from positional ONNX inputs."""

    def __init__(self, net: nn.Module, names: Sequence[str]):
        super().__init__()
        self.net = net
        self.names = list(names)

    def forward(self, *args: Tensor) -> Tensor | tuple[Tensor, ...]:
        return self.net(**dict(zip(self.names, args, strict=True)))


def _cpu_eval_copy(module: nn.Module) -> nn.Module:
    return copy.deepcopy(module).cpu().float().eval()


def _torch_outputs(module: nn.Module, names: Sequence[str], feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    with torch.no_grad():
        out = module(**{n: torch.from_numpy(feeds[n]) for n in names})
    outs = out if isinstance(out, tuple) else (out,)
    return [o.numpy() for o in outs]


def _set_output_shapes(path: str | Path, names: Sequence[str], shapes: Sequence[tuple[int, ...]]) -> None:
    """Declare the static output dims (the tracer loses them after ConvTranspose); batch stays dynamic."""
    model = onnx.load(str(path))
    by_name = {o.name: o for o in model.graph.output}
    for name, shape in zip(names, shapes, strict=True):
        dims = by_name[name].type.tensor_type.shape.dim
        dims[0].dim_param = "batch"
        for dim, size in zip(dims[1:], shape, strict=True):
            dim.dim_value = int(size)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def export_onnx(net_name: str, module: nn.Module, cfg: ModelConfig, path: str | Path) -> None:
    """Write `module` as ONNX to `path` with the names of generator.runtime.onnx_io; the module is not modified."""
    names = input_names(net_name, cfg)
    net = _cpu_eval_copy(module)
    feeds = example_inputs(net_name, net, cfg, batch=2)
    args = tuple(torch.from_numpy(np.nan_to_num(feeds[n])) for n in names)
    outputs = list(OUTPUTS[net_name])
    axes = {n: {0: "batch"} for n in [*names, *outputs]}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            warnings.filterwarnings("ignore", message="Constant folding - Only steps=1")
            warnings.filterwarnings("ignore", category=DeprecationWarning)  # the legacy exporter, on purpose
            torch.onnx.export(
                _Positional(net, names),
                args,
                str(path),
                input_names=names,
                output_names=outputs,
                dynamic_axes=axes,
                opset_version=OPSET,
                dynamo=False,
                do_constant_folding=True,
            )
    except Exception as exc:  # torch raises many kinds; name the network
        raise ExportError(f"ONNX export of {net_name} to {path} failed: {exc}") from exc
    _set_output_shapes(path, outputs, [o.shape[1:] for o in _torch_outputs(net, names, feeds)])
    logger.info("exported %s to %s", net_name, path)


def parity_check(
    net_name: str, module: nn.Module, onnx_path: str | Path, cfg: ModelConfig, batch: int = 2, seed: int = 0
) -> float:
    """Max abs difference between ONNX Runtime and PyTorch on seeded inputs and fixed noise.

    Raises ExportError naming the network and the difference when it exceeds PARITY_TOL (or is not finite).
    """
    names = input_names(net_name, cfg)
    net = _cpu_eval_copy(module)
    feeds = example_inputs(net_name, net, cfg, batch=batch, seed=seed)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    try:
        session = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise ExportError(f"{net_name}: ONNX Runtime cannot load {onnx_path}: {exc}") from exc
    got_names = [i.name for i in session.get_inputs()]
    if got_names != names:
        raise ExportError(f"{net_name}: {onnx_path} has inputs {got_names}, expected {names} "
                          "(generator/runtime/onnx_io.py)")
    ort_out = session.run(list(OUTPUTS[net_name]), feeds)
    torch_out = _torch_outputs(net, names, feeds)
    worst = 0.0
    for out_name, a, b in zip(OUTPUTS[net_name], ort_out, torch_out, strict=True):
        if a.shape != b.shape:
            raise ExportError(f"{net_name}: ONNX output {out_name} has shape {a.shape}, PyTorch {b.shape}")
        diff = float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)))) if a.size else 0.0
        if not np.isfinite(diff):
            diff = float("inf")
        worst = max(worst, diff)
    if not worst <= PARITY_TOL:
        raise ExportError(
            f"{net_name}: ONNX Runtime and PyTorch outputs differ by {worst:.3g} (max abs; allowed {PARITY_TOL:g}) "
            f"for {onnx_path}. The export does not reproduce the network; do not ship it."
        )
    logger.info("parity %s: max abs difference %.3g", net_name, worst)
    return worst


def _conditions(conditioning: Sequence[Condition | Mapping[str, Any]], cfg: ModelConfig) -> tuple[Condition, ...]:
    conds = tuple(c if isinstance(c, Condition) else Condition(**c) for c in conditioning)
    scal = sum(c.kind == "scalar" for c in conds)
    curv = sum(c.channels for c in conds if c.kind != "scalar")
    if (scal, curv) != (cfg.gan.cond_scalars, cfg.gan.cond_curves):
        raise ExportError(
            f"conditioning declares {scal} scalar and {curv} curve channels but the model was built with "
            f"cond_scalars={cfg.gan.cond_scalars}, cond_curves={cfg.gan.cond_curves}; make them agree"
        )
    return conds


def _model_card(preset: Preset, params: Mapping[str, int], parity: Mapping[str, float]) -> str:
    lines = [
        f"# {preset.name}",
        "",
        preset.description,
        "",
        f"License: {preset.license}",
        "",
        "## Networks",
        "",
        "| network | parameters | ONNX parity (max abs) |",
        "|---|---|---|",
    ]
    lines += [f"| {n} | {params[n]:,} | {parity[n]:.2e} |" for n in params]
    lines += ["", "## Conditioning", ""]
    if preset.conditioning:
        lines += ["| name | kind | unit | range | default |", "|---|---|---|---|---|"]
        lines += [
            f"| {c.name} | {c.kind} | {c.unit} | {c.min:g}..{c.max:g} | {c.default:g} |" for c in preset.conditioning
        ]
    else:
        lines.append("None: the model is unconditional.")
    lines += [
        "",
        "## Training",
        "",
        "(to be filled in by the training run)",
        "",
        "## Evaluation",
        "",
        "(to be filled in by `musika eval`)",
        "",
    ]
    return "\n".join(lines)


def export_preset(
    networks: Mapping[str, nn.Module],
    cfg: ModelConfig,
    out_dir: str | Path,
    name: str,
    description: str,
    conditioning: Sequence[Condition | Mapping[str, Any]] = (),
    training: Mapping[str, Any] | None = None,
    metrics: Mapping[str, Any] | None = None,
    license: str = "unknown",
    optimise: str = "exact",
    int8: str | None = None,
    autoencoder_dir: str | Path | None = None,
) -> Path:
    """Export every ONNX network in `networks` into the preset directory ``out_dir/name`` and return it.

    optimise "exact" (default) exports the decoders as the time-major MatMul rewrite of
    training/export_opt.py (same inputs/outputs, parity-checked against the original network); "none"
    exports the faithful Conv/ConvTranspose graphs. int8 "static" or "dynamic" (needs optimise "exact")
    also writes ``decoder{1,2}.int8.onnx`` and records them with sha256 and the quality-guard figures in
    metrics["optimisation"]; the engine uses them when the guard passed (Engine precision "auto").
    autoencoder_dir: a shared autoencoder (training.shared_autoencoder): only the generator is exported, the
    preset points at the shared encoders and decoders (and their int8 variants) by relative path; a model whose
    configuration differs from the autoencoder's is refused with both.

    Networks named in generator.runtime.onnx_io.NETWORKS are exported (others, e.g. the critic, are ignored);
    generator, decoder2 and decoder1 are required. Each file gets a parity check; the per-network figures
    are added to metrics["onnx_parity_max_abs"]. Nothing appears at ``out_dir/name`` unless all succeed;
    an existing preset there is replaced.
    """
    shared = None
    if autoencoder_dir is not None:
        from training.shared_autoencoder import AE_NETWORKS, check_fits, read_autoencoder

        shared = read_autoencoder(autoencoder_dir)
        check_fits(shared, cfg, autoencoder_dir)
        networks = {k: v for k, v in networks.items() if k not in AE_NETWORKS}
    missing = [n for n in REQUIRED_NETWORKS if n not in networks and shared is None]
    if missing:
        raise ExportError(f"export_preset: missing required networks {missing}; got {sorted(networks)}")
    conds = _conditions(conditioning, cfg)
    if optimise not in OPTIMISE:
        raise ExportError(f"optimise must be one of {', '.join(OPTIMISE)}, got {optimise!r}")
    if int8 is not None and (int8 not in INT8_METHODS or optimise != "exact"):
        raise ExportError(f"int8 must be None or one of {', '.join(INT8_METHODS)} with optimise='exact'; got {int8!r}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    final = out_dir / name
    tmp = out_dir / f".{name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        files: dict[str, ModelFile] = {}
        parity: dict[str, float] = {}
        params: dict[str, int] = {}
        for net_name in NETWORKS:
            if net_name not in networks:
                continue
            path = tmp / f"{net_name}.onnx"
            fast = fast_network(net_name, copy.deepcopy(networks[net_name])) if optimise == "exact" else None
            export_onnx(net_name, fast if fast is not None else networks[net_name], cfg, path)
            parity[net_name] = parity_check(net_name, networks[net_name], path, cfg)
            params[net_name] = sum(p.numel() for p in networks[net_name].parameters())
            files[net_name] = ModelFile(file=path.name, sha256=sha256_file(path))
        all_metrics = dict(metrics or {})
        note: dict[str, Any] = {"decoder_graphs": "time-major MatMul rewrite (exact)" if optimise == "exact"
                                else "faithful Conv/ConvTranspose"}
        if shared is not None:
            from training.shared_autoencoder import shared_models

            shared_files, shared_int8 = shared_models(shared, autoencoder_dir, final)
            files.update(shared_files)
            parity.update(shared["onnx_parity_max_abs"])
            all_metrics["autoencoder"] = {"name": shared["name"], "directory": str(Path(files["decoder1"].file).parent)}
            if shared_int8:
                note["int8"] = shared_int8
        elif int8 is not None:
            note["int8"] = write_int8_variants(tmp, networks, cfg, conds, int8)
        all_metrics["onnx_parity_max_abs"] = parity
        all_metrics["optimisation"] = note
        preset = Preset(
            name=name,
            description=description,
            license=license,
            config=cfg,
            conditioning=conds,
            models=files,
            training=dict(training or {}),
            metrics=all_metrics,
        )
        write_preset_json(preset, tmp)
        (tmp / "MODEL_CARD.md").write_text(_model_card(preset, params, parity))
        load_preset(tmp)  # the same validation a user's engine will run
        replace_dir(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    logger.info("wrote preset %s to %s", name, final)
    return final
