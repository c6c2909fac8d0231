"""Scores to audio with FluidSynth: the notes of a score's parts, shaped like a performance, rendered, given a
light room and normalised; and the soundfont to use. Audio is float32 (2, samples) at 44.1 kHz."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import soundfile as sf

from generator.runtime.model_config import SAMPLE_RATE
from training.data.dataset import DatasetError
from training.data.scores import SOUNDFONTS, Note, WorkError, WorkSpec


def score_parts(path: str) -> list[list[Note]]:
    """The notes of a score or MIDI file, one list per part (drums left out), via music21 -> MIDI -> pretty_midi.
    Raises WorkError if it fails."""
    import tempfile

    import pretty_midi

    try:
        if path.lower().endswith((".mid", ".midi")):
            pm = pretty_midi.PrettyMIDI(path)
        else:
            from music21 import converter

            score = converter.parse(path, forceSource=True)
            if hasattr(score, "scores"):  # an Opus: take its first score
                score = score.scores[0]
            with tempfile.TemporaryDirectory() as tmp:
                fp = score.write("midi", fp=str(Path(tmp) / "w.mid"))
                pm = pretty_midi.PrettyMIDI(str(fp))
    except Exception as exc:  # music21 raises many exception types on scores it cannot expand or convert
        raise WorkError(f"could not parse/convert ({type(exc).__name__}: {exc})") from exc
    parts = [[(n.start, n.end, n.pitch, n.velocity) for n in i.notes] for i in pm.instruments if not i.is_drum]
    return [p for p in parts if p]


def shape_notes(notes: Sequence[Note], spec: WorkSpec, rng: np.random.Generator, origin: float,
                max_seconds: float) -> np.ndarray:
    """(n, 4) array of one part's notes, time-scaled from ``origin``, cut at ``max_seconds``, with phrase-long
    velocity swells and jitter; a repeated pitch cuts off its previous note (one MIDI channel per part)."""
    arr = np.array(notes, dtype=np.float64).reshape(-1, 4)
    arr[:, :2] = (arr[:, :2] - origin) / spec.tempo_scale + 0.1
    arr = arr[arr[:, 0] < max_seconds]
    arr[:, 1] = np.minimum(np.maximum(arr[:, 1], arr[:, 0] + 0.03), max_seconds + 1.0)
    phrase = 1.0 + 0.15 * np.sin(2 * np.pi * arr[:, 0] / rng.uniform(8, 20) + rng.uniform(0, 2 * np.pi))
    vel = arr[:, 3] * spec.velocity_scale * phrase + rng.normal(0, spec.velocity_jitter, len(arr))
    arr[:, 3] = np.clip(np.round(vel), 15, 127)
    arr = arr[np.lexsort((arr[:, 2], arr[:, 0]))]
    last_on: dict[int, int] = {}
    for i, (start, _, pitch, _) in enumerate(arr):
        j = last_on.get(int(pitch))
        if j is not None and arr[j, 1] > start:
            arr[j, 1] = max(arr[j, 0] + 0.01, start - 0.005)
        last_on[int(pitch)] = i
    return arr


def render_parts(parts: Sequence[tuple[int, np.ndarray]], spec: WorkSpec, soundfont: str, tmp_dir: str) -> np.ndarray:
    """Render (GM program, notes (n, 4)) parts with FluidSynth (its own reverb/chorus off), add a light pedalboard
    room, peak-normalise to -1 dBFS: float32 (2, samples) at 44.1 kHz. Raises WorkError."""
    import pedalboard
    import pretty_midi

    pm = pretty_midi.PrettyMIDI()
    for program, arr in parts:
        inst = pretty_midi.Instrument(program=int(program))
        inst.notes = [pretty_midi.Note(int(v), int(p), float(s), float(e)) for s, e, p, v in arr]
        pm.instruments.append(inst)
    mid, wav = Path(tmp_dir) / f"w{spec.index}.mid", Path(tmp_dir) / f"w{spec.index}.wav"
    pm.write(str(mid))
    cmd = ["fluidsynth", "-ni", "-q", "-R", "0", "-C", "0", "-g", "0.5", "-r", str(SAMPLE_RATE), "-F", str(wav),
           "-T", "wav", soundfont, str(mid)]  # fmt: skip
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        if proc.returncode != 0 or not wav.exists():
            raise WorkError(f"fluidsynth failed (exit {proc.returncode}): {proc.stderr.strip()[-300:]}")
        data, _ = sf.read(wav, dtype="float32", always_2d=True)
    finally:
        mid.unlink(missing_ok=True)
        wav.unlink(missing_ok=True)
    audio = np.ascontiguousarray(data.T)
    if audio.shape[0] == 1:
        audio = np.repeat(audio, 2, axis=0)
    last_end = max(float(arr[:, 1].max()) for _, arr in parts)
    end = min(audio.shape[1], int((last_end + 1.5) * SAMPLE_RATE))
    reverb = pedalboard.Reverb(room_size=spec.room_size, damping=0.5, wet_level=spec.wet_level, dry_level=0.9)
    audio = reverb(audio[:, :end], SAMPLE_RATE)
    peak = float(np.max(np.abs(audio)))
    if peak < 1e-4:
        raise WorkError("rendered silence")
    return (audio * (0.89 / peak)).astype(np.float32)


def default_soundfont() -> str:
    """FluidR3_GM if installed, else TimGM6mb (apt), else the copy in pretty_midi's wheel."""
    for sf2 in SOUNDFONTS:
        if Path(sf2).exists():
            return sf2
    import pretty_midi

    return str(Path(pretty_midi.__file__).parent / "TimGM6mb.sf2")


def check_soundfont(soundfont: str | Path | None) -> str:
    """The soundfont path to use; refuses a missing file or one that is not a SoundFont (FluidSynth would silently
    fall back to its default font)."""
    if shutil.which("fluidsynth") is None:
        raise DatasetError("fluidsynth is not installed; install it (apt install fluidsynth) and run again")
    sf2 = str(soundfont or default_soundfont())
    if not Path(sf2).is_file():
        raise DatasetError(f"soundfont {sf2} does not exist; pass a GM .sf2 file (e.g. {SOUNDFONTS[0]})")
    with open(sf2, "rb") as fh:
        head = fh.read(12)
    if head[:4] != b"RIFF" or head[8:12] != b"sfbk":
        raise DatasetError(f"soundfont {sf2} is not a SoundFont file (no RIFF/sfbk header); pass a GM .sf2 file")
    return sf2
