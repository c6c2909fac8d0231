"""Stage timing of the inference chain: generator, decoder2, decoder1, iSTFT, and the whole chain.

Each measurement runs in its own process (`python -m generator.bench PRESET --threads N`) so that thread pools
and peak resident memory belong to that configuration alone.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from generator import spectral
from generator.coords import CoordinateStream
from generator.engine import Engine


def naive_istft(norm: np.ndarray, phase: np.ndarray, cfg) -> np.ndarray:
    """The faithful rebuild's iSTFT: complex128 numpy, frame-by-frame overlap-add (the baseline of issue 8)."""
    mag = np.sqrt(10 ** ((cfg.db_sigma * norm.astype(np.float64) + cfg.db_mu) / 10) + 1e-7)
    spec = mag * np.exp(1j * np.pi * phase.astype(np.float64))
    frames = np.fft.irfft(spec, n=cfg.n_fft, axis=-1) * spectral.synthesis_window(cfg)
    out = np.zeros((frames.shape[0] - 1) * cfg.hop + cfg.n_fft)
    for t in range(frames.shape[0]):
        out[t * cfg.hop : t * cfg.hop + cfg.n_fft] += frames[t]
    return out


def _best(fn, repeats: int) -> tuple[float, Any]:
    best, result = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def measure(preset: str | Path, threads: int, seconds: float = 23.78, repeats: int = 3, naive: bool = False) -> dict:
    """Time each stage for `seconds` of stereo audio; returns seconds per stage and real-time factors."""
    t_load0 = time.perf_counter()
    engine = Engine.load(preset, threads=threads)
    load_s = time.perf_counter() - t_load0
    cfg = engine.config
    steps = int(np.ceil(seconds * cfg.latent_rate_hz / cfg.gan.half_len)) * cfg.gan.half_len
    halves = steps // cfg.gan.half_len
    coords = CoordinateStream(cfg.gan, seed=0).halves(0, halves)
    cond = {c.name: c.default for c in engine.preset.conditioning}
    audio_s = steps * cfg.samples_per_latent / cfg.audio.sample_rate
    engine.latents(coords, cond)  # warm-up
    t_gen, lat = _best(lambda: engine.latents(coords, cond), repeats)
    ae = cfg.autoencoder
    windows = steps // ae.dec2_window
    lat_w = np.ascontiguousarray(lat.reshape(windows, ae.dec2_window, 2, -1).transpose(2, 0, 1, 3)).reshape(
        2 * windows, ae.dec2_window, -1
    )
    n2 = engine.noise("decoder2", 0, 0, 2 * windows) if engine._noise_len["decoder2"] else None
    n1 = engine.noise("decoder1", 0, 0, 2 * windows) if engine._noise_len["decoder1"] else None
    engine._run_batched("decoder2", {"latents": lat_w, "noise": n2}, ["frames"])
    t_d2, (frames,) = _best(
        lambda: engine._run_batched("decoder2", {"latents": lat_w, "noise": n2}, ["frames"]), repeats
    )
    t_d1, (mag, ph) = _best(
        lambda: engine._run_batched("decoder1", {"frames": frames, "noise": n1}, ["magnitude", "phase"]), repeats
    )
    mag = mag.reshape(2, -1, mag.shape[-1])
    ph = ph.reshape(2, -1, ph.shape[-1])
    if naive:
        t_istft, _ = _best(lambda: [naive_istft(mag[c], ph[c], cfg.audio) for c in range(2)], repeats)
    else:
        t_istft, _ = _best(lambda: spectral.StreamingIstft(2, cfg.audio).process(mag, ph), repeats)
    t_chain, _ = _best(lambda: engine.decode(engine.latents(coords, cond)), repeats)
    stages = {"generator": t_gen, "decoder2": t_d2, "decoder1": t_d1, "istft": t_istft}
    total = t_chain if not naive else sum(stages.values())
    return {
        "preset": engine.preset.name,
        "threads": threads,
        "audio_seconds": round(audio_s, 3),
        "load_seconds": round(load_s, 3),
        "stage_seconds": {k: round(v, 4) for k, v in stages.items()},
        "chain_seconds": round(total, 4),
        "rtf": round(audio_s / total, 1),
        "istft": "naive complex128 numpy" if naive else "float32 rfft overlap-add",
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def measure_in_subprocess(preset: str | Path, threads: int, seconds: float, repeats: int, naive: bool = False) -> dict:
    cmd = [sys.executable, "-m", "generator.bench", str(preset), "--threads", str(threads),
           "--seconds", str(seconds), "--repeats", str(repeats)] + (["--naive"] if naive else [])
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"bench worker failed for {preset} ({threads} threads): {out.stderr.strip()[-500:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def format_table(rows: list[dict]) -> str:
    head = "| preset | threads | iSTFT | gen ms | dec2 ms | dec1 ms | iSTFT ms | chain s | x real time | peak MB |"
    lines = [head, "|" + "---|" * 10]
    for r in rows:
        s = r["stage_seconds"]
        lines.append(
            f"| {r['preset']} | {r['threads']} | {r['istft']} | {s['generator'] * 1e3:.0f} | "
            f"{s['decoder2'] * 1e3:.0f} | "
            f"{s['decoder1'] * 1e3:.0f} | {s['istft'] * 1e3:.0f} | {r['chain_seconds']:.3f} | {r['rtf']} | "
            f"{r['peak_rss_mb']} |"
        )
    return "\n".join(lines)


def _worker() -> None:
    p = argparse.ArgumentParser(description="one bench measurement (internal; use `musika bench`)")
    p.add_argument("preset")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seconds", type=float, default=23.78)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--naive", action="store_true")
    a = p.parse_args()
    print(json.dumps(measure(a.preset, a.threads, a.seconds, a.repeats, a.naive)))


if __name__ == "__main__":
    _worker()
