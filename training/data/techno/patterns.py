"""Pure planning of one procedural techno track: tempo, grid, patterns and arrangement.

Everything here is a function of a numpy Generator; nothing renders audio or touches files.
The time unit is the 16th-note *step*: a bar has 16 steps, a beat 4. Per-step grids are flat arrays of length
``bars * 16``; beat ``k`` of the track falls exactly at ``k * 60 / tempo`` seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

TEMPO_RANGE = (118.0, 162.0)
STEPS_PER_BAR = 16
BEATS_PER_BAR = 4
SCALES: dict[str, tuple[int, ...]] = {
    "aeolian": (0, 2, 3, 5, 7, 8, 10),
    "phrygian": (0, 1, 3, 5, 7, 8, 10),
    "dorian": (0, 2, 3, 5, 7, 9, 10),
    "harmonic_minor": (0, 2, 3, 5, 7, 8, 11),
    "minor_pentatonic": (0, 3, 5, 7, 10),
}
#: Layers the arrangement switches on and off (drum grids "perc2" follow "perc", "open_hat" follows "hat").
LAYERS = ("kick", "hat", "clap", "perc", "bass", "stab", "pad")
PROGRESSIONS = ((0,), (0,), (0, 5), (0, 6), (0, 3), (0, 5, 6, 6), (0, 3, 4, 0), (0, 6, 5, 6), (0, 2, 5, 6))


@dataclass(frozen=True)
class Section:
    start_bar: int
    bars: int
    layers: frozenset[str]
    kind: str  # intro | groove | break | peak | outro


@dataclass(frozen=True)
class NoteEvent:
    step: int  # start, in 16th steps from the track start
    notes: tuple[float, ...]  # MIDI pitches
    velocity: float  # 0..1
    gate: float  # length in steps
    slide: bool = False  # glide into the next note without retriggering (bass only)


@dataclass
class TrackPlan:
    track_id: str
    tempo: float  # BPM, exact label
    bars: int
    swing: float  # fraction of a step by which odd 16ths of hats and percussion are late
    key: int  # pitch class of the tonic
    scale: str
    sections: list[Section]
    drums: dict[str, np.ndarray]  # kick, hat, open_hat, clap, perc, perc2 -> velocity per step (0 = silent)
    bass: list[NoteEvent]
    stab: list[NoteEvent]
    pad: list[NoteEvent]
    styles: dict[str, str] = field(default_factory=dict)  # bass/stab/hat style names, for statistics
    sound_seed: int = 0  # seeds the timbre choices made at render time

    @property
    def step_seconds(self) -> float:
        return 60.0 / self.tempo / 4.0

    @property
    def seconds(self) -> float:
        return self.bars * STEPS_PER_BAR * self.step_seconds

    def active(self, layer: str) -> np.ndarray:
        """Boolean per bar, shape (bars,): is *layer* playing in that bar."""
        on = np.zeros(self.bars, dtype=bool)
        for s in self.sections:
            if layer in s.layers:
                on[s.start_bar : s.start_bar + s.bars] = True
        return on


def scale_pitch(scale: tuple[int, ...], degree: int) -> int:
    """Semitones above the tonic of a (possibly negative or multi-octave) scale degree."""
    n = len(scale)
    return scale[degree % n] + 12 * (degree // n)


def arrangement(rng: np.random.Generator, bars: int) -> list[Section]:
    """Sections of 8 or 16 bars that add and drop layers; every section but a break has the kick."""
    lengths: list[int] = []
    while sum(lengths) < bars:
        lengths.append(int(min(rng.choice([8, 16, 16]), bars - sum(lengths))))
    pool = [x for x in LAYERS if x not in ("kick", "hat")]
    rng.shuffle(pool)
    active = {"kick", "hat", *pool[: int(rng.integers(0, 2))]}
    waiting = [x for x in pool if x not in active]
    n = len(lengths)
    brk = int(rng.integers(n * 2 // 5, n * 3 // 4 + 1)) if n >= 5 and rng.random() < 0.8 else -1
    sections, start = [], 0
    for i, length in enumerate(lengths):
        kind = "intro" if i == 0 else "groove"
        if i > 0 and i == brk:
            kind = "break"
            melodic = [x for x in ("pad", "stab", "bass") if x in active or x in waiting]
            layers = {str(x) for x in rng.choice(melodic, size=min(2, len(melodic)), replace=False)} | {"pad"}
            sections.append(Section(start, length, frozenset(layers), kind))
            start += length
            active |= set(waiting[:1])
            waiting = waiting[1:]
            continue
        if i > 0:
            if i == brk + 1:
                kind = "peak"
                active |= set(waiting)
                waiting = []
            elif i == n - 1 and n >= 4:
                kind = "outro"
                keep = [x for x in ("hat", "perc", "bass") if x in active][:2]
                active = {"kick", *keep}
            elif waiting and rng.random() < 0.7:
                k = int(rng.integers(1, 3))
                active |= set(waiting[:k])
                waiting = waiting[k:]
            elif len(active) > 3:
                drop = [x for x in active if x != "kick"]
                gone = str(rng.choice(drop))
                active.discard(gone)
                waiting.append(gone)
        sections.append(Section(start, length, frozenset(active), kind))
        start += length
    return sections


def _bar_mask(plan_active: np.ndarray) -> np.ndarray:
    return np.repeat(plan_active, STEPS_PER_BAR).astype(np.float32)


def _section_ends(sections: list[Section]) -> list[int]:
    """Index of the last bar of every section that is followed by another one."""
    return [s.start_bar + s.bars - 1 for s in sections[:-1]]


def _drums(rng: np.random.Generator, bars: int, sections: list[Section]) -> tuple[dict[str, np.ndarray], str]:
    steps = np.arange(bars * STEPS_PER_BAR)
    pos = steps % STEPS_PER_BAR
    ends = _section_ends(sections)
    kick = (pos % 4 == 0).astype(np.float32)
    if rng.random() < 0.4:  # ghost kick before the next downbeat every 2nd or 4th bar
        every = int(rng.choice([2, 4]))
        kick[(pos == int(rng.choice([14, 15]))) & ((steps // 16) % every == every - 1)] = 0.55
    for b in ends:
        base = b * STEPS_PER_BAR
        fill = rng.choice(["none", "drop", "roll", "extra"], p=[0.35, 0.25, 0.25, 0.15])
        if fill == "drop":
            kick[base + 12 : base + 16] = 0.0
        elif fill == "roll":
            kick[base + 12 : base + 16] = np.linspace(0.5, 0.9, 4)
        elif fill == "extra":
            kick[base + 14] = 0.7
    hat_style = str(rng.choice(["offbeat", "sixteenths", "eighths", "gallop"]))
    accents = rng.uniform(0.35, 1.0, 4)
    hat = {
        "offbeat": (pos % 4 == 2) * 1.0,
        "sixteenths": accents[pos % 4],
        "eighths": (pos % 2 == 0) * accents[pos % 4],
        "gallop": np.isin(pos % 4, [2, 3]) * accents[pos % 4],
    }[hat_style].astype(np.float32)
    hat *= rng.uniform(0.8, 1.0, hat.shape).astype(np.float32)
    open_hat = ((pos % 4 == 2) * rng.uniform(0.6, 0.9)).astype(np.float32)
    if hat_style == "offbeat" or rng.random() < 0.3:
        open_hat[:] = 0.0
    clap = np.isin(pos, [4, 12]).astype(np.float32)
    if rng.random() < 0.3:
        clap[pos == int(rng.choice([7, 15, 10]))] = 0.4
    for b in ends:
        if rng.random() < 0.35:
            clap[b * 16 + 8 : b * 16 + 16] = np.linspace(0.3, 1.0, 8)
    perc = np.zeros_like(hat)
    perc2 = np.zeros_like(hat)
    for grid in ((perc, perc2) if rng.random() < 0.5 else (perc,)):
        k, rot = int(rng.integers(3, 8)), int(rng.integers(0, 16))
        pattern = np.roll(((np.arange(16) * k) % 16) < k, rot) * rng.uniform(0.4, 1.0, 16)
        grid[:] = pattern[pos]
    return {"kick": kick, "hat": hat, "open_hat": open_hat, "clap": clap, "perc": perc, "perc2": perc2}, hat_style


def _chord_degrees(rng: np.random.Generator, bars: int) -> np.ndarray:
    """Scale degree of the chord root per bar, shape (bars,)."""
    prog = PROGRESSIONS[int(rng.integers(len(PROGRESSIONS)))]
    per = int(rng.choice([1, 2, 4])) if len(prog) > 1 else 1
    return np.array([prog[(b // per) % len(prog)] for b in range(bars)])


def _bass(rng, plan_key, scale, degrees, active) -> tuple[list[NoteEvent], str]:
    style = str(rng.choice(["offbeat", "rolling", "acid", "acid", "pulse"]))
    root = 28 + (plan_key - 4) % 12  # E1..D#2
    length = int(rng.choice([16, 32])) if style == "acid" else 16
    on = np.zeros(length, bool)
    deg = np.zeros(length, int)
    octv = np.zeros(length, int)
    gate = np.full(length, 0.8)
    slide = np.zeros(length, bool)
    acc = np.zeros(length, bool)
    idx = np.arange(length)
    if style == "offbeat":
        on[idx % 4 == 2] = True
        gate[:] = rng.uniform(1.0, 1.8)
        octv[(idx % 16 == 14) & (rng.random() < 0.5)] = 1
    elif style == "rolling":
        on[idx % 4 != 0] = True
        gate[:] = rng.uniform(0.5, 0.9)
        octv[rng.random(length) < 0.15] = 1
    elif style == "pulse":
        on[rng.random(length) < 0.35] = True
        on[idx % 4 == 0] = False
        deg[:] = rng.choice([0, 0, 0, 4, -3], length)
    else:
        on[rng.random(length) < rng.uniform(0.5, 0.85)] = True
        deg[:] = rng.choice([0, 0, 0, 2, 4, 6, 7, -1, 3], length)
        octv[:] = 1 + (rng.random(length) < 0.25)
        gate[:] = 0.55
        slide[:] = rng.random(length) < 0.22
        acc[:] = rng.random(length) < 0.3
    events = []
    for s in range(len(degrees) * STEPS_PER_BAR):
        j = s % length
        bar = s // STEPS_PER_BAR
        if not on[j] or not active[bar]:
            continue
        pitch = root + 12 * octv[j] + scale_pitch(scale, int(degrees[bar] + deg[j]))
        sl = bool(slide[j]) and on[(j + 1) % length]
        events.append(NoteEvent(s, (float(pitch),), 1.0 if acc[j] else 0.75, 1.0 if sl else float(gate[j]), sl))
    return events, style


def _chord(scale, tonic: int, degree: int, shape: str, low: int) -> tuple[float, ...]:
    if shape == "diatonic":
        rel = [scale_pitch(scale, degree + 2 * i) for i in range(4)]
    else:
        base = scale_pitch(scale, degree)
        rel = [base + x for x in {"min7": (0, 3, 7, 10), "min9": (0, 3, 7, 10, 14), "fifth": (0, 7, 12)}[shape]]
    shift = low - (tonic + rel[0])
    notes = [tonic + r + 12 * int(np.ceil(shift / 12)) for r in rel]
    return tuple(float(n) for n in notes)


def _stabs_and_pads(rng, key, scale, degrees, stab_on, pad_on) -> tuple[list[NoteEvent], list[NoteEvent], str]:
    shape = str(rng.choice(["diatonic", "min7", "min9", "fifth"]))
    style = str(rng.choice(["chord", "chord", "arp", "mono"]))
    length = int(rng.choice([16, 32]))
    n_hits = int(rng.integers(2, 6)) * length // 16
    weights = np.where(np.arange(length) % 2 == 1, 3.0, 1.0)
    hits = np.zeros(length, bool)
    if style == "arp":
        hits[rng.random(length) < rng.uniform(0.5, 1.0)] = True
    else:
        hits[rng.choice(length, n_hits, replace=False, p=weights / weights.sum())] = True
    gate = rng.uniform(0.4, 2.0)
    order = rng.permutation(8)
    stab = []
    for s in range(len(degrees) * STEPS_PER_BAR):
        bar = s // STEPS_PER_BAR
        if not hits[s % length] or not stab_on[bar]:
            continue
        chord = _chord(scale, key, int(degrees[bar]), shape, 57)
        if style == "arp":
            chord = (chord[order[s % 8] % len(chord)] + 12,)
        elif style == "mono":
            chord = (chord[0] + 12,)
        stab.append(NoteEvent(s, chord, float(rng.uniform(0.6, 1.0)), gate))
    pad, bar = [], 0
    while bar < len(degrees):
        end = bar + 1
        while end < len(degrees) and degrees[end] == degrees[bar] and pad_on[end] == pad_on[bar]:
            end += 1
        if pad_on[bar]:
            notes = _chord(scale, key, int(degrees[bar]), "diatonic", 48)
            pad.append(NoteEvent(bar * STEPS_PER_BAR, notes, 0.8, (end - bar) * STEPS_PER_BAR))
        bar = end
    return stab, pad, f"{style}/{shape}"


def plan_track(
    rng: np.random.Generator,
    track_id: str,
    min_seconds: float = 90.0,
    max_seconds: float = 240.0,
    tempo: float | None = None,
    bars: int | None = None,
) -> TrackPlan:
    """Draw one track. tempo is uniform in TEMPO_RANGE unless given; bars (multiple of 4) from the length range."""
    tempo = float(rng.uniform(*TEMPO_RANGE)) if tempo is None else float(tempo)
    bar_s = 4 * 60.0 / tempo
    if bars is None:
        bars = 4 * int(round(rng.uniform(min_seconds, max_seconds) / bar_s / 4))
    bars = max(int(bars), 1)
    sections = arrangement(rng, bars)
    drums, hat_style = _drums(rng, bars, sections)
    key = int(rng.integers(12))
    scale_name = str(rng.choice(list(SCALES)))
    scale = SCALES[scale_name]
    degrees = _chord_degrees(rng, bars)
    probe = TrackPlan(track_id, tempo, bars, 0.0, key, scale_name, sections, {}, [], [], [])
    for name, layer in (("kick", "kick"), ("hat", "hat"), ("open_hat", "hat"), ("clap", "clap"),
                        ("perc", "perc"), ("perc2", "perc")):
        drums[name] *= _bar_mask(probe.active(layer))
    bass, bass_style = _bass(rng, key, scale, degrees, probe.active("bass"))
    stab, pad, stab_style = _stabs_and_pads(rng, key, scale, degrees, probe.active("stab"), probe.active("pad"))
    return TrackPlan(
        track_id=track_id,
        tempo=tempo,
        bars=bars,
        swing=float(rng.choice([0.0, 0.0, 0.04, 0.08, 0.12])),
        key=key,
        scale=scale_name,
        sections=sections,
        drums=drums,
        bass=bass,
        stab=stab,
        pad=pad,
        styles={"hat": hat_style, "bass": bass_style, "stab": stab_style},
        sound_seed=int(rng.integers(2**31)),
    )
