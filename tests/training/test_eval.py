"""`musika eval` on the tiny random-weight presets: the figures are produced, finite, written and hash-safe.

Random weights make noise, so nothing here checks quality; the metric functions themselves are tested on
known signals in test_metrics.py.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil

import numpy as np
import pytest

from generator.runtime.engine import Engine
from generator.runtime.preset import REPO_PRESETS, load_preset
from training.data.dataset import DatasetWriter
from training.errors import TrainingError
from training.eval import QUICK_BPMS, OnnxEncoder, evaluate, write_results
from training.eval_cli import add_parser
from training.model_card import extract_notes

pytest.importorskip("torch")

SR = 44100


def _finite_or_none(v) -> bool:
    return v is None or (isinstance(v, int | float) and math.isfinite(v))


@pytest.fixture(scope="module")
def heldout(tmp_path_factory):
    """A prepared dataset with three 6 s held-out click tracks (124, 132, 140 BPM) and one train chunk."""
    root = tmp_path_factory.mktemp("dataset")
    w = DatasetWriter(root, "test", seed=0)
    rng = np.random.default_rng(0)
    for i, bpm in enumerate((124, 132, 140, 128)):
        y = rng.normal(0, 0.003, 6 * SR).astype(np.float32)
        for b in np.arange(0.05, 6.0, 60 / bpm):
            s = int(b * SR)
            y[s : s + 400] += np.exp(-np.arange(400) / 80.0).astype(np.float32) * 0.7
        w.add(f"c{i}", np.stack([y, y]), f"src{i}", split="heldout" if i < 3 else "train")
    w.finish()
    return root


@pytest.fixture
def preset_copy(tiny_preset, tmp_path):
    """A private copy of the session-wide tiny preset (eval writes into the preset directory)."""
    return shutil.copytree(tiny_preset, tmp_path / "tiny")


def test_quick_eval_of_conditioned_preset_writes_figures_and_card(preset_copy, heldout):
    card = preset_copy / "MODEL_CARD.md"
    card.write_text(card.read_text() + "\n## Notes\n\nHand-written: keep me.\n")
    before = json.loads((preset_copy / "preset.json").read_text())
    res = evaluate(preset_copy, dataset=heldout, quick=True, seconds=3.0, progress=False)

    t = res["tempo"]
    assert t["requested"] == [float(b) for b in QUICK_BPMS]
    assert len(t["measured"]) == 3 and all(_finite_or_none(v) for v in t["measured"])
    assert 0.0 <= t["within_tolerance"] <= 1.0 and _finite_or_none(t["median_ibi_cv"])
    d = res["density"]
    assert len(d["requested"]) == 3 and all(v >= 0 for v in d["measured"])
    assert _finite_or_none(d["spearman"])
    s = res["seams"]
    assert s["decoder_ratio"] > 0 and s["generator_ratio"] > 0 and s["max_ratio"] == pytest.approx(
        max(s["decoder_ratio"], s["generator_ratio"]))
    ae = res["autoencoder"]
    assert 0.0 <= ae["onset_f_measure"] <= 1.0 and ae["clips"] == 2
    assert math.isfinite(ae["mr_log_spectral_distance_db"]) and ae["mr_log_spectral_distance_db"] > 0
    r = res["realism"]
    assert r["ratio"] > 0 and math.isfinite(r["ratio"]) and r["heldout_clips"] == 2
    assert set(res["bars"]) == {"tempo/within_tolerance", "tempo/median_ibi_cv", "seams/max_ratio",
                                "density/spearman", "output/true_peak_max_dbtp", "output/clipped_samples",
                                "realism/classifier_auc", "realism/ratio", "realism/comb_vs_heldout"}
    o = res["output"]
    assert o["true_peak_max_dbtp"] <= -1.0 and o["clipped_samples"] == 0 and o["target_lufs"] == -18.0
    assert 0.0 <= r["classifier_auc"] <= 1.0 and r["comb_vs_heldout"] > 0
    assert all(isinstance(b["pass"], bool) for b in res["bars"].values())
    assert res["skipped"] == {} and res["eval"]["quick"] is True and res["eval"]["seconds"] == 3.0
    json.dumps(res, allow_nan=False)  # strict JSON: no NaN left

    write_results(preset_copy, res)
    after = json.loads((preset_copy / "preset.json").read_text())
    assert after["models"] == before["models"]  # hashes untouched
    assert after["metrics"]["onnx_parity_max_abs"] == before["metrics"]["onnx_parity_max_abs"]
    assert after["metrics"]["tempo"] == res["tempo"]
    load_preset(preset_copy)  # still verifies every model file
    text = card.read_text()
    for needle in ("## Evaluation", "`tempo/within_tolerance`", "`realism/ratio`", "FAIL", "## Training",
                   "## Configuration", "spectrogram.png", "| 120 |"):
        assert needle in text
    assert extract_notes(text).strip() == "## Notes\n\nHand-written: keep me."
    assert (preset_copy / "spectrogram.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_eval_of_plain_preset_without_data_is_deterministic_and_skips_data_sections(tiny_preset_plain):
    a = evaluate(tiny_preset_plain, quick=True, seconds=3.0, progress=False)
    b = evaluate(tiny_preset_plain, quick=True, seconds=3.0, progress=False)
    a["eval"].pop("wall_time_s"), b["eval"].pop("wall_time_s")
    assert a == b
    assert "tempo" not in a and "density" not in a and a["eval"]["clips"] == 2
    assert set(a["skipped"]) == {"autoencoder", "realism"} and "--dataset" in a["skipped"]["realism"]
    assert set(a["bars"]) == {"seams/max_ratio", "output/true_peak_max_dbtp", "output/clipped_samples"}
    assert all(_finite_or_none(v) for v in a["seams"].values())


def test_rewriting_results_replaces_stale_sections(preset_copy):
    write_results(preset_copy, {"eval": {"seeds": 1}, "autoencoder": {"onset_f_measure": 0.5}}, card=False)
    write_results(preset_copy, {"eval": {"seeds": 2}, "seams": {"max_ratio": 1.0}}, card=False)
    metrics = load_preset(preset_copy).metrics
    assert metrics["autoencoder"] is None and metrics["seams"] == {"max_ratio": 1.0}
    assert metrics["onnx_parity_max_abs"]  # export's figures stay


def test_onnx_encoder_round_trip_shapes(tiny_preset):
    engine = Engine.load(tiny_preset)
    audio = np.random.default_rng(0).normal(0, 0.1, (2, 40000)).astype(np.float32)
    lat = OnnxEncoder(engine).encode(audio)
    dim = engine.config.autoencoder.latent_dim
    assert lat.shape == (16, 2 * dim)  # ceil(40000 / 4096) = 10 steps, rounded up to whole 8-step blocks
    assert np.all(np.isfinite(lat))
    assert engine.decode(lat).shape == (2, 16 * engine.config.samples_per_latent)


def _cli(argv):
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli_no_write_leaves_the_preset_alone_and_bad_input_is_named(preset_copy, tmp_path, capsys):
    before = (preset_copy / "preset.json").read_bytes()
    card = (preset_copy / "MODEL_CARD.md").read_bytes()
    assert _cli(["eval", str(preset_copy), "--quick", "--seconds", "2", "--no-write"]) == 0
    out = capsys.readouterr().out
    assert "seams/max_ratio" in out and "autoencoder: skipped" in out
    assert (preset_copy / "preset.json").read_bytes() == before
    assert (preset_copy / "MODEL_CARD.md").read_bytes() == card
    with pytest.raises(TrainingError, match=str(tmp_path / "nothing")):
        _cli(["eval", str(preset_copy), "--dataset", str(tmp_path / "nothing"), "--no-write"])
    with pytest.raises(TrainingError, match="seeds must be at least 1"):
        _cli(["eval", str(preset_copy), "--seeds", "0", "--no-write"])
    # another phase than the preset plays is measured only without writing (the card describes what it plays)
    with pytest.raises(TrainingError, match="--phase vocoder: this preset plays 'decoder'.*--no-write"):
        _cli(["eval", str(preset_copy), "--quick", "--phase", "vocoder"])
    assert (preset_copy / "preset.json").read_bytes() == before
    assert _cli(["eval", str(preset_copy), "--quick", "--seconds", "2", "--phase", "vocoder", "--no-write",
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["eval"]["phase"] == "vocoder"


def test_eval_with_held_out_audio_puts_generated_audio_beside_it_in_the_card(preset_copy, heldout):
    """The card shows a generated clip next to a held-out training clip, on one dB scale: a reader sees what a
    listener would compare (levels, attacks, noise), not only figures."""
    from generator.offline.spectrogram_png import dbfs_spectrogram
    from training.eval_cli import run_eval

    run_eval(str(preset_copy), dataset=str(heldout), quick=True, seconds=2.0)
    picture = preset_copy / "listening.png"
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = (preset_copy / "MODEL_CARD.md").read_text()
    assert "## Generated next to its training audio" in text and "(listening.png)" in text
    # the panels share one scale: a full-scale sine reads 0 dB, one at -20 dBFS reads -20 dB
    t = np.arange(SR) / SR
    for level_db in (0.0, -20.0):  # 990.5 Hz: the centre of an FFT bin, so no scalloping loss
        db, freqs = dbfs_spectrogram(10 ** (level_db / 20) * np.sin(2 * np.pi * 46 * SR / 2048 * t))
        assert db[10:-10].max(axis=1) == pytest.approx(np.full(db.shape[0] - 20, level_db), abs=0.5)
        assert freqs[db[20].argmax()] == pytest.approx(46 * SR / 2048)


class _OneCondition:
    """What plan_jobs reads of a preset with one condition."""

    def __init__(self, condition):
        self.name, self.conditioning = "p", (condition,)

    def has_condition(self, name):
        return name == self.conditioning[0].name

    def condition(self, name):
        return self.conditioning[0]


def test_density_sweep_of_a_range_that_starts_at_zero_is_positive_and_rising():
    from generator.runtime.preset import Condition
    from training.eval import plan_jobs

    jobs = plan_jobs(_OneCondition(Condition("density", "curve", "notes/s", 0.0, 16.0, 3.0)), seeds=1, quick=False)
    levels = [j.requested for j in jobs if j.kind == "density"]
    assert levels[0] == 1.0 and levels[-1] == 16.0 and all(np.diff(levels) > 0)


def test_a_preset_from_recordings_is_asked_for_the_tempi_its_recordings_have(tmp_path):
    """Tracks each keep one tempo, so a preset trained on them is measured at its data's tempi, not 120-160 BPM;
    a dataset without tempo labels is refused by name."""
    from generator.runtime.preset import Condition
    from training.data.dataset import Dataset
    from training.eval import data_tempi, plan_jobs

    w = DatasetWriter(tmp_path / "d", "test", seed=0)
    quiet = np.zeros((2, SR), np.float32)
    for i, bpm in enumerate([100.0] * 6 + [120.0] * 3 + [170.0] * 3):
        w.add(f"c{i}", quiet, f"track{bpm:g}", labels={"tempo": bpm}, split="train")
    w.add("n", quiet, "untimed", split="train")
    w.finish()
    tempi = data_tempi(Dataset(tmp_path / "d"))
    assert tempi[0] == 100.0 and tempi[-1] == 170.0 and tempi == sorted(set(tempi)) and 120.0 in tempi

    preset = _OneCondition(Condition("tempo", "scalar", "BPM", 100.0, 170.0, 120.0))
    assert sorted({j.requested for j in plan_jobs(preset, seeds=1, quick=False, tempi=tempi)}) == tempi
    w = DatasetWriter(tmp_path / "none", "test", seed=0)
    w.add("n", quiet, "untimed", split="train")
    w.finish()
    with pytest.raises(TrainingError, match="no training chunk has a tempo label"):
        data_tempi(Dataset(tmp_path / "none"))


def test_tempi_from_the_data_without_data_is_refused_by_name(tiny_preset_plain):
    with pytest.raises(TrainingError, match="tempi to ask for come from the training data, and there is none"):
        evaluate(tiny_preset_plain, quick=True, progress=False, tempo_from_data=True)


def test_eval_reports_the_heard_beats_of_a_beat_preset_and_holds_them_to_the_live_targets() -> None:
    res = evaluate(REPO_PRESETS / "techno", quick=True, seconds=6.0, threads=1, progress=False)
    beats = res["beats"]
    assert beats["beats"] >= 20 and abs(beats["median_ms"]) < 6.0  # calibrated: on the grid, not 6 ms early
    assert res["bars"]["beats/median_abs_ms"]["threshold"] == 5.0 and res["bars"]["beats/p95_abs_ms"]["threshold"] == 15
    assert "beats" not in evaluate(REPO_PRESETS / "piano", quick=True, seconds=3.0, threads=1, progress=False)


def test_a_preset_on_a_shared_autoencoder_is_measured_against_its_own_held_out_audio(preset_copy, heldout):
    """Its training data lists the shared autoencoder's datasets; the last eval's held-out data is the GAN's."""
    from training.eval import _dataset

    path = preset_copy / "preset.json"
    info = json.loads(path.read_text())
    info["training"]["data"] = [str(preset_copy / "gone"), str(heldout)]  # a list, the first one moved away
    path.write_text(json.dumps(info))
    ds, why = _dataset(None, load_preset(preset_copy, verify=False))
    assert why == "" and ds.root == heldout
    info["training"]["data"] = [str(preset_copy / "gone")]
    info["metrics"]["eval"] = {"dataset": str(heldout)}
    path.write_text(json.dumps(info))
    assert _dataset(None, load_preset(preset_copy, verify=False))[0].root == heldout
    info["metrics"]["eval"] = {}
    path.write_text(json.dumps(info))
    assert _dataset(None, load_preset(preset_copy, verify=False)) == (None, "no held-out audio: pass --dataset DIR "
                                                                            "(a prepared dataset)")
