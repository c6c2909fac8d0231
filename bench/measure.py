"""Stage timing of the inference chain: generator, decoder2, decoder1, iSTFT, the whole chain and the live chain.

Each measurement runs in its own process (`python -m bench.measure PRESET --threads N ...`) so that thread
pools, loaded sessions and peak resident memory belong to that configuration alone. A measurement reports the
best of `repeats` runs per stage, the preset load time, the time to the first audio of a fresh process (load +
first generator half + first 2 s decoded), the whole live chain with tempo lock
(generator.timeline.stream.render_offline)
and the peak resident memory (ru_maxrss) of the process.
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

from generator.runtime import spectral
from generator.runtime.conditioning import stream_values
from generator.runtime.coords import CoordinateStream
from generator.runtime.engine import Engine

FIRST_AUDIO_SECONDS = 2.0


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


def _istft_fn(kind: str, mag: np.ndarray, ph: np.ndarray, cfg, workers: int = 1):
    if kind == "naive":
        return lambda: [naive_istft(mag[c], ph[c], cfg) for c in range(mag.shape[0])]
    if kind == "reference":
        return lambda: [spectral.istft(mag[c], ph[c], cfg) for c in range(mag.shape[0])]
    return lambda: spectral.StreamingIstft(mag.shape[0], cfg, workers=workers).process(mag, ph)


ISTFT_LABEL = {"naive": "naive complex128", "reference": "float32 rfft one pass", "fast": "float32 rfft, blocked"}


def _defaults(engine: Engine, halves: int) -> dict[str, float | np.ndarray]:
    """Every user control at its default; phases follow the default tempo from a bar line."""
    defaults = {c.name: c.default for c in engine.preset.controls}
    return stream_values(engine.preset.conditioning, defaults, engine.config, 0, halves * engine.config.gan.half_len)


def _first_audio(preset: str | Path, threads: int, options: dict) -> tuple[float, float]:
    """(load seconds, seconds from nothing loaded to the first FIRST_AUDIO_SECONDS of audio)."""
    t0 = time.perf_counter()
    engine = Engine.load(preset, threads=threads, **options)
    load_s = time.perf_counter() - t0
    cfg = engine.config
    coords = CoordinateStream(cfg.gan, seed=0).halves(0, 1)
    lat = engine.latents(coords, _defaults(engine, 1))
    steps = -(-int(FIRST_AUDIO_SECONDS * cfg.latent_rate_hz) // cfg.autoencoder.dec2_window)
    engine.decode(lat[: steps * cfg.autoencoder.dec2_window], state=engine.new_decode_state())
    return load_s, time.perf_counter() - t0


def _live_chain(engine: Engine, seconds: float) -> float | None:
    """Wall time of the whole live chain (planner, generator, decoders, beat tracking, tempo lock,
    crossfades) for `seconds` of audio at the preset's default tempo (128 BPM without tempo conditioning)."""
    from generator.timeline.control_log import SessionHeader
    from generator.timeline.stream import LockSettings, render_offline

    has_tempo = engine.preset.has_condition("tempo")
    bpm = engine.preset.condition("tempo").default if has_tempo else 128.0
    bars = max(1, round(seconds * bpm / 60 / 4))
    header = SessionHeader(preset=engine.preset.name, seed=0, bpm=bpm)
    t0 = time.perf_counter()
    render_offline(engine, header, bars=bars, settings=LockSettings(lock=has_tempo))
    return time.perf_counter() - t0


