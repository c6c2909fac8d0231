"""prepare_piano: rendered onset rates follow the MIDI density label; corpus works, failures, determinism, reuse."""

from __future__ import annotations

import hashlib
import json
import tempfile
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import spearmanr

from training.analysis import onset_rate
from training.data.cli import main
from training.data.dataset import Dataset, DatasetError
from training.data.piano import onsets_from_notes, prepare_piano

SF2 = "/usr/share/sounds/sf2/TimGM6mb.sf2"
pytestmark = pytest.mark.skipif(not Path(SF2).exists(), reason="apt timgm6mb-soundfont is not installed")


@pytest.fixture(autouse=True)
def scratch_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """music21 and tempfile write scratch files: keep them under tmp_path."""
    (tmp_path / "scratch").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "scratch"))


def test_audio_onset_rate_rises_with_the_midi_density_label(tmp_path: Path) -> None:
    out = tmp_path / "gen"
    result = prepare_piano(
        40 / 3600, seed=3, out=out, chunk_seconds=4.0, soundfont=SF2, works=[], generated_fraction=1.0,
        max_work_seconds=20.0, progress=False,
    )  # fmt: skip
    ds = Dataset(out)
    labels = np.array([c.labels["onset_rate"] for c in ds])
    measured = np.array([onset_rate(ds.audio(c), 44100) for c in ds])
    assert len(ds) >= 8 and labels.max() > 2.5 * labels.min()  # the material spans sparse to dense
    assert spearmanr(labels, measured).statistic > 0.8
    low, high = labels < np.median(labels), labels > np.median(labels)
    assert measured[high].mean() > 1.5 * measured[low].mean()
    for c in ds:
        curve = ds.curve(c, "density")
        assert curve.shape == (ds.audio(c).shape[1] // 4096,)
        assert curve.mean() == pytest.approx(c.labels["onset_rate"], rel=0.5, abs=0.5)
    stats = ds.info["stats"]["density"]
    assert stats["count"] == sum(ds.curve(c, "density").size for c in ds) and stats["std"] > 0
    assert result["hours"] * 3600 >= 40.0 and result["hours"] * 3600 < 44.5  # stops within one chunk


def _digest(root: Path) -> str:
    h = hashlib.sha1((root / "manifest.jsonl").read_bytes())
    for wav in sorted((root / "audio").iterdir()):
        h.update(wav.read_bytes())
    return h.hexdigest()


def test_corpus_work_failures_determinism_and_reuse(tmp_path: Path) -> None:
    from music21 import corpus

    chorale = str(corpus.getWork("bach/bwv67.4"))
    broken = tmp_path / "broken.musicxml"
    broken.write_text("<score-partwise><part id='P1'><measure><note>")
    kwargs = dict(chunk_seconds=10.0, soundfont=SF2, works=[broken, chorale], generated_fraction=0.0, progress=False)
    a = prepare_piano(20 / 3600, seed=7, out=tmp_path / "a", **kwargs)
    assert [s["item"] for s in a["skipped"]] == ["broken.musicxml"]
    assert "could not parse" in a["skipped"][0]["reason"]
    assert {c.source for c in Dataset(tmp_path / "a")} == {"bwv67.4.xml"}
    assert "broken.musicxml" in (tmp_path / "a" / "DATASET.md").read_text()

    b = prepare_piano(20 / 3600, seed=7, out=tmp_path / "b", **kwargs)
    assert b["chunks"] == a["chunks"] and _digest(tmp_path / "a") == _digest(tmp_path / "b")

    again = prepare_piano(20 / 3600, seed=7, out=tmp_path / "a", **kwargs)
    assert again["new_chunks"] == 0 and again["reused_chunks"] == a["chunks"]
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    info = json.loads((tmp_path / "a" / "dataset.json").read_text())
    assert info["kind"] == "piano" and info["seed"] == 7 and "density" in info["labels"]

    other = prepare_piano(20 / 3600, seed=8, out=tmp_path / "c", **kwargs)  # another seed: other tempo/velocity
    assert other["chunks"] >= 1 and _digest(tmp_path / "c") != _digest(tmp_path / "a")


def test_chords_count_as_one_onset() -> None:
    starts = np.array([0.0, 0.01, 0.02, 0.5, 0.5, 1.0])
    assert np.allclose(onsets_from_notes(starts), [0.0, 0.5, 1.0])


def test_bad_arguments_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="hours must be > 0"):
        prepare_piano(0.0, 0, tmp_path / "x", soundfont=SF2)
    with pytest.raises(DatasetError, match="soundfont .*nope.sf2 does not exist"):
        prepare_piano(0.01, 0, tmp_path / "x", soundfont=tmp_path / "nope.sf2")
    (tmp_path / "fake.sf2").write_bytes(b"not a soundfont" * 10)
    with pytest.raises(DatasetError, match="fake.sf2 is not a SoundFont file"):
        prepare_piano(0.01, 0, tmp_path / "x", soundfont=tmp_path / "fake.sf2")
    with pytest.raises(DatasetError, match="generated_fraction must be within 0..1"):
        prepare_piano(0.01, 0, tmp_path / "x", soundfont=SF2, works=[], generated_fraction=2.0)


def test_a_run_of_failing_works_stops_with_an_error(tmp_path: Path) -> None:
    broken = tmp_path / "broken.xml"
    broken.write_text("<not-a-score/>")
    with pytest.raises(DatasetError, match="25 works in a row failed"):
        prepare_piano(0.01, 0, tmp_path / "x", soundfont=SF2, works=[broken] * 30, generated_fraction=0.0)


def test_cli_piano_help_shows_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["prepare", "piano", "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    assert "--hours" in text and "(default: 1.0)" in text and "(default: 0.2)" in text
