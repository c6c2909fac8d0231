"""prepare_folder: mixed real-world input (mono, 22.05/48 kHz, mp3, truncated, non-audio), reuse, errors, CLI."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from pedalboard.io import AudioFile

from generator.runtime.model_config import SAMPLES_PER_LATENT
from training.data.chunking import assign_splits, chunk_spans, steps_for
from training.data.cli import main
from training.data.dataset import Dataset, DatasetError
from training.data.folder import FolderError, prepare_folder


def click_track(bpm: float, seconds: float, sr: int) -> np.ndarray:
    """Decaying noise bursts on every beat: (samples,) float32."""
    y = np.zeros(int(seconds * sr), np.float32)
    n = int(0.045 * sr)
    burst = (np.random.default_rng(0).standard_normal(n) * np.exp(-np.arange(n) / (0.005 * sr))).astype(np.float32)
    for t in np.arange(0.1, seconds - 0.1, 60.0 / bpm):
        i = int(round(t * sr))
        y[i : i + n] += burst[: len(y[i : i + n])]
    return 0.5 * y


@pytest.fixture
def messy_folder(tmp_path: Path) -> Path:
    d = tmp_path / "in"
    (d / "sub").mkdir(parents=True)
    x = click_track(128.0, 12.0, 44100)
    sf.write(d / "stereo44k.wav", np.stack([x, 0.8 * x], axis=1), 44100)
    sf.write(d / "sub" / "mono22k.wav", click_track(100.0, 8.0, 22050), 22050)
    y = click_track(120.0, 3.0, 48000)
    sf.write(d / "short48k.flac", np.stack([y, y], axis=1), 48000)
    z = click_track(120.0, 6.0, 44100)
    with AudioFile(str(d / "clip.mp3"), "w", 44100, 2) as fh:
        fh.write(np.stack([z, z]))
    sf.write(d / "cut.wav", np.stack([z, z], axis=1), 44100, subtype="PCM_16")
    data = (d / "cut.wav").read_bytes()
    (d / "cut.wav").write_bytes(data[: len(data) // 2])  # header still promises 6 s
    (d / "garbage.wav").write_text("this is not a wave file\n" * 20)
    (d / "empty.ogg").write_bytes(b"")
    (d / "notes.txt").write_text("liner notes")
    return d


def test_messy_folder_becomes_a_dataset(messy_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "ds"
    result = prepare_folder(
        messy_folder, out, label="tempo", chunk_seconds=5.0, min_chunk_seconds=3.0, min_minutes=0, progress=False
    )

    skipped = {s["item"]: s["reason"] for s in result["skipped"]}
    assert set(skipped) == {"garbage.wav", "empty.ogg"}
    assert "empty" in skipped["empty.ogg"] and "not decodable" in skipped["garbage.wav"]
    notes = " | ".join(result["notes"])
    assert "sub/mono22k.wav: mono, upmixed to stereo; resampled 22050 Hz -> 44100 Hz" in notes
    assert "short48k.flac: resampled 48000 Hz -> 44100 Hz" in notes
    assert "cut.wav: truncated" in notes and "notes.txt" in notes

    ds = Dataset(out)
    by_source: dict[str, list] = {}
    for c in ds:
        by_source.setdefault(c.source, []).append(c)
    assert set(by_source) == {"stereo44k.wav", "sub/mono22k.wav", "short48k.flac", "clip.mp3", "cut.wav"}
    expected_s = {"stereo44k.wav": 12.0, "sub/mono22k.wav": 8.0, "short48k.flac": 3.0, "clip.mp3": 6.0, "cut.wav": 3.0}
    for source, chunks in by_source.items():
        total = 0
        for c in chunks:
            audio = ds.audio(c)
            assert audio.shape[0] == 2 and audio.shape[1] % SAMPLES_PER_LATENT == 0 and np.abs(audio).max() > 0.05
            total += audio.shape[1]
        assert total / 44100 == pytest.approx(expected_s[source], abs=0.15), source  # nothing dropped
    assert len(by_source["stereo44k.wav"]) == 2  # 5 s + 7 s: the 2 s tail joined the second chunk
    mono = ds.audio(by_source["sub/mono22k.wav"][0])
    assert np.allclose(mono[0], mono[1])

    tempo = {s: [c.labels["tempo"] for c in cs if "tempo" in c.labels] for s, cs in by_source.items()}
    assert tempo["stereo44k.wav"] == pytest.approx([128.0, 128.0], abs=0.1)
    assert tempo["sub/mono22k.wav"] == pytest.approx([100.0], abs=0.1)  # its 3 s tail is too short for a tempo
    assert all(0.0 <= c.labels["tempo_confidence"] <= 1.0 for c in ds)
    assert {c.split for c in ds} == {"train", "heldout"}
    unlabelled = [c for c in ds if "tempo" not in c.labels]
    assert all(c.labels["tempo_confidence"] < 0.5 and "first_beat_s" not in c.labels for c in unlabelled)
    assert ds.info["stats"]["tempo"]["count"] == len(ds) - len(unlabelled) >= 4
    md = (out / "DATASET.md").read_text()
    assert "## Skipped (2)" in md and "garbage.wav" in md and "| tempo |" in md and "Licence" in md
    assert f"## Chunks without a tempo label ({len(unlabelled)};" in md and "`sub/mono22k.wav` 0:05-0:08" in md


def test_rerun_reuses_work_and_follows_changes(messy_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "ds"
    first = prepare_folder(messy_folder, out, label="none", chunk_seconds=5.0, min_minutes=0, progress=False)
    again = prepare_folder(messy_folder, out, label="none", chunk_seconds=5.0, min_minutes=0, progress=False)
    assert again["new_chunks"] == 0 and again["reused_chunks"] == first["chunks"] == again["chunks"]
    assert len(again["skipped"]) == 2  # bad files stay listed

    (messy_folder / "clip.mp3").unlink()
    y = click_track(90.0, 2.0, 44100)
    sf.write(messy_folder / "short48k.flac", np.stack([y, y], axis=1), 44100)
    os.utime(messy_folder / "short48k.flac", ns=(1, 1))  # a new mtime even on coarse clocks
    third = prepare_folder(messy_folder, out, label="none", chunk_seconds=5.0, min_minutes=0, progress=False)
    assert third["new_chunks"] == 1
    sources = {c.source for c in Dataset(out)}
    assert "clip.mp3" not in sources and "short48k.flac" in sources
    assert not any("clip" in p.name for p in (out / "audio").iterdir())


def test_density_label_gives_curves_at_the_latent_rate(tmp_path: Path) -> None:
    d = tmp_path / "in"
    d.mkdir()
    x = click_track(240.0, 6.0, 44100)  # 4 onsets per second
    sf.write(d / "a.wav", x, 44100)
    out = tmp_path / "ds"
    result = prepare_folder(d, out, label="density", chunk_seconds=30.0, min_minutes=0, progress=False)
    ds = Dataset(out)
    (chunk,) = list(ds)
    curve = ds.curve(chunk, "density")
    assert curve.shape == (ds.audio(chunk).shape[1] // SAMPLES_PER_LATENT,)
    assert chunk.labels["onset_rate"] == pytest.approx(4.0, abs=0.4)
    assert np.median(curve) == pytest.approx(4.0, abs=0.5)
    assert result["stats"]["density"]["count"] == curve.size


def test_empty_or_all_bad_folders_are_clear_errors(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.md").write_text("hi")
    with pytest.raises(FolderError, match="no audio files in .*supported: .wav"):
        prepare_folder(empty, tmp_path / "o1")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.wav").write_text("nope")
    (bad / "b.mp3").write_bytes(b"\x00" * 10)
    with pytest.raises(FolderError, match="none of the 2 audio files.*a.wav"):
        prepare_folder(bad, tmp_path / "o2", progress=False)
    with pytest.raises(FolderError, match="does not exist"):
        prepare_folder(tmp_path / "missing", tmp_path / "o3")
    with pytest.raises(DatasetError, match="label 'bpm' is not known; use one of tempo, density, none"):
        prepare_folder(bad, tmp_path / "o4", label="bpm")


def test_output_inside_the_input_folder_is_not_read_back(tmp_path: Path) -> None:
    d = tmp_path / "in"
    d.mkdir()
    sf.write(d / "a.wav", click_track(120.0, 2.0, 44100), 44100)
    prepare_folder(d, d / "dataset", label="none", min_minutes=0, progress=False)
    again = prepare_folder(d, d / "dataset", label="none", min_minutes=0, progress=False)
    assert again["chunks"] == 1 and again["reused_chunks"] == 1


def write_noise(path: Path, seconds: float, seed: int) -> None:
    sf.write(path, (0.1 * np.random.default_rng(seed).standard_normal(int(seconds * 44100))).astype(np.float32), 44100)


def test_too_little_audio_or_only_silence_is_refused_before_training(tmp_path: Path) -> None:
    short = tmp_path / "short"
    short.mkdir()
    for k in range(2):
        sf.write(short / f"{k}.wav", click_track(120.0, 20.0, 44100), 44100)
    (short / "broken.mp3").write_bytes(b"\x00" * 10)
    with pytest.raises(FolderError, match=r"holds 0\.7 minutes of usable audio \(2 of 3 audio files used, 1 unreadable"
                       r" or silent: broken\.mp3\); a model needs at least 10 minutes.*--min-minutes 0"):
        prepare_folder(short, tmp_path / "o1", label="none", progress=False)
    silent = tmp_path / "silent"
    silent.mkdir()
    for k in range(2):
        sf.write(silent / f"{k}.wav", np.zeros(44100 * 5, np.float32), 44100)
    with pytest.raises(FolderError, match="all 2 audio files in .* are silent"):
        prepare_folder(silent, tmp_path / "o2", label="none", progress=False)


def test_a_folder_without_a_steady_beat_cannot_be_labelled_tempo(tmp_path: Path) -> None:
    d = tmp_path / "in"
    d.mkdir()
    for k in range(3):
        write_noise(d / f"noise{k}.wav", 40.0, k)
    with pytest.raises(FolderError, match=r"only 0 of 6 chunks \(0 %\) in .* have a confident tempo label; the tempo "
                       r"condition needs at least 30 % \(.*; files without any labelled chunk: noise0.wav.*"
                       r"--label density or --label none"):
        prepare_folder(d, tmp_path / "ds", label="tempo", min_minutes=0, progress=False)
    sf.write(d / "beat.wav", click_track(126.0, 90.0, 44100), 44100)  # 3 of 9 chunks now carry a tempo
    result = prepare_folder(d, tmp_path / "ds", label="tempo", min_minutes=0, progress=False)
    ds = Dataset(tmp_path / "ds")
    assert sorted(round(c.labels["tempo"]) for c in ds if "tempo" in c.labels) == [126, 126, 126]
    assert result["new_chunks"] == 3 and result["reused_chunks"] == 6  # the noise was not decoded again
    md = (tmp_path / "ds" / "DATASET.md").read_text()
    assert "## Chunks without a tempo label (6;" in md and "`noise2.wav` 0:30-0:40" in md
    assert "6 of 9 chunks have no tempo label (DATASET.md)" in result["notes"]


def test_a_folder_without_onsets_cannot_be_labelled_density(tmp_path: Path) -> None:
    d = tmp_path / "in"
    d.mkdir()
    t = np.arange(44100 * 40) / 44100
    sf.write(d / "drone.wav", (0.3 * np.minimum(1.0, t / 3.0) * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 44100)
    with pytest.raises(FolderError, match=r"only 0 of 2 chunks \(0 %\) in .* have any detected onsets; the density "
                       r"condition needs at least 30 %.*--label tempo or --label none"):
        prepare_folder(d, tmp_path / "ds", label="density", min_minutes=0, progress=False)


def test_silent_stretches_are_dropped(tmp_path: Path) -> None:
    d = tmp_path / "in"
    d.mkdir()
    x = np.concatenate([click_track(120.0, 30.0, 44100), np.zeros(44100 * 30, np.float32)])
    sf.write(d / "a.wav", x, 44100)
    result = prepare_folder(d, tmp_path / "ds", label="none", chunk_seconds=30.0, min_minutes=0, progress=False)
    assert result["chunks"] == 1 and "a.wav: mono, upmixed to stereo; 1 silent chunks dropped" in result["notes"]


def test_chunk_spans_and_splits() -> None:
    steps = steps_for(30.0)
    assert steps == 323
    assert chunk_spans(0, steps, 10) == []
    assert chunk_spans(100, steps, 10) == [(0, SAMPLES_PER_LATENT)]  # short audio: one chunk padded to a whole step
    hop = SAMPLES_PER_LATENT
    spans = chunk_spans(2 * steps * hop + 5 * hop, steps, 10)  # a 5-step tail joins the last chunk
    assert spans == [(0, steps * hop), (steps * hop, (2 * steps + 5) * hop)]
    assert len(chunk_spans(2 * steps * SAMPLES_PER_LATENT + 20 * SAMPLES_PER_LATENT, steps, 10)) == 3
    splits = assign_splits(["a.wav", "b.wav"])
    assert sorted(splits.values()) == ["heldout", "train"]
    assert assign_splits(["a.wav", "b.wav"]) == splits
    assert assign_splits(["only.wav"]) in ({"only.wav": "train"}, {"only.wav": "heldout"})


def test_cli_folder(messy_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "ds"
    args = ["prepare", "folder", str(messy_folder), "--out", str(out), "--label", "none", "--quiet"]
    assert main(args) == 1  # half a minute of audio: refused before any training
    assert "0.5 minutes of usable audio (5 of 7 audio files used" in capsys.readouterr().err
    code = main([*args, "--min-minutes", "0"])
    text = capsys.readouterr().out
    assert code == 0 and "Prepared folder dataset" in text and "garbage.wav" in text
    assert main(["prepare", "folder", str(tmp_path / "nowhere"), "--out", str(out)]) == 1
    assert "musika prepare folder: error: input folder" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["prepare", "folder", "--help"])
    help_text = capsys.readouterr().out
    assert "(default: tempo)" in help_text and "--min-minutes" in help_text and "(default: 0.3)" in help_text
