"""Numpy synthesis voices for the techno generator: drums, a sliding bassline, chord stabs and pads.

Every function returns float32 audio at 44.1 kHz: one-shots and the bass as mono (samples,), chords as stereo
(2, samples). Randomness comes only from the Generator or parameters passed in. Oscillators read band-limited
single-cycle wavetables, so they are cheap and do not alias.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy import signal

SR = 44100
TABLE = 4096
_ONE = 1 << 20  # fixed-point scale of oscillator phase


def midi_hz(midi: np.ndarray | float) -> np.ndarray:
    return 440.0 * 2.0 ** ((np.asarray(midi, dtype=np.float64) - 69.0) / 12.0)


_LADDER = np.unique(np.round(2 ** np.arange(0, 11, 0.25)).astype(int))


@lru_cache(maxsize=128)
def _table(shape: str, harmonics: int) -> np.ndarray:
    """One band-limited cycle, shape (TABLE,), peak ~1, with *harmonics* partials (built by inverse FFT)."""
    k = np.arange(1, min(max(harmonics, 1), TABLE // 2 - 1) + 1)
    amps = {"saw": 1.0 / k, "square": (k % 2 == 1) / k, "sine": (k == 1) * 1.0}[shape]
    spec = np.zeros(TABLE // 2 + 1, dtype=np.complex128)
    spec[k] = -0.5j * amps * TABLE
    w = np.fft.irfft(spec, TABLE)
    return (w / np.abs(w).max()).astype(np.float32)


def oscillator(shape: str, freq: np.ndarray | float, n: int, phase0: float = 0.0) -> np.ndarray:
    """Wavetable oscillator: freq in Hz (scalar or (n,) curve) -> (n,) float32."""
    f = np.asarray(freq, dtype=np.float64)
    top = float(f.max()) if f.ndim else float(f)
    limit = SR / 2 / max(top, 1.0)
    harmonics = int(_LADDER[max(np.searchsorted(_LADDER, limit, side="right") - 1, 0)])
    table = _table(shape, harmonics)
    start = int(phase0 * TABLE * _ONE)
    if f.ndim == 0:  # fixed point, 20 fractional bits: exact and cheaper than float phase
        idx = np.arange(n, dtype=np.int64) * int(round(float(f) * TABLE / SR * _ONE)) + start
    else:
        idx = np.cumsum(np.round(f * (TABLE / SR * _ONE)).astype(np.int64)) + start
    idx >>= 20
    idx &= TABLE - 1
    return table[idx]


def _env(n: int, decay_s: float, attack_s: float = 0.001) -> np.ndarray:
    t = np.arange(n) / SR
    env = np.exp(-t / decay_s)
    a = max(int(attack_s * SR), 1)
    env[:a] *= np.linspace(0.0, 1.0, a)
    return env


def _fade(x: np.ndarray, seconds: float = 0.005) -> np.ndarray:
    m = min(int(seconds * SR), x.shape[-1])
    x[..., x.shape[-1] - m :] *= np.linspace(1.0, 0.0, m)
    return x


def _band(x: np.ndarray, lo: float | None, hi: float | None, order: int = 2) -> np.ndarray:
    if lo and hi:
        sos = signal.butter(order, [lo, hi], "bandpass", fs=SR, output="sos")
    elif lo:
        sos = signal.butter(order, lo, "highpass", fs=SR, output="sos")
    else:
        sos = signal.butter(order, hi, "lowpass", fs=SR, output="sos")
    return signal.sosfilt(sos, x)


def kick(rng: np.random.Generator) -> np.ndarray:
    """Sine kick with a pitch drop, click and saturation; (samples,)."""
    n = int(rng.uniform(0.3, 0.7) * SR)
    t = np.arange(n) / SR
    f_end, f_start = rng.uniform(42, 62), rng.uniform(150, 320)
    f = f_end + (f_start - f_end) * np.exp(-t / rng.uniform(0.012, 0.05))
    body = np.sin(2 * np.pi * np.cumsum(f) / SR)
    hold = rng.uniform(0.0, 0.08)
    env = np.where(t < hold, 1.0, np.exp(-(t - hold) / rng.uniform(0.06, 0.2)))
    click = _band(rng.standard_normal(n), 1500.0, None) * np.exp(-t / 0.002) * rng.uniform(0.15, 0.6)
    drive = rng.uniform(1.0, 5.0)
    y = np.tanh(drive * (body * env + click)) / np.tanh(drive)
    return _fade(y.astype(np.float32))


def hat(rng: np.random.Generator, open_: bool) -> np.ndarray:
    """Metallic 808-style hat (six square partials plus noise, high-passed); (samples,)."""
    decay = rng.uniform(0.15, 0.45) if open_ else rng.uniform(0.015, 0.06)
    n = int((decay * 5 + 0.01) * SR)
    base = rng.uniform(0.8, 1.25)
    metal = sum(oscillator("square", f * base, n, rng.random()) for f in (205.3, 304.4, 369.6, 522.7, 540, 800))
    mix = rng.uniform(0.2, 0.8)
    x = mix * metal / 6 + (1 - mix) * rng.standard_normal(n)
    y = _band(x, rng.uniform(6000, 9000), None, order=4) * _env(n, decay)
    return _fade((y / (np.abs(y).max() + 1e-9)).astype(np.float32))


def clap(rng: np.random.Generator) -> np.ndarray:
    """Band-passed noise with three quick re-triggers and a tail; (samples,)."""
    n = int(0.45 * SR)
    t = np.arange(n) / SR
    gap = rng.uniform(0.007, 0.013)
    env = sum(np.where(t >= i * gap, np.exp(-(t - i * gap) / 0.003), 0.0) for i in range(3))
    env = env + np.where(t >= 3 * gap, 0.6 * np.exp(-(t - 3 * gap) / rng.uniform(0.05, 0.15)), 0.0)
    centre = rng.uniform(900, 1800)
    y = _band(rng.standard_normal(n), centre * 0.6, centre * 2.2) * env
    return _fade((y / (np.abs(y).max() + 1e-9)).astype(np.float32))


def snare(rng: np.random.Generator) -> np.ndarray:
    n = int(0.4 * SR)
    t = np.arange(n) / SR
    tone = np.sin(2 * np.pi * rng.uniform(170, 250) * t) * np.exp(-t / 0.04)
    noise = _band(rng.standard_normal(n), rng.uniform(1200, 2500), None) * np.exp(-t / rng.uniform(0.06, 0.18))
    y = rng.uniform(0.3, 0.7) * tone + noise
    return _fade((y / np.abs(y).max()).astype(np.float32))


def perc(rng: np.random.Generator) -> np.ndarray:
    """One of: tom, rim, cowbell, blip; (samples,)."""
    kind = rng.choice(["tom", "rim", "cowbell", "blip"])
    n = int(0.35 * SR)
    t = np.arange(n) / SR
    if kind == "tom":
        f0 = rng.uniform(90, 260)
        y = np.sin(2 * np.pi * np.cumsum(f0 * (1 + np.exp(-t / 0.03))) / SR) * np.exp(-t / 0.12)
    elif kind == "rim":
        y = _band(rng.standard_normal(n), 1400, 2600) * np.exp(-t / 0.008)
        y += 0.5 * np.sin(2 * np.pi * rng.uniform(400, 900) * t) * np.exp(-t / 0.01)
    elif kind == "cowbell":
        k = rng.uniform(0.8, 1.2)
        y = _band(oscillator("square", 540 * k, n) + oscillator("square", 800 * k, n), 500, 2500)
        y *= np.exp(-t / rng.uniform(0.04, 0.12))
    else:
        y = np.sin(2 * np.pi * rng.uniform(700, 2400) * t) * np.exp(-t / rng.uniform(0.01, 0.05))
    return _fade((y / (np.abs(y).max() + 1e-9)).astype(np.float32))


def bassline(
    starts: np.ndarray,
    ends: np.ndarray,
    pitches: np.ndarray,
    velocities: np.ndarray,
    slides: np.ndarray,
    n: int,
    shape: str,
    glide_s: float = 0.06,
    decay_s: float = 0.2,
    sustain: float = 0.5,
) -> tuple[np.ndarray, np.ndarray]:
    """Monophonic bass with slides. starts/ends in samples, pitches MIDI, slides: note i glides into i+1.

    Returns (audio (n,), filter envelope (n,) in 0..1 that the mixer turns into a swept cutoff).
    """
    n_notes = len(starts)
    midi = np.full(n, float(pitches[0]) if n_notes else 36.0)
    if n_notes:  # each pitch holds from its note's start to the next note's start
        bounds = np.clip(np.append(starts, n), 0, n)
        midi[bounds[0] :] = np.repeat(np.asarray(pitches, dtype=np.float64), np.diff(bounds))
    g = max(int(glide_s * SR), 1)
    for i in np.flatnonzero(slides[:-1]) if n_notes else []:
        a = starts[i + 1]
        b = min(a + g, n)
        midi[a:b] = np.linspace(pitches[i], pitches[i + 1], g)[: b - a]
    audio = oscillator(shape, midi_hz(midi), n)
    amp = np.zeros(n, dtype=np.float32)
    fenv = np.zeros(n, dtype=np.float32)
    i = 0
    while i < n_notes:
        j = i
        while j < n_notes - 1 and slides[j]:
            j += 1
        a, b = int(starts[i]), min(int(ends[j]), n)
        if b > a:
            t = np.arange(b - a) / SR
            seg = velocities[i] * (sustain + (1 - sustain) * np.exp(-t / decay_s))
            seg[: min(88, b - a)] *= np.linspace(0, 1, min(88, b - a))
            seg[-min(220, b - a) :] *= np.linspace(1, 0, min(220, b - a))
            amp[a:b] = seg
            fenv[a:b] = velocities[i] * np.exp(-t / (decay_s * 0.7))
        i = j + 1
    return (audio * amp).astype(np.float32), fenv


def chord(
    rng: np.random.Generator,
    notes: tuple[float, ...],
    n: int,
    gate: int,
    shape: str,
    detune_cents: float,
    attack_s: float,
    decay_s: float,
    sustain: float,
    release_s: float,
) -> np.ndarray:
    """Detuned chord, (2, n): three voices per note (centre, flat left, sharp right).

    The envelope (attack, decay to sustain) stays open for *gate* samples, then releases.
    """
    out = np.zeros((2, n), dtype=np.float32)
    for note in notes:
        f = float(midi_hz(note))
        centre = oscillator(shape, f, n, rng.random())
        out[0] += centre + oscillator(shape, f * 2 ** (-detune_cents / 1200), n, rng.random())
        out[1] += centre + oscillator(shape, f * 2 ** (detune_cents / 1200), n, rng.random())
    t = np.arange(n) / SR
    env = sustain + (1 - sustain) * np.exp(-np.maximum(t - attack_s, 0) / decay_s)
    env = np.where(t < attack_s, t / max(attack_s, 1e-4), env)
    g = min(gate, n)
    env[g:] = env[g - 1] * np.exp(-(t[g:] - t[g - 1]) / release_s) if g > 0 else 0.0
    return _fade(out * (env / (2 * len(notes))).astype(np.float32))
