"""pedalboard processing and mixing for the techno generator.

Audio is float32 (channels, samples) at 44.1 kHz throughout. Effect settings arrive as plain numbers drawn by
the renderer (:func:`draw_fx`), so a seed gives the same mix. Drum hits and chords are processed once as
one-shots; filters with swept cutoff run block by block through one LadderFilter whose state carries over; drums,
stabs and pads share one synced delay and one reverb through send buses.
"""

from __future__ import annotations

import numpy as np
import pedalboard as pb

from generator.runtime.model_config import SAMPLE_RATE as SR

BLOCK = 256


def swept_filter(
    x: np.ndarray, cutoff_hz: np.ndarray, resonance: float, drive: float = 1.0, block: int = BLOCK
) -> np.ndarray:
    """Low-pass ladder whose cutoff follows a curve, one value per *block* samples. x: (C, n) -> (C, n).

    Blocks that are silent (and follow a silent block) are skipped: the output there is zero.
    """
    flt = pb.LadderFilter(mode=pb.LadderFilter.Mode.LPF24, cutoff_hz=1000.0, resonance=float(resonance),
                          drive=float(drive))
    cut = np.clip(np.asarray(cutoff_hz, dtype=np.float64), 20.0, 18000.0)
    on = active_blocks(x, block)
    out = np.zeros_like(x)
    for b in np.flatnonzero(on):
        a = b * block
        if b > 0 and not on[b - 1]:
            flt.reset()
        flt.cutoff_hz = float(cut[min(b, len(cut) - 1)])
        out[:, a : a + block] = flt.process(x[:, a : a + block], SR, reset=False)
    return out


def pan(mono: np.ndarray, position: float) -> np.ndarray:
    """Constant-power pan, position -1 (left) .. 1 (right): (n,) -> (2, n)."""
    angle = (position + 1) * np.pi / 4
    return np.stack([mono * np.cos(angle), mono * np.sin(angle)]).astype(np.float32)


def width(x: np.ndarray, amount: float) -> np.ndarray:
    """Mid/side stereo width: 0 mono, 1 unchanged, >1 wider. x: (2, n)."""
    mid, side = (x[0] + x[1]) / 2, (x[0] - x[1]) / 2 * amount
    return np.stack([mid + side, mid - side]).astype(np.float32)


def kick_envelope(kick_samples: np.ndarray, n: int, release_s: float) -> np.ndarray:
    """exp(-time since the last kick / release_s), shape (n,) float32; 0 before the first kick."""
    env = np.zeros(n, dtype=np.float32)
    kernel = np.exp(-np.arange(int(release_s * 6 * SR)) / (release_s * SR)).astype(np.float32)
    for p in np.sort(kick_samples):
        if 0 <= p < n:
            m = min(len(kernel), n - p)
            env[p : p + m] = kernel[:m]
    return env


def duck(x: np.ndarray, envelope: np.ndarray, depth: float) -> np.ndarray:
    """Sidechain ducking in place: x (C, n) or (n,) times (1 - depth * envelope)."""
    if depth > 0:
        x *= 1.0 - np.float32(depth) * envelope
    return x


def lfo(n_blocks: int, period_blocks: float, phase: float, lo: float, hi: float) -> np.ndarray:
    """Exponential (musical) sweep between lo and hi Hz, one value per block."""
    s = 0.5 - 0.5 * np.cos(2 * np.pi * (np.arange(n_blocks) / max(period_blocks, 1.0) + phase))
    return lo * (hi / lo) ** s


def draw_fx(rng: np.random.Generator, step_s: float) -> dict[str, dict[str, float]]:
    """All effect settings of one track (plain numbers); sends go to one shared reverb and one synced delay."""
    u = rng.uniform
    return {
        "kick": {"drive_db": u(0, 14) * (rng.random() < 0.5), "gain_db": u(-1, 0), "pan": 0.0, "rev": 0.0,
                 "echo": 0.0, "hpf": 28.0},
        "hat": {"hpf": u(400, 4000), "pan": u(-0.3, 0.3), "gain_db": u(-21, -12), "rev": u(0, 0.2),
                "echo": u(0, 0.25), "drive_db": 0.0},
        "clap": {"hpf": u(150, 600), "pan": 0.0, "gain_db": u(-12, -6), "rev": u(0.1, 0.5), "echo": u(0, 0.1),
                 "drive_db": u(0, 6)},
        "perc": {"hpf": u(80, 400), "pan": u(-0.6, 0.6), "gain_db": u(-24, -15), "rev": u(0.05, 0.3),
                 "echo": u(0, 0.3), "drive_db": 0.0},
        "bass": {"cutoff": u(150, 900), "envmod": u(1.0, 8.0), "resonance": u(0.1, 0.85), "drive_db": u(0, 16),
                 "sweep_bars": float(rng.choice([8, 16, 32])), "gain_db": u(-9, -4), "duck": u(0.0, 0.7)},
        "stab": {"lo": u(300, 1500), "hi": u(2000, 9000), "resonance": u(0.0, 0.6),
                 "sweep_bars": float(rng.choice([4, 8, 16, 32])), "rev": u(0.1, 0.5), "echo": u(0.1, 0.5),
                 "width": u(0.8, 1.6), "gain_db": u(-17, -10), "duck": u(0.0, 0.5)},
        "pad": {"cutoff": u(500, 4000), "rev": u(0.3, 0.8), "width": u(1.0, 1.7), "chorus": u(0.0, 0.5),
                "gain_db": u(-20, -13), "duck": u(0.2, 0.8)},
        "send": {"room": u(0.3, 0.95), "damping": u(0.2, 0.8), "delay_s": step_s * rng.choice([2, 3, 6]),
                 "feedback": u(0.2, 0.55)},
        "master": {"threshold_db": u(-18, -8), "ratio": u(1.5, 4.0), "tilt_hz": u(8000, 16000)},
    }