def measure(
    preset: str | Path,
    threads: int,
    seconds: float = 23.78,
    repeats: int = 3,
    naive: bool = False,
    precision: str = "auto",
    istft: str | None = None,
    live: bool = False,
    label: str = "",
) -> dict:
    """Time each stage for `seconds` of stereo audio; returns seconds per stage and real-time factors.

    naive: the faithful rebuild (naive complex128 iSTFT, chain = sum of the stages). istft: "naive",
    "reference" or "fast" (default: naive when `naive`, else fast)."""
    istft = istft or ("naive" if naive else "fast")
    options = {"precision": precision, "istft": "reference" if istft == "reference" else "fast"}
    load_s, first_s = _first_audio(preset, threads, options)
    engine = Engine.load(preset, threads=threads, **options)
    cfg = engine.config
    steps = int(np.ceil(seconds * cfg.latent_rate_hz / cfg.gan.half_len)) * cfg.gan.half_len
    halves = steps // cfg.gan.half_len
    coords = CoordinateStream(cfg.gan, seed=0).halves(0, halves)
    cond = _defaults(engine, halves)
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
    t_istft, _ = _best(_istft_fn(istft, mag, ph, cfg.audio, max(1, threads)), repeats)
    stages = {"generator": t_gen, "decoder2": t_d2, "decoder1": t_d1, "istft": t_istft}
    if istft == "naive":
        total = sum(stages.values())
    else:
        total, _ = _best(lambda: engine.decode(engine.latents(coords, cond)), repeats)
    t_live = _live_chain(engine, seconds) if live else None
    return {
        "preset": engine.preset.name,
        "label": label or engine.preset.name,
        "threads": threads,
        "precision": engine.precision,
        "audio_seconds": round(audio_s, 3),
        "load_seconds": round(load_s, 3),
        "first_audio_seconds": round(first_s, 3),
        "stage_seconds": {k: round(v, 4) for k, v in stages.items()},
        "chain_seconds": round(total, 4),
        "rtf": round(audio_s / total, 1),
        "live_rtf": round(seconds / t_live, 1) if t_live else None,
        "istft": ISTFT_LABEL[istft],
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def measure_in_subprocess(
    preset: str | Path,
    threads: int,
    seconds: float,
    repeats: int,
    naive: bool = False,
    precision: str = "auto",
    istft: str | None = None,
    live: bool = False,
    label: str = "",
) -> dict:
    cmd = [sys.executable, "-m", "bench.measure", str(preset), "--threads", str(threads),
           "--seconds", str(seconds), "--repeats", str(repeats), "--precision", precision, "--label", label]
    cmd += (["--naive"] if naive else []) + (["--istft", istft] if istft else []) + (["--live"] if live else [])
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"bench worker failed for {preset} ({threads} threads): {out.stderr.strip()[-500:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def format_table(rows: list[dict]) -> str:
    """Markdown table; `x faithful` is, for rows of the same preset, the chain speed-up over the row of the same
    thread count whose label contains "faithful" (the reference rebuilt as the original runs it)."""
    base = {(r["preset"], r["threads"]): r["chain_seconds"] for r in rows if "faithful" in r.get("label", "")}
    head = ("| configuration | threads | precision | iSTFT | gen ms | dec2 ms | dec1 ms | iSTFT ms | chain s "
            "| x real time | x faithful | live x RT | load s | first audio s | peak MB |")
    lines = [head, "|" + "---|" * 15]
    for r in rows:
        s = r["stage_seconds"]
        ref = base.get((r["preset"], r["threads"])) or base.get((r["preset"].removesuffix("-opt"), r["threads"]))
        speedup = f"{ref / r['chain_seconds']:.2f}" if ref else "-"
        live = r.get("live_rtf") or "-"
        lines.append(
            f"| {r.get('label') or r['preset']} | {r['threads']} | {r.get('precision', 'fp32')} | {r['istft']} "
            f"| {s['generator'] * 1e3:.0f} | {s['decoder2'] * 1e3:.0f} | {s['decoder1'] * 1e3:.0f} "
            f"| {s['istft'] * 1e3:.0f} | {r['chain_seconds']:.3f} | {r['rtf']} | {speedup} | {live} "
            f"| {r.get('load_seconds', 0):.2f} | {r.get('first_audio_seconds', 0):.2f} | {r['peak_rss_mb']} |"
        )
    return "\n".join(lines)


def _worker() -> None:
    p = argparse.ArgumentParser(description="one bench measurement (internal; use `musika bench`)")
    p.add_argument("preset")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seconds", type=float, default=23.78)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--naive", action="store_true")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "int8"])
    p.add_argument("--istft", choices=["naive", "reference", "fast"])
    p.add_argument("--live", action="store_true")
    p.add_argument("--label", default="")
    a = p.parse_args()
    print(json.dumps(measure(a.preset, a.threads, a.seconds, a.repeats, a.naive, a.precision, a.istft, a.live,
                             a.label)))


if __name__ == "__main__":
    _worker()
