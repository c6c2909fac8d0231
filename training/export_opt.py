"""Export-time speed-ups of the decoders: an exact time-major MatMul rewrite and an int8 (QDQ) variant.

Exact rewrite (``fast_network``): Decoder1 and Decoder2 are rebuilt from the trained weights as graphs that
stay time-major, (B, T, C), from input to output, so every layer is one large MatMul over all B * T rows:

* Conv k3 s1 "same": [x[t-1], x[t], x[t+1]] (zero-padded) concatenated on channels, times a (3 Cin, Cout) matrix.
* Conv k3 s2 (TF pads (0, 1)): the pairs [x[2t], x[2t+1]] are a free reshape; the third tap x[2t+2] is the
  next pair's first half; one MatMul of (3 Cin, Cout).
* ConvTranspose k4 s2 p1: out[2t] = W1 x[t] + W3 x[t-1] and out[2t+1] = W2 x[t] + W0 x[t+1], i.e. a 1-D
  pixel shuffle of two (2 Cin, Cout) MatMuls; interleaving is a stack + reshape in time-major layout.
* 1x1 convs: a MatMul; noise injection and swish unchanged.

The rewrite has the same ONNX inputs and outputs (generator/runtime/onnx_io.py) and is parity-checked against the
original PyTorch network (1e-4). Its MatMuls are what ONNX Runtime's int8 kernels (VNNI/AMX) accept, which the
original Conv/ConvTranspose graph is not: ``quantise_int8`` writes a per-channel static QDQ model (weights int8
per output channel, activations uint8 with scales calibrated on decoder inputs from the real generator), or a
dynamically quantised one. Static scales make the result independent of how windows are batched.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from training.models.autoencoder import Decoder1, Decoder2
from training.models.layers import ConvUp, swish

logger = logging.getLogger(__name__)

INT8_METHODS = ("static", "dynamic")


def _taps(conv: nn.Conv1d) -> Tensor:
    """Conv1d weight (Cout, Cin, k) -> (k Cin, Cout), tap-major, for inputs [x[t + 0], ..., x[t + k - 1]]."""
    w = conv.weight.detach().float()
    return torch.cat([w[:, :, k].t() for k in range(w.shape[2])], 0).contiguous()


class _Dense(nn.Module):
    """1x1 conv as x @ W + b on (B, T, Cin)."""

    def __init__(self, conv: nn.Conv1d):
        super().__init__()
        self.w = nn.Parameter(_taps(conv))
        self.b = nn.Parameter(conv.bias.detach().float().clone())

    def forward(self, x: Tensor) -> Tensor:
        return x @ self.w + self.b


class _Conv3(nn.Module):
    """Conv k3 s1, TF "same" (pads (1, 1)), on (B, T, C)."""

    def __init__(self, conv: nn.Conv1d):
        super().__init__()
        self.w = nn.Parameter(_taps(conv))
        self.b = nn.Parameter(conv.bias.detach().float().clone())

    def forward(self, x: Tensor) -> Tensor:
        t = x.shape[1]
        xp = F.pad(x, (0, 0, 1, 1))
        return torch.cat([xp[:, :t], x, xp[:, 2:]], -1) @ self.w + self.b


class _Conv3Down(nn.Module):
    """Conv k3 s2, TF "same" (pads (0, 1)), (B, T, C) -> (B, T/2, Cout); T even."""

    def __init__(self, conv: nn.Conv1d):
        super().__init__()
        self.w = nn.Parameter(_taps(conv))
        self.b = nn.Parameter(conv.bias.detach().float().clone())

    def forward(self, x: Tensor) -> Tensor:
        t, c = x.shape[1], x.shape[2]
        pairs = x.reshape(-1, t // 2, 2 * c)
        nxt = F.pad(pairs[:, 1:, :c], (0, 0, 0, 1))
        return torch.cat([pairs, nxt], -1) @ self.w + self.b


class _ConvUp(nn.Module):
    """ConvTranspose k4 s2 p1 as two MatMuls and a 1-D pixel shuffle, (B, T, Cin) -> (B, 2T, Cout)."""

    def __init__(self, conv: nn.ConvTranspose1d):
        super().__init__()
        w = conv.weight.detach().float()  # (Cin, Cout, 4)
        self.w_even = nn.Parameter(torch.cat([w[:, :, 3], w[:, :, 1]], 0).contiguous())  # [x[t-1], x[t]]
        self.w_odd = nn.Parameter(torch.cat([w[:, :, 2], w[:, :, 0]], 0).contiguous())  # [x[t], x[t+1]]
        self.b = nn.Parameter(conv.bias.detach().float().clone())
        self.cout = w.shape[1]

    def forward(self, x: Tensor) -> Tensor:
        t = x.shape[1]
        xp = F.pad(x, (0, 0, 1, 1))
        even = torch.cat([xp[:, :t], x], -1) @ self.w_even
        odd = torch.cat([x, xp[:, 2:]], -1) @ self.w_odd
        return (torch.stack([even, odd], 2) + self.b).reshape(-1, 2 * t, self.cout)


def _rewrite(conv: nn.Module) -> nn.Module:
    if isinstance(conv, ConvUp):
        return _ConvUp(conv)
    k, s = conv.kernel_size[0], conv.stride[0]
    pads = getattr(conv, "pads", (0, 0))
    if k == 1 and s == 1:
        return _Dense(conv)
    if k == 3 and s == 1 and pads == (1, 1):
        return _Conv3(conv)
    if k == 3 and s == 2 and pads == (0, 1):
        return _Conv3Down(conv)
    raise ValueError(f"no time-major rewrite for a conv with kernel {k}, stride {s}, padding {pads}")


class _NoisyLayer(nn.Module):
    """swish(conv(x) + b n) with n the next T values of the (B, N) noise input."""

    def __init__(self, layer: nn.Module):
        super().__init__()
        self.conv = _rewrite(layer.conv)
        self.nw = nn.Parameter(layer.noise.weight.detach().float().clone())

    def forward(self, x: Tensor, noise: Tensor, offset: int) -> tuple[Tensor, int]:
        y = self.conv(x)
        t = y.shape[1]
        return swish(y + self.nw * noise[:, offset : offset + t].unsqueeze(-1)), offset + t


class FastDecoder1(nn.Module):
    """Decoder1 with the same inputs, outputs and weights, time-major MatMul form (module docstring)."""

    NAMES = ("e0", "e1", "e2", "e3", "u2", "m1", "m0", "p1", "p0")

    def __init__(self, d: Decoder1):
        super().__init__()
        for name in self.NAMES:
            setattr(self, name, _NoisyLayer(getattr(d, name)))
        self.mag = _Dense(d.mag)
        self.phs = _Dense(d.phs)
        self.linear = _Dense(d.linear) if d.linear is not None else None
        self.noise_len = d.noise_len

    def forward(self, frames: Tensor, noise: Tensor) -> tuple[Tensor, Tensor]:
        o = 0
        e0, o = self.e0(frames, noise, o)
        e1, o = self.e1(e0, noise, o)
        e2, o = self.e2(e1, noise, o)
        e3, o = self.e3(e2, noise, o)
        u2, o = self.u2(e3, noise, o)
        m1, o = self.m1(u2 + e2, noise, o)
        m0, o = self.m0(m1 + e1, noise, o)
        mag = self.mag(m0 + e0)
        if self.linear is not None:
            mag = mag + self.linear(frames)
        mag = torch.clamp(mag, -1.0, 1.0)
        p1, o = self.p1(u2, noise, o)
        p0, o = self.p0(p1 + m1, noise, o)
        phs = torch.clamp(self.phs(p0 + m0), -1.0, 1.0)
        return mag, phs


class FastDecoder2(nn.Module):
    """Decoder2 with the same inputs, outputs and weights, time-major MatMul form."""

    def __init__(self, d: Decoder2):
        super().__init__()
        self.layers = nn.ModuleList(_NoisyLayer(layer) for layer in d.layers)
        self.out = _Dense(d.out)
        self.noise_len = d.noise_len

    def forward(self, latents: Tensor, noise: Tensor) -> Tensor:
        x, o = latents, 0
        for layer in self.layers:
            x, o = layer(x, noise, o)
        return self.out(x)


def fast_network(net_name: str, module: nn.Module) -> nn.Module | None:
    """The exact time-major rewrite of a network (eval mode, CPU float32), or None when it has none."""
    if net_name == "decoder1" and isinstance(module, Decoder1):
        return FastDecoder1(module.cpu().float()).eval()
    if net_name == "decoder2" and isinstance(module, Decoder2):
        return FastDecoder2(module.cpu().float()).eval()
    return None


class _Feeds:
    """onnxruntime CalibrationDataReader over a list of feed dicts."""

    def __init__(self, feeds: Iterable[Mapping[str, np.ndarray]]):
        self._it = iter([dict(f) for f in feeds])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._it, None)

    def rewind(self) -> None:  # part of the reader protocol; one pass is enough for MinMax
        pass


def quantise_int8(
    src: str | Path, dst: str | Path, calibration: list[Mapping[str, np.ndarray]] | None, method: str = "static"
) -> None:
    """Write an int8 version of the fp32 ONNX model `src` to `dst` (weights int8 per output channel).

    static: QDQ on MatMul and Concat, uint8 activations with MinMax (moving average) scales from the
    `calibration` feeds; dynamic (MatMul only):
    activation scales computed per call (better accuracy, but results then depend on the batch composition).
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_dynamic, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from training.errors import ExportError

    if method not in INT8_METHODS:
        raise ExportError(f"int8 method {method!r} is unknown; use one of {', '.join(INT8_METHODS)}")
    with tempfile.TemporaryDirectory() as tmp:
        pre = os.path.join(tmp, "pre.onnx")
        quant_pre_process(str(src), pre, skip_symbolic_shape=True)
        if method == "dynamic":
            quantize_dynamic(pre, str(dst), weight_type=QuantType.QInt8, per_channel=True,
                             op_types_to_quantize=["MatMul"])
            return
        if not calibration:
            raise ExportError(f"static int8 quantisation of {src} needs calibration feeds")
        quantize_static(
            pre,
            str(dst),
            _Feeds(calibration),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            op_types_to_quantize=["MatMul", "Concat"],  # uint8 Concat: the im2col copies shrink 4x (21 % faster)
            calibrate_method=CalibrationMethod.MinMax,
            extra_options={"CalibMovingAverage": True, "WeightSymmetric": True},
        )
    logger.info("wrote int8 (%s) model %s", method, dst)