def _db(x: float) -> float:
    return float(10 ** (x / 20))


def drum_oneshot(x: np.ndarray, fx: dict[str, float]) -> np.ndarray:
    """Process one drum hit (high-pass, drive, gain, pan) once, before it is placed: (m,) -> (2, m)."""
    board = pb.Pedalboard([pb.HighpassFilter(fx["hpf"])])
    if fx["drive_db"] > 0:
        board.append(pb.Distortion(drive_db=fx["drive_db"]))
    y = board(x[None].astype(np.float32), SR)[0]
    return pan(y * _db(fx["gain_db"] - fx["drive_db"] / 3), fx["pan"])


def active_blocks(x: np.ndarray, block: int) -> np.ndarray:
    """Per block of x (C, n): does it or the block before it hold signal (so filters may ring). (blocks,) bool.

    Looks at every 8th sample only, which is plenty for audio.
    """
    n_blocks = (x.shape[1] + block - 1) // block
    probe = np.abs(x[:, ::8]).max(axis=0)
    per = block // 8
    padded = np.zeros(n_blocks * per, dtype=probe.dtype)
    padded[: len(probe)] = probe
    on = padded.reshape(n_blocks, per).max(axis=1) > 0
    return on | np.concatenate([[False], on[:-1]])


def bass_bus(x: np.ndarray, fenv: np.ndarray, fx: dict[str, float], bar_s: float) -> np.ndarray:
    """Acid-style bass: per-note envelope plus slow sweep on a resonant ladder, then drive. (n,) -> (n,)."""
    n_blocks = (len(x) + BLOCK - 1) // BLOCK
    slow = lfo(n_blocks, fx["sweep_bars"] * bar_s * SR / BLOCK, 0.75, fx["cutoff"] * 0.6, fx["cutoff"] * 1.8)
    cutoff = slow * (1.0 + fx["envmod"] * fenv[::BLOCK][:n_blocks])
    y = swept_filter(x[None], cutoff, fx["resonance"])
    board = pb.Pedalboard([pb.Distortion(drive_db=fx["drive_db"]), pb.HighpassFilter(30.0),
                           pb.Compressor(threshold_db=-18, ratio=3, attack_ms=3, release_ms=80)])
    return board(y, SR)[0] * _db(fx["gain_db"] - fx["drive_db"] / 3)


def stab_bus(x: np.ndarray, fx: dict[str, float], bar_s: float, phase: float) -> np.ndarray:
    """Stab/lead bus: low-pass swept over bars (slow, so long blocks). (2, n) -> (2, n)."""
    block = 2048
    n_blocks = (x.shape[1] + block - 1) // block
    cutoff = lfo(n_blocks, fx["sweep_bars"] * bar_s * SR / block, phase, fx["lo"], fx["hi"])
    return swept_filter(x, cutoff, fx["resonance"], block=block) * _db(fx["gain_db"])


def pad_voice(x: np.ndarray, fx: dict[str, float]) -> np.ndarray:
    """Process one rendered pad chord (low-pass, chorus, width, gain) before it is placed. (2, m) -> (2, m)."""
    board = pb.Pedalboard([pb.LowpassFilter(fx["cutoff"]), pb.Chorus(rate_hz=0.3, depth=0.3, mix=fx["chorus"])])
    return width(board(x, SR), fx["width"]) * _db(fx["gain_db"])


def sends(rev: np.ndarray, echo: np.ndarray, fx: dict[str, float]) -> np.ndarray:
    """The shared effect returns: synced delay (which also feeds the reverb) and reverb. (2, n) each -> (2, n)."""
    wet_echo = pb.Delay(delay_seconds=fx["delay_s"], feedback=fx["feedback"], mix=1.0)(echo, SR)
    rev = rev + 0.3 * wet_echo
    wet_rev = pb.Reverb(room_size=fx["room"], damping=fx["damping"], wet_level=1.0, dry_level=0.0)(rev, SR)
    return wet_echo + wet_rev


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
