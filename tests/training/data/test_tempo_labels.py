"""training.data.tempo_labels: whole-track tempo labels on synthetic drums with known tempo, and one real recording."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from training.data.tempo_labels import (
    CONFIDENT,
    METRICAL_SWITCH_COST,
    SWITCH_COST,
    ChunkTempo,
    label_track,
    onset_envelope,
    tempo_grid,
    tempo_path,
    transition_costs,
)

SR = 44100
_RNG = np.random.default_rng(0)
_T = np.arange(8000) / SR
KICK = (np.sin(2 * np.pi * 55 * _T * (1 + 2 * np.exp(-_T / 0.02))) * np.exp(-_T / 0.08)).astype(np.float32)
SNARE = (0.6 * _RNG.standard_normal(6000) * np.exp(-np.arange(6000) / (0.05 * SR))).astype(np.float32)
HAT = (0.3 * _RNG.standard_normal(3000) * np.exp(-np.arange(3000) / (0.01 * SR))).astype(np.float32)
REAL = Path("/usr/share/hyperrogue/music/hr3-laboratory.ogg")  # Debian hyperrogue-music: 168 BPM throughout


def place(y: np.ndarray, times: np.ndarray, sample: np.ndarray, gain: float = 1.0) -> None:
    for t in times:
        i = int(round(t * SR))
        j = min(len(y), i + len(sample))
        if 0 <= i < len(y):
            y[i:j] += gain * sample[: j - i]


def drums(bpm: float, seconds: float, swing: float = 0.5, start: float = 0.05) -> np.ndarray:
    """Kick on every beat, snare on 2 and 4, hi-hat on the off-beat (``swing`` of the beat late): (samples,)."""
    y = np.zeros(int(seconds * SR), np.float32)
    beats = np.arange(start, seconds, 60.0 / bpm)
    place(y, beats, KICK)
    place(y, beats[1::2], SNARE)
    place(y, beats + swing * 60.0 / bpm, HAT)
    return y


def chunks(n: int, seconds: float = 30.0) -> list[tuple[int, int]]:
    step = int(seconds * SR) // 4096 * 4096
    return [(a, min(n, a + step)) for a in range(0, n, step) if n - a > SR]


def labels(y: np.ndarray) -> list[ChunkTempo]:
    return label_track(onset_envelope(y, SR), chunks(y.shape[-1]))


def test_steady_drums_are_labelled_exactly_and_confidently() -> None:
    y = drums(128.0, 90.0, start=0.3)
    out = label_track(onset_envelope(np.stack([y, 0.5 * y]), SR), chunks(y.size))  # stereo input
    assert len(out) == 3
    for c in out:
        assert c.confident and c.confidence == pytest.approx(1.0)
        assert c.bpm == pytest.approx(128.0, abs=0.05)
        assert c.section == 0
    assert out[0].first_beat_s == pytest.approx(0.3, abs=0.003)
    assert out[1].first_beat_s == pytest.approx((0.3 - chunks(y.size)[1][0] / SR) % (60 / 128), abs=0.003)


def test_level_and_clipping_do_not_change_the_labels() -> None:
    y = drums(124.0, 60.0)
    ref = labels(y)
    for variant in (0.01 * y, np.clip(4.0 * y, -1.0, 1.0)):
        out = labels(variant)
        assert [c.bpm for c in out] == pytest.approx([c.bpm for c in ref], abs=0.05)
        assert all(c.confident for c in out)


def test_a_three_three_two_accent_pattern_keeps_the_beat_not_the_dotted_reading() -> None:
    """Accents every three eighths (a dotted-quarter pulse, 2:3 of the beat) over a kick on every beat."""
    y = np.zeros(90 * SR, np.float32)
    eighth = 60.0 / 120.0 / 2
    place(y, np.arange(0.05, 90.0, 2 * eighth), KICK, 0.5)
    place(y, [bar + k * eighth for bar in np.arange(0.05, 90.0, 8 * eighth) for k in (0, 3, 6)], SNARE)
    out = labels(y)
    assert all(c.confident and c.bpm == pytest.approx(120.0, rel=0.005) for c in out)


def test_triplet_hats_never_give_a_confident_three_two_reading() -> None:
    y = np.zeros(90 * SR, np.float32)
    beat = 60.0 / 100.0
    place(y, np.arange(0.05, 90.0, beat), KICK)
    place(y, np.arange(0.05 + beat, 90.0, 2 * beat), SNARE)
    place(y, np.arange(0.05, 90.0, beat / 3), HAT)
    for c in labels(y):
        assert c.bpm == pytest.approx(100.0, rel=0.005)  # the beat, confident or not; never 150 or 66.7


def test_swing_reads_the_beat() -> None:
    out = labels(drums(110.0, 90.0, swing=2 / 3))
    assert all(c.confident and c.bpm == pytest.approx(110.0, abs=0.1) for c in out)


def test_the_prior_prefers_80_to_180_but_does_not_clamp() -> None:
    for bpm in (70.0, 190.0):  # a plain pulse outside the preferred band keeps its tempo
        y = np.zeros(60 * SR, np.float32)
        place(y, np.arange(0.05, 60.0, 60.0 / bpm), KICK)
        assert [c.bpm for c in labels(y)] == pytest.approx([bpm, bpm], abs=0.1)
    out = label_track(onset_envelope(drums(128.0, 60.0), SR), chunks(60 * SR), bpm_range=(40.0, 100.0))
    assert all(c.bpm == pytest.approx(64.0, abs=0.05) for c in out)  # halved into a range the user chose


def test_a_tempo_change_halfway_starts_a_new_section() -> None:
    out = labels(np.concatenate([drums(120.0, 90.0), drums(140.0, 90.0)]))
    assert [round(c.bpm) for c in out] == [120, 120, 120, 140, 140, 140]
    assert [c.section for c in out] == [0, 0, 0, 1, 1, 1]
    assert all(c.confident for c in out)


def test_chunks_of_one_track_agree_on_the_metrical_level() -> None:
    """A break with only a half-time kick (64 BPM on its own) between full 128 BPM sections."""
    y = np.concatenate([drums(128.0, 60.0), np.zeros(30 * SR, np.float32), drums(128.0, 60.0)])
    place(y, np.arange(60.05, 90.0, 2 * 60.0 / 128.0), KICK)
    out = labels(y)
    assert [round(c.bpm) for c in out] == [128] * 5
    assert {c.section for c in out} == {0}
    assert all(out[k].confident for k in (0, 1, 3, 4))


def test_noise_and_silence_get_no_label() -> None:
    noise = labels((0.1 * np.random.default_rng(1).standard_normal(60 * SR)).astype(np.float32))
    assert noise and not any(c.confident for c in noise)
    assert all(c.reason() for c in noise)
    silence = labels(np.zeros(60 * SR, np.float32))
    assert all(math.isnan(c.bpm) and c.confidence == 0.0 and c.reason().startswith("no pulse") for c in silence)
    assert label_track(onset_envelope(np.zeros(100, np.float32), SR), []) == []
    with pytest.raises(ValueError, match="bpm_range"):
        label_track(onset_envelope(np.zeros(SR, np.float32), SR), [(0, SR)], bpm_range=(120.0, 60.0))


def test_the_path_follows_a_sustained_change_but_not_a_single_odd_chunk() -> None:
    bpms = tempo_grid((60.0, 200.0))
    i100, i150, i160 = (int(np.argmin(np.abs(bpms - b))) for b in (100.0, 150.0, 160.0))
    score = np.full((6, bpms.size), -4.6)

    def prefer(chunk: int, index: int, other: int) -> None:
        score[chunk, index], score[chunk, other] = 0.0, -1.5

    for c in range(6):
        prefer(c, i100, i160)
    prefer(2, i160, i100)  # one chunk prefers an unrelated tempo: stays at 100 (1.5 < 2 jumps)
    assert list(tempo_path(score, transition_costs(bpms))) == [i100] * 6
    for c in (3, 4, 5):  # three chunks that prefer 160: a new section
        prefer(c, i160, i100)
    assert list(tempo_path(score, transition_costs(bpms))) == [i100, i100, i160, i160, i160, i160]
    costs = transition_costs(bpms)
    assert costs[i100, i150] == METRICAL_SWITCH_COST and costs[i100, i160] == SWITCH_COST


@pytest.mark.skipif(not REAL.exists(), reason="Debian package hyperrogue-music is not installed")
def test_a_real_recording_is_labelled_confidently() -> None:
    info = sf.info(REAL)
    audio, sr = sf.read(REAL, start=40 * info.samplerate, frames=60 * info.samplerate, dtype="float32")
    step = int(30 * sr) // 4096 * 4096
    out = label_track(onset_envelope(audio.T, sr), [(0, step), (step, audio.shape[0])])
    assert all(c.confidence >= CONFIDENT and c.bpm == pytest.approx(168.0, rel=0.01) for c in out)
