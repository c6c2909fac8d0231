"""pedalboard processing and mixing for the techno generator.

Audio is float32 (channels, samples) at 44.1 kHz throughout. Effect settings arrive as plain numbers drawn by
the renderer (:func:`draw_fx`), so a seed gives the same mix. Filters with swept cutoff run block by block
through one LadderFilter whose state carries over between blocks.
"""

from __future__ import annotations

import numpy as np
import pedalboard as pb

SR = 44100
BLOCK = 256


def swept_filter(
    x: np.ndarray, cutoff_hz: np.ndarray, resonance: float, drive: float = 1.0, highpass: bool = False
) -> np.ndarray:
    """Ladder filter whose cutoff follows a curve. x: (C, n); cutoff_hz: (n,) or one value per BLOCK samples."""
    mode = pb.LadderFilter.Mode.HPF24 if highpass else pb.LadderFilter.Mode.LPF24
    flt = pb.LadderFilter(mode=mode, cutoff_hz=1000.0, resonance=float(resonance), drive=float(drive))
    n = x.shape[1]
    cut = np.asarray(cutoff_hz, dtype=np.float64)
    if cut.shape[0] == n:
        cut = cut[::BLOCK]
    cut = np.clip(cut, 20.0, 18000.0)
    out = np.empty_like(x)
    for b, a in enumerate(range(0, n, BLOCK)):
        flt.cutoff_hz = float(cut[min(b, len(cut) - 1)])
        out[:, a : a + BLOCK] = flt.process(x[:, a : a + BLOCK], SR, reset=False)
    return out


def pan(mono: np.ndarray, position: float) -> np.ndarray:
    """Constant-power pan, position -1 (left) .. 1 (right): (n,) -> (2, n)."""
    angle = (position + 1) * np.pi / 4
    return np.stack([mono * np.cos(angle), mono * np.sin(angle)]).astype(np.float32)


def width(x: np.ndarray, amount: float) -> np.ndarray:
    """Mid/side stereo width: 0 mono, 1 unchanged, >1 wider. x: (2, n)."""
    mid, side = (x[0] + x[1]) / 2, (x[0] - x[1]) / 2 * amount
    return np.stack([mid + side, mid - side]).astype(np.float32)


def sidechain_gain(kick_samples: np.ndarray, n: int, depth: float, release_s: float) -> np.ndarray:
    """Gain curve (n,) that ducks by *depth* at every kick and recovers with time constant release_s."""
    if len(kick_samples) == 0 or depth <= 0:
        return np.ones(n, dtype=np.float32)
    t = np.arange(n)
    idx = np.searchsorted(kick_samples, t, side="right") - 1
    since = np.where(idx >= 0, t - kick_samples[np.clip(idx, 0, None)], 10 * SR) / SR
    return (1.0 - depth * np.exp(-since / release_s)).astype(np.float32)


def lfo(n_blocks: int, period_blocks: float, phase: float, lo: float, hi: float) -> np.ndarray:
    """Exponential (musical) sweep between lo and hi Hz, one value per block."""
    s = 0.5 - 0.5 * np.cos(2 * np.pi * (np.arange(n_blocks) / max(period_blocks, 1.0) + phase))
    return lo * (hi / lo) ** s


def draw_fx(rng: np.random.Generator, step_s: float) -> dict[str, dict[str, float]]:
    """All effect settings of one track (plain numbers), tempo-synced delays included."""
    u = rng.uniform
    return {
        "kick": {"drive_db": u(0, 14) * (rng.random() < 0.5), "gain_db": u(-1, 0)},
        "hat": {"hpf": u(400, 4000), "delay_s": step_s * rng.choice([3, 6]), "delay_mix": u(0, 0.2),
                "pan": u(-0.3, 0.3), "gain_db": u(-16, -9)},
        "clap": {"room": u(0.2, 0.7), "wet": u(0.08, 0.3), "gain_db": u(-12, -6), "hpf": u(150, 600)},
        "perc": {"pan": u(-0.6, 0.6), "delay_s": step_s * rng.choice([2, 3]), "delay_mix": u(0, 0.3),
                 "room": u(0.1, 0.6), "gain_db": u(-17, -10)},
        "bass": {"cutoff": u(150, 900), "envmod": u(1.0, 8.0), "resonance": u(0.1, 0.85), "drive_db": u(0, 16),
                 "sweep_bars": float(rng.choice([8, 16, 32])), "gain_db": u(-9, -4), "duck": u(0.0, 0.7)},
        "stab": {"lo": u(300, 1500), "hi": u(2000, 9000), "resonance": u(0.0, 0.6),
                 "sweep_bars": float(rng.choice([4, 8, 16, 32])), "delay_s": step_s * rng.choice([2, 3, 6]),
                 "feedback": u(0.2, 0.55), "delay_mix": u(0.1, 0.4), "room": u(0.3, 0.9), "wet": u(0.1, 0.35),
                 "width": u(0.8, 1.6), "gain_db": u(-17, -10), "duck": u(0.0, 0.5)},
        "pad": {"cutoff": u(500, 4000), "room": u(0.6, 0.98), "wet": u(0.2, 0.5), "width": u(1.0, 1.7),
                "chorus": u(0.0, 0.5), "gain_db": u(-20, -13), "duck": u(0.2, 0.8)},
        "master": {"threshold_db": u(-18, -8), "ratio": u(1.5, 4.0), "tilt_hz": u(8000, 16000)},
    }


