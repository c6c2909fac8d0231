"""Eager PyTorch vs ONNX Runtime on the same weights (the issue's "ONNX Runtime faster than eager PyTorch").

Run as its own process (`python -m training.bench_torch --threads N`): each network of the full-size reference
configuration, random weights, torch seed 0, is timed in eager PyTorch (torch.inference_mode, N intra-op threads)
and in ONNX Runtime (N threads) as the faithful export and as our exact rewrite (the shipped graphs), on the
inputs for 23.78 s of stereo audio.
"""

from __future__ import annotations

import argparse
import copy
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from generator.runtime.model_config import ModelConfig
from training.export import example_inputs, export_onnx, input_names
from training.export_opt import fast_network
from training.models import build_networks


def _best(fn, repeats: int) -> float:
    fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _options(threads: int) -> ort.SessionOptions:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return opts


def compare(threads: int, repeats: int = 3) -> list[dict]:
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    cfg = ModelConfig()
    nets = build_networks(cfg)
    # 23.78 s of stereo: 2 generator halves per window x 1 window; 64 decoder windows per channel
    batches = {"generator": 2, "decoder2": 128, "decoder1": 128}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, batch in batches.items():
            net = nets[name].eval()
            feeds = example_inputs(name, net, cfg, batch=batch, seed=0)
            names = input_names(name, cfg)
            tensors = {n: torch.from_numpy(feeds[n]) for n in names}
            ort_feeds = {n: np.ascontiguousarray(feeds[n]) for n in names}
            with torch.inference_mode():
                t_torch = _best(lambda: net(**tensors), repeats)  # noqa: B023
            row = {"network": name, "threads": threads, "torch_ms": round(t_torch * 1e3, 1)}
            graphs = {"faithful": net, "exact": fast_network(name, copy.deepcopy(net)) or net}
            for label, module in graphs.items():
                path = Path(tmp) / f"{name}-{label}.onnx"
                export_onnx(name, module, cfg, path)
                sess = ort.InferenceSession(str(path), _options(threads), providers=["CPUExecutionProvider"])
                t_ort = _best(lambda: sess.run(None, ort_feeds), repeats)  # noqa: B023
                row[f"ort_{label}_ms"] = round(t_ort * 1e3, 1)
            row["speedup"] = round(row["torch_ms"] / min(row["ort_faithful_ms"], row["ort_exact_ms"]), 2)
            rows.append(row)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    a = p.parse_args()
    print(json.dumps(compare(a.threads, a.repeats)))


if __name__ == "__main__":
    main()
