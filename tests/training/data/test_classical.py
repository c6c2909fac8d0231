"""prepare_classical: each part of a work plays on its own instrument, in range; labels and licences recorded."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest

from training.data.classical import ENSEMBLES, INSTRUMENTS, fit_range, orchestrate, prepare_classical
from training.data.dataset import Dataset, DatasetError

SF2 = "/usr/share/sounds/sf2/TimGM6mb.sf2"


@pytest.fixture(autouse=True)
def scratch_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """music21 and tempfile write scratch files: keep them under tmp_path."""
    (tmp_path / "scratch").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "scratch"))


def test_parts_go_to_instruments_from_the_top_and_into_their_range() -> None:
    assert orchestrate(4, "string quartet") == ["violin", "violin", "viola", "cello"]
    assert orchestrate(6, "string quartet")[-2:] == ["cello", "cello"]  # extra low parts double the bass
    assert all(name in INSTRUMENTS for names in ENSEMBLES.values() for name in names)
    low_line = np.array([[0.0, 1.0, 30.0, 80.0], [1.0, 2.0, 34.0, 80.0], [2.0, 3.0, 90.0, 80.0]])
    _, lo, hi = INSTRUMENTS["violin"]
    fitted = fit_range(low_line, lo, hi)
    assert fitted[:, 2].min() >= lo and fitted[:, 2].max() <= hi
    assert np.all((fitted[:, 2] - low_line[:, 2]) % 12 == 0)  # moved by whole octaves only


@pytest.mark.skipif(not Path(SF2).exists(), reason="apt timgm6mb-soundfont is not installed")
def test_a_chorale_renders_as_an_ensemble_with_density_labels(tmp_path: Path) -> None:
    from music21 import corpus

    chorale = str(corpus.getWork("bach/bwv67.4"))
    result = prepare_classical(15 / 3600, seed=1, out=tmp_path / "ds", chunk_seconds=5.0, soundfont=SF2,
                               works=[chorale], progress=False)
    ds = Dataset(tmp_path / "ds")
    assert result["chunks"] == len(ds) >= 3 and ds.info["kind"] == "classical"
    audio = ds.audio(next(iter(ds)))
    assert audio.shape[0] == 2 and np.abs(audio).max() > 0.1  # not silent
    assert all(ds.curve(c, "density").mean() > 0 for c in ds)
    assert "ensemble" in (tmp_path / "ds" / "DATASET.md").read_text() or "instrument" in (
        tmp_path / "ds" / "DATASET.md").read_text()


def test_bad_hours_are_refused_before_any_work(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="hours must be > 0"):
        prepare_classical(0, seed=0, out=tmp_path / "x", soundfont=SF2 if Path(SF2).exists() else None)