def _db(x: float) -> float:
    return float(10 ** (x / 20))


def process_drum(x: np.ndarray, name: str, fx: dict[str, float]) -> np.ndarray:
    """Bus processing for kick/hat/clap/perc: mono (n,) in, stereo (2, n) out."""
    if name == "kick":
        board = pb.Pedalboard([pb.HighpassFilter(28.0)])
        if fx["drive_db"] > 0:
            board.insert(0, pb.Distortion(drive_db=fx["drive_db"]))
        return pan(board(x[None], SR)[0] * _db(fx["gain_db"]) * _db(-fx["drive_db"] / 3), 0.0)
    if name in ("hat", "open_hat"):
        y = pb.Pedalboard([pb.HighpassFilter(fx["hpf"])])(x[None], SR)[0]
        y = pan(y * _db(fx["gain_db"]), fx["pan"])
        return pb.Delay(delay_seconds=fx["delay_s"], feedback=0.3, mix=fx["delay_mix"])(y, SR)
    if name == "clap":
        y = pb.HighpassFilter(fx["hpf"])(x[None], SR)[0]
        return pb.Reverb(room_size=fx["room"], wet_level=fx["wet"], dry_level=1.0)(pan(y * _db(fx["gain_db"]), 0.0), SR)
    y = pan(x * _db(fx["gain_db"]), fx["pan"])
    board = pb.Pedalboard([pb.Delay(delay_seconds=fx["delay_s"], feedback=0.35, mix=fx["delay_mix"]),
                           pb.Reverb(room_size=fx["room"], wet_level=0.15, dry_level=1.0)])
    return board(y, SR)


def process_bass(x: np.ndarray, fenv: np.ndarray, fx: dict[str, float], bar_s: float, duck: np.ndarray) -> np.ndarray:
    """Acid-style bass bus: per-note envelope plus slow sweep on a resonant ladder, drive, ducking. (n,) -> (2, n)."""
    n_blocks = (len(x) + BLOCK - 1) // BLOCK
    slow = lfo(n_blocks, fx["sweep_bars"] * bar_s * SR / BLOCK, 0.75, fx["cutoff"] * 0.6, fx["cutoff"] * 1.8)
    cutoff = slow * (1.0 + fx["envmod"] * fenv[::BLOCK][:n_blocks])
    y = swept_filter(x[None], cutoff, fx["resonance"], drive=1.0)
    board = pb.Pedalboard([pb.Distortion(drive_db=fx["drive_db"]), pb.HighpassFilter(30.0),
                           pb.Compressor(threshold_db=-18, ratio=3, attack_ms=3, release_ms=80)])
    y = board(y, SR)[0] * _db(fx["gain_db"] - fx["drive_db"] / 3) * (1 - fx["duck"] * (1 - duck))
    return pan(y, 0.0)


def process_stab(x: np.ndarray, fx: dict[str, float], bar_s: float, duck: np.ndarray, phase: float) -> np.ndarray:
    """Stab/lead bus: swept low-pass over bars, synced delay, reverb, width, ducking. (2, n) -> (2, n)."""
    n_blocks = (x.shape[1] + BLOCK - 1) // BLOCK
    cutoff = lfo(n_blocks, fx["sweep_bars"] * bar_s * SR / BLOCK, phase, fx["lo"], fx["hi"])
    y = swept_filter(x, cutoff, fx["resonance"])
    board = pb.Pedalboard([
        pb.Delay(delay_seconds=fx["delay_s"], feedback=fx["feedback"], mix=fx["delay_mix"]),
        pb.Reverb(room_size=fx["room"], wet_level=fx["wet"], dry_level=1.0, width=1.0),
    ])
    y = width(board(y, SR), fx["width"]) * _db(fx["gain_db"])
    return y * (1 - fx["duck"] * (1 - duck))


def process_pad(x: np.ndarray, fx: dict[str, float], duck: np.ndarray) -> np.ndarray:
    """Pad bus: low-pass, chorus, big reverb, width, ducking. (2, n) -> (2, n)."""
    board = pb.Pedalboard([
        pb.LowpassFilter(fx["cutoff"]),
        pb.Chorus(rate_hz=0.3, depth=0.3, mix=fx["chorus"]),
        pb.Reverb(room_size=fx["room"], wet_level=fx["wet"], dry_level=0.8, width=1.0),
    ])
    y = width(board(x, SR), fx["width"]) * _db(fx["gain_db"])
    return y * (1 - fx["duck"] * (1 - duck))


def master(x: np.ndarray, fx: dict[str, float]) -> np.ndarray:
    """Glue compression, gentle top roll-off, limiter, then peak at -1 dBFS. (2, n) -> (2, n) float32."""
    board = pb.Pedalboard([
        pb.HighpassFilter(25.0),
        pb.Compressor(threshold_db=fx["threshold_db"], ratio=fx["ratio"], attack_ms=10, release_ms=120),
        pb.LowpassFilter(fx["tilt_hz"]),
        pb.Limiter(threshold_db=-3.0, release_ms=100),
    ])
    y = board(x.astype(np.float32), SR)
    peak = float(np.abs(y).max())
    return (y * (0.89 / peak) if peak > 0 else y).astype(np.float32)
