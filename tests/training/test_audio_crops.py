"""AudioCrops: a mix of datasets draws every domain equally often, whatever its hours; bad input is named."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.training.tiny_dataset import make_tiny_dataset
from training.audio_crops import AudioCrops
from training.errors import TrainingError


def test_each_dataset_of_a_mix_is_drawn_alike(tmp_path: Path) -> None:
    small = make_tiny_dataset(tmp_path / "small", seconds=2.0, chunks=1)
    large = make_tiny_dataset(tmp_path / "large", seconds=4.0, chunks=6)
    crops = AudioCrops([small, large], "train", 4096)
    share = crops.p[[i for i, item in enumerate(crops.items) if item[0].is_relative_to(small)]].sum()
    assert share == pytest.approx(0.5)  # 2 s of audio weighs as much as 24 s
    alone = AudioCrops(large, "train", 4096)
    assert len(alone.items) == 6 and alone.p.sum() == pytest.approx(1.0)
    batch = crops.sample(np.random.default_rng(0), 5)
    assert batch.shape == (5, 4096) and np.isfinite(batch).all() and np.abs(batch).max() > 0


def test_silent_crops_are_drawn_again(tmp_path: Path) -> None:
    from training.data.dataset import DatasetWriter

    writer = DatasetWriter(tmp_path / "gaps", kind="gaps")
    writer.add("silence", np.zeros((2, 44100), np.float32), source="a", split="train")
    writer.add("music", 0.5 * np.ones((2, 44100), np.float32), source="b", split="train")
    writer.finish()
    crops = AudioCrops(tmp_path / "gaps", "train", 4096)
    assert len(crops.items) == 2
    batch = crops.sample(np.random.default_rng(1), 64)
    assert (np.abs(batch).max(axis=1) > 0.1).all()  # every crop comes from the music


def test_a_dataset_too_short_for_one_crop_is_named(tmp_path: Path) -> None:
    small = make_tiny_dataset(tmp_path / "small", seconds=1.0, chunks=1)
    with pytest.raises(TrainingError, match=f"dataset {small}: no 'train' chunk has the 88200 samples"):
        AudioCrops([small], "train", 88200)
    with pytest.raises(TrainingError, match="no dataset given"):
        AudioCrops([], "train", 4096)
