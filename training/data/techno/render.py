"""Renders one planned techno track to audio and cuts it into labelled chunks.

render_track: TrackPlan -> (2, samples) float32 at 44.1 kHz plus a description of the sounds used.
Beat k of a track sits exactly at k * 60 / tempo seconds (rounded to the nearest sample per event); chunk labels
give the tempo, the first beat and the first downbeat after each chunk's start.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from training.data.techno import mix, synth
from training.data.techno.patterns import BEATS_PER_BAR, NoteEvent, TrackPlan
from training.data.techno.samples import KitSample, SampleLibrary, load

SR = synth.SR
TAIL_S = 2.0
#: Probability of a real sample (rather than synthesis) per drum voice, when the library has one.
SAMPLE_P = {"kick": 0.45, "hat": 0.6, "open_hat": 0.6, "clap": 0.6, "snare": 0.6, "perc": 0.7}


@dataclass
class Rendered:
    audio: np.ndarray  # (2, samples) float32, peak ~ -1 dBFS
    sources: dict[str, str]  # voice -> "synth" or "kit/instrument"
    kits: dict[str, str]  # kit name -> licence, for every sample used


def _resample(x: np.ndarray, ratio: float) -> np.ndarray:
    """Pitch a one-shot by *ratio* (>1 higher, shorter), keeping its onset at sample 0."""
    if abs(ratio - 1.0) < 1e-3:
        return x
    pos = np.arange(0, len(x) - 1, ratio)
    return np.interp(pos, np.arange(len(x)), x).astype(np.float32)


def _voice(rng, library, name: str, used: dict[str, KitSample]) -> tuple[np.ndarray, str]:
    category = "perc" if name.startswith("perc") else name
    choice = int(rng.integers(1 << 30))
    sample = library.pick(category, choice) if library is not None else None
    if sample is not None and rng.random() < SAMPLE_P[category]:
        used[name] = sample
        ratio = rng.uniform(0.94, 1.06) if category == "kick" else rng.uniform(0.85, 1.18)
        return _resample(load(sample.path), ratio), f"{sample.kit}/{sample.instrument}"
    maker = {"kick": synth.kick, "clap": synth.clap, "snare": synth.snare, "perc": synth.perc}
    if category in ("hat", "open_hat"):
        return synth.hat(rng, category == "open_hat"), "synth"
    return maker[category](rng), "synth"


def _place(sound: np.ndarray, positions: np.ndarray, gains: np.ndarray, n: int, out: np.ndarray) -> np.ndarray:
    """Add sound * gain at each sample position into out (channels..., n)."""
    for p, g in zip(positions, gains, strict=True):
        if 0 <= p < n:
            m = min(sound.shape[-1], n - p)
            out[..., p : p + m] += g * sound[..., :m]
    return out


def _chords(rng, events: list[NoteEvent], step_s: float, out: np.ndarray, kind: str, post=None) -> np.ndarray:
    """Add stab or pad events into out (2, n); identical chords of equal length are rendered once.

    post, when given, processes each rendered chord before it is placed ((2, m) -> (2, m)).
    """
    if not events:
        return out
    if kind == "pad":
        params = {"shape": "saw", "detune_cents": rng.uniform(6, 18), "attack_s": rng.uniform(0.3, 2.0),
                  "decay_s": 2.0, "sustain": 0.8, "release_s": rng.uniform(0.5, 2.0)}
    else:
        params = {"shape": str(rng.choice(["saw", "square", "saw"])), "detune_cents": rng.uniform(0, 14),
                  "attack_s": 0.003, "decay_s": rng.uniform(0.05, 0.4), "sustain": rng.uniform(0.0, 0.4),
                  "release_s": rng.uniform(0.03, 0.2)}
    cache: dict[tuple, np.ndarray] = {}
    voice_rng = np.random.default_rng(int(rng.integers(1 << 30)))
    for ev in events:
        gate = int(round(ev.gate * step_s * SR))
        key = (ev.notes, gate)
        if key not in cache:
            length = gate + int(params["release_s"] * 5 * SR)
            audio = synth.chord(voice_rng, ev.notes, length, gate, **params)
            cache[key] = post(audio) if post is not None else audio
        start = int(round(ev.step * step_s * SR))
        _place(cache[key], np.array([start]), np.array([ev.velocity]), out.shape[1], out)
    return out


def render_track(plan: TrackPlan, library: SampleLibrary | None = None) -> Rendered:
    """Render the whole track: audio (2, round(plan.seconds * 44100)) float32 plus the sounds used.

    Drum hits and chords are processed once as one-shots and placed; time-varying effects (swept filters,
    ducking, the shared delay and reverb) run over the whole track.
    """
    rng = np.random.default_rng(plan.sound_seed)
    step_s = plan.step_seconds
    bar_s = step_s * 16
    n = int(round(plan.seconds * SR))
    total = n + int(TAIL_S * SR)
    fx = mix.draw_fx(rng, step_s)
    used: dict[str, KitSample] = {}
    sources: dict[str, str] = {}
    dry = np.zeros((2, total), dtype=np.float32)
    rev = np.zeros((2, total), dtype=np.float32)
    echo = np.zeros((2, total), dtype=np.float32)
    backbeat = "clap" if rng.random() < 0.65 else "snare"
    kick_pos = np.zeros(0, dtype=np.int64)
    for name, grid in plan.drums.items():
        steps = np.flatnonzero(grid)
        if len(steps) == 0:
            continue
        voice = backbeat if name == "clap" else name
        sound, sources[voice] = _voice(rng, library, voice, used)
        bus = "perc" if name.startswith("perc") else ("hat" if name == "open_hat" else name)
        params = dict(fx[bus], pan=-fx[bus]["pan"]) if name == "perc2" else fx[bus]
        hit = mix.drum_oneshot(sound, params)
        late = (steps % 2 == 1) * plan.swing if name not in ("kick", "clap") else 0.0
        pos = np.round((steps + late) * step_s * SR).astype(np.int64)
        _place(hit, pos, grid[steps], total, dry)
        for send, level in ((rev, params["rev"]), (echo, params["echo"])):
            if level > 0:
                _place(hit, pos, grid[steps] * level, total, send)
        if name == "kick":
            kick_pos = pos
    kick_env = mix.kick_envelope(kick_pos, total, rng.uniform(0.06, 0.18))
    if plan.bass:
        starts = np.array([round(e.step * step_s * SR) for e in plan.bass], dtype=np.int64)
        ends = np.array([round((e.step + e.gate) * step_s * SR) for e in plan.bass], dtype=np.int64)
        audio, fenv = synth.bassline(
            starts, ends,
            np.array([e.notes[0] for e in plan.bass]), np.array([e.velocity for e in plan.bass]),
            np.array([e.slide for e in plan.bass]), total,
            shape=str(rng.choice(["saw", "square", "saw", "sine"])),
            glide_s=rng.uniform(0.03, 0.09), decay_s=rng.uniform(0.08, 0.4), sustain=rng.uniform(0.2, 0.8),
        )
        bass = mix.duck(mix.bass_bus(audio, fenv, fx["bass"], bar_s), kick_env, fx["bass"]["duck"])
        dry += bass * np.float32(0.7071)
        sources["bass"] = "synth"
    if plan.stab:
        stab = _chords(rng, plan.stab, step_s, np.zeros((2, total), dtype=np.float32), "stab",
                       post=lambda x: mix.width(x, fx["stab"]["width"]))
        stab = mix.duck(mix.stab_bus(stab, fx["stab"], bar_s, rng.random()), kick_env, fx["stab"]["duck"])
        dry += stab
        rev += fx["stab"]["rev"] * stab
        echo += fx["stab"]["echo"] * stab
        sources["stab"] = "synth"
    if plan.pad:
        pad = _chords(rng, plan.pad, step_s, np.zeros((2, total), dtype=np.float32), "pad",
                      post=lambda x: mix.pad_voice(x, fx["pad"]))
        pad = mix.duck(pad, kick_env, fx["pad"]["duck"])
        dry += pad
        rev += fx["pad"]["rev"] * pad
        sources["pad"] = "synth"
    dry += mix.sends(rev, echo, fx["send"])
    audio = mix.master(dry, fx["master"])[:, :n]
    kits = {s.kit: s.licence for s in used.values()}
    return Rendered(np.ascontiguousarray(audio), sources, kits)


def crop_seconds(plan: TrackPlan) -> float:
    """Audio dropped at the track start (0..1 bar, from the plan's seed) so chunks do not all start on a beat."""
    return (plan.sound_seed % 1000) / 1000.0 * BEATS_PER_BAR * 60.0 / plan.tempo


def chunk_count(plan: TrackPlan, chunk_seconds: float) -> int:
    """How many whole chunks of chunk_seconds fit after the crop."""
    n = int(round(plan.seconds * SR)) - int(round(crop_seconds(plan) * SR))
    return max(n // int(round(chunk_seconds * SR)), 0)


def chunk_labels(tempo: float, start_s: float, beats_per_bar: int = BEATS_PER_BAR) -> dict[str, float]:
    """Labels of a chunk starting start_s seconds after beat 0 (beat 0 is a downbeat)."""
    beat = 60.0 / tempo
    bar = beat * beats_per_bar
    first_beat = math.ceil(start_s / beat - 1e-9) * beat - start_s
    first_down = math.ceil(start_s / bar - 1e-9) * bar - start_s
    return {"tempo": tempo, "first_beat_s": max(first_beat, 0.0), "beats_per_bar": float(beats_per_bar),
            "first_downbeat_s": max(first_down, 0.0)}


def chunks(plan: TrackPlan, audio: np.ndarray, chunk_seconds: float) -> list[tuple[np.ndarray, dict[str, float]]]:
    """Cut a rendered track into chunks of chunk_seconds: [(audio (2, samples), labels)].

    Besides the beat labels, "kick_fraction" is the share of the chunk during which the kick plays
    (below 1 in breaks, where a beat tracker has little to lock onto).
    """
    length = int(round(chunk_seconds * SR))
    crop = int(round(crop_seconds(plan) * SR))
    bar_samples = BEATS_PER_BAR * 60.0 / plan.tempo * SR
    result = []
    for j in range(chunk_count(plan, chunk_seconds)):
        a = crop + j * length
        labels = chunk_labels(plan.tempo, a / SR)
        bars = np.minimum((np.arange(a, a + length, 441) / bar_samples).astype(int), plan.bars - 1)
        labels["kick_fraction"] = float(plan.active("kick")[bars].mean())
        result.append((audio[:, a : a + length], labels))
    return result
