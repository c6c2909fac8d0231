"""Choosing the GAN snapshot a preset plays: measured as musika eval measures, ties to the later step, and scores
kept so a rerun measures nothing again (unless the snapshot file changed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from generator.runtime.engine import Engine
from training.gan_snapshots import choice_note, choose_snapshot, score_clips, snapshot_steps


def test_density_is_scored_by_rank_correlation_over_the_eval_levels(tiny_preset) -> None:
    figures = score_clips(Engine.load(tiny_preset, threads=1), "density", seconds=2.0, seeds=(0,))
    assert set(figures) == {"score", "spearman"} and -1.0 <= figures["score"] <= 1.0


def test_the_best_snapshot_plays_ties_go_to_the_later_step_and_scores_are_kept(tiny_preset, tmp_path) -> None:
    snapshots = {3000: tmp_path / "step_3000.pt", 6000: tmp_path / "step_6000.pt"}
    for path in snapshots.values():
        path.write_bytes(b"weights")
    exported: list[str] = []

    def export(checkpoint: Path, out: Path, name: str) -> Path:
        exported.append(name)
        return Path(tiny_preset)  # the same networks: equal scores

    chosen, scores = choose_snapshot(snapshots, "tempo", [128.0], tmp_path, export)
    assert exported == ["step_3000", "step_6000"] and set(scores) == {3000, 6000}
    assert chosen == 6000 and scores[3000] == scores[6000]
    assert set(json.loads((tmp_path / "scores.json").read_text())["scores"]) == {"3000", "6000"}
    assert choice_note(chosen, scores).startswith("step 6,000 of 2 snapshots, chosen on seeds 100-101 by clips "
                                                  "within ±2 % of the requested tempo: 3,000: ")

    def no_export(checkpoint: Path, out: Path, name: str) -> Path:
        raise AssertionError("a kept score was measured again")

    assert choose_snapshot(snapshots, "tempo", [128.0], tmp_path, no_export)[0] == 6000
    assert choose_snapshot({9000: Path("x.pt")}, "none", [], tmp_path, no_export) == (9000, {})

    # the GAN trained again into the same run: its new snapshot is measured, not given the old one's score
    exported.clear()
    snapshots[3000].write_bytes(b"new weights")
    assert choose_snapshot(snapshots, "tempo", [128.0], tmp_path, export)[0] == 6000
    assert exported == ["step_3000"]


def test_snapshot_steps() -> None:
    assert snapshot_steps(18000, 3000) == [3000, 6000, 9000, 12000, 15000, 18000]
    assert snapshot_steps(10000, 3000) == [3000, 6000, 9000, 10000]
    assert snapshot_steps(18000, 0) == [18000]
    with pytest.raises(ValueError, match="total steps must be at least 1"):
        snapshot_steps(0, 3000)