# -- calibration data and the quality guard ----------------------------------------------------------------
QUALITY_RATIO = 0.10  # int8 must stay below 10 % of the distance between two fp32 renders with other noise
MAX_ITEMS = 64  # decoder windows (both channels) used for calibration / the quality check


def generator_latents(generator: nn.Module, cfg, conds, seed: int, items: int = MAX_ITEMS) -> np.ndarray:
    """Real generator output for decoder2 windows: (items, dec2_window, latent_dim) float32, channels stacked.

    Coordinates come from the seeded CoordinateStream; conditioning is each condition's default (a phase
    follows the default tempo from a bar line)."""
    from generator.runtime.conditioning import model_inputs, stream_values
    from generator.runtime.coords import CoordinateStream

    ae, g = cfg.autoencoder, cfg.gan
    per_half = g.half_len // ae.dec2_window
    halves = max(1, -(-items // (2 * per_half)))
    feeds = {"coords": torch.from_numpy(CoordinateStream(g, seed=seed).halves(0, halves))}
    values = stream_values(conds, None, cfg, 0, halves * g.half_len)
    feeds.update({k: torch.from_numpy(v) for k, v in model_inputs(conds, values, halves, g.half_len).items()})
    rng = np.random.default_rng(seed)
    net = generator.cpu().float().eval()
    feeds["noise"] = torch.from_numpy(rng.standard_normal((halves, int(net.noise_len))).astype(np.float32))
    with torch.no_grad():
        lat = net(**feeds).numpy().reshape(-1, ae.dec2_window, 2, ae.latent_dim)
    lat = np.ascontiguousarray(lat.transpose(2, 0, 1, 3)).reshape(-1, ae.dec2_window, ae.latent_dim)
    return lat[:items]


def _session(path: str | Path):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def _noise(sess, items: int, seed: int) -> np.ndarray:
    n = int(sess.get_inputs()[1].shape[1])
    return np.random.default_rng(seed).standard_normal((items, n)).astype(np.float32)


def calibration_feeds(d2_path: Path, latents: np.ndarray, chunk: int = 16) -> dict[str, list[dict]]:
    """Calibration feeds for decoder2 (the latents) and decoder1 (decoder2's fp32 output), `chunk` items each."""
    s2 = _session(d2_path)
    n2 = _noise(s2, len(latents), 101)
    frames = s2.run(["frames"], {"latents": latents, "noise": n2})[0]
    s1 = _session(d2_path.parent / "decoder1.onnx")
    n1 = _noise(s1, len(latents), 102)
    cut = range(0, len(latents), chunk)
    return {
        "decoder2": [{"latents": latents[i : i + chunk], "noise": n2[i : i + chunk]} for i in cut],
        "decoder1": [{"frames": frames[i : i + chunk], "noise": n1[i : i + chunk]} for i in cut],
    }


def render_decoders(d2_path: Path, d1_path: Path, latents: np.ndarray, seed: int, cfg) -> np.ndarray:
    """Decode channel-stacked windows (2 W, dec2_window, dim) to stereo audio (2, samples) with noise `seed`."""
    from generator.runtime.spectral import StreamingIstft

    s2, s1 = _session(d2_path), _session(d1_path)
    frames = s2.run(["frames"], {"latents": latents, "noise": _noise(s2, len(latents), seed)})[0]
    mag, phase = s1.run(["magnitude", "phase"], {"frames": frames, "noise": _noise(s1, len(latents), seed + 1)})
    bins = mag.shape[-1]
    audio = StreamingIstft(2, cfg.audio).process(mag.reshape(2, -1, bins), phase.reshape(2, -1, bins))
    return np.clip(audio, -1.0, 1.0, out=audio)


def int8_quality(directory: Path, files: Mapping[str, str], latents: np.ndarray, cfg) -> dict:
    """The quality guard: multi-resolution log-spectral distance (dB) of the int8 decoders' audio to the fp32
    audio, as a fraction of the distance between two fp32 renders whose decoder noise differs."""
    from training.metrics import mr_log_spectral_distance

    sr = cfg.audio.sample_rate
    d2, d1 = directory / "decoder2.onnx", directory / "decoder1.onnx"
    q2 = directory / files.get("decoder2", "decoder2.onnx")
    q1 = directory / files.get("decoder1", "decoder1.onnx")
    ref = render_decoders(d2, d1, latents, 11, cfg)
    other = render_decoders(d2, d1, latents, 23, cfg)
    quant = render_decoders(q2, q1, latents, 11, cfg)
    seed_lsd = mr_log_spectral_distance(ref, other, sr)
    int8_lsd = mr_log_spectral_distance(ref, quant, sr)
    ratio = int8_lsd / seed_lsd if seed_lsd > 0 else float("inf")
    return {
        "int8_lsd_db": round(int8_lsd, 5),
        "noise_seed_lsd_db": round(seed_lsd, 5),
        "ratio": round(ratio, 4) if np.isfinite(ratio) else None,
        "max_abs_audio_diff": float(np.max(np.abs(ref - quant))),
        "passed": bool(ratio < QUALITY_RATIO),
        "rule": f"int8_lsd < {QUALITY_RATIO:g} x noise_seed_lsd (same latents, fp32 decoders with other noise)",
    }


def write_int8_variants(directory: Path, networks: Mapping[str, nn.Module], cfg, conds, method: str) -> dict:
    """Quantise decoder2 and decoder1 of an exported preset directory; returns the "int8" optimisation note
    (files with sha256, method, quality figures). Calibration uses generator seed 0, the check seed 1."""
    return write_int8_decoders(directory, generator_latents(networks["generator"], cfg, conds, 0),
                               generator_latents(networks["generator"], cfg, conds, 1), cfg, method)


def write_int8_decoders(directory: Path, calibration: np.ndarray, check: np.ndarray, cfg, method: str) -> dict:
    """Quantise ``directory``'s decoder2.onnx and decoder1.onnx with decoder2 windows of latents
    (items, dec2_window, latent_dim) for calibration and others for the quality guard; returns the "int8" note."""
    from generator.runtime.preset import sha256_file

    calib = calibration_feeds(directory / "decoder2.onnx", calibration)
    files = {}
    for name in ("decoder2", "decoder1"):
        dst = directory / f"{name}.int8.onnx"
        quantise_int8(directory / f"{name}.onnx", dst, calib[name], method)
        files[name] = dst.name
    quality = int8_quality(directory, files, check, cfg)
    logger.info("int8 quality: %s", quality)
    return {
        "method": f"{method} QDQ, int8 weights per output channel, uint8 activations" if method == "static"
        else "dynamic, int8 weights per output channel",
        "files": {k: {"file": v, "sha256": sha256_file(directory / v)} for k, v in files.items()},
        "quality": quality,
    }
