"""GAN training on latents of a tiny dataset: the critic learns, resume is bit-exact, NaN stops the run with
the last good checkpoint intact, conditioning and coordinates follow the contracts, export passes parity."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from bridge.controls import control_specs
from generator.runtime.coords import CoordinateStream
from generator.runtime.engine import Engine
from generator.runtime.model_config import GanConfig
from generator.runtime.preset import load_preset
from tests.training.tiny_dataset import make_tiny_dataset, tiny_model
from training.checkpoint import load_checkpoint, save_checkpoint
from training.encode import LatentCache, encode_dataset
from training.errors import CheckpointError, NonFiniteLossError, TrainingError
from training.finalize import export_run
from training.latent_data import (
    LatentCrops,
    coords_from_anchors,
    entry_positions,
    resolve_conditions,
    sample_coords,
    select_entries,
)
from training.loop_ae import mean_metric, run_autoencoder
from training.loop_gan import run_gan
from training.loop_utils import read_metrics
from training.run_configs import AeTrainConfig, GanTrainConfig


@pytest.fixture(autouse=True)
def one_thread():
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """A latent cache encoded with a (barely trained) toy autoencoder: (ae checkpoint, cache dir)."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("gan")
    data = make_tiny_dataset(root / "data")
    ae = run_autoencoder(AeTrainConfig(dataset=str(data), run_dir=str(root / "run"), model=tiny_model(),
                                       steps_level1=1, steps_level2=1, batch=2, device="cpu", preview_every=0,
                                       tensorboard=False, progress=False))
    encode_dataset(data, ae.checkpoint, root / "run" / "latents", progress=False)
    return ae.checkpoint, root / "run" / "latents"


def config(cache, run, **kw) -> GanTrainConfig:
    base = dict(latents=str(cache[1]), run_dir=str(run), autoencoder="", gan=tiny_model().gan,
                conditions=("tempo", "density"), batch=4, lr=2e-4, device="cpu", checkpoint_every=1000,
                preview_every=0, log_every=1, tensorboard=False, progress=False)
    return GanTrainConfig(**{**base, **kw})


def test_critic_learns_and_previews_are_written(cache, tmp_path):
    result = run_gan(config(cache, tmp_path, steps=24, autoencoder=str(cache[0]), preview_every=24))
    rows = read_metrics(tmp_path / "gan" / "metrics.jsonl")
    assert mean_metric(rows, "gan/critic", first=False) < mean_metric(rows, "gan/critic", first=True) - 0.1
    assert rows[0]["gan/r1_weight"] == 10.0 and all(np.isfinite(r["gan/r1"]) for r in rows)
    assert [c.kind for c in result.conditioning] == ["scalar", "curve"]
    assert result.model.gan.cond_scalars == 1 and result.model.gan.cond_curves == 1
    assert (tmp_path / "gan" / "previews" / "step_0000024.wav").is_file()
    assert (tmp_path / "gan" / "previews" / "step_0000024.png").is_file()


def test_resume_after_kill_reproduces_the_uninterrupted_run(cache, tmp_path):
    straight: dict[int, dict[str, float]] = {}
    run_gan(config(cache, tmp_path / "a", steps=5), on_step=lambda s, v: straight.__setitem__(s, v))

    def kill_at_3(step, values):
        if step == 3:
            raise KeyboardInterrupt  # as if killed after step 3; the last checkpoint is step 2

    with pytest.raises(KeyboardInterrupt):
        run_gan(config(cache, tmp_path / "b", steps=5, checkpoint_every=2), on_step=kill_at_3)
    resumed: dict[int, dict[str, float]] = {}
    run_gan(config(cache, tmp_path / "b", steps=5, checkpoint_every=2), resume=True,
            on_step=lambda s, v: resumed.__setitem__(s, v))
    assert sorted(resumed) == [3, 4, 5]
    for step in (3, 4, 5):
        assert resumed[step] == straight[step], step
    a, b = (load_checkpoint(tmp_path / x / "gan" / "checkpoint.pt") for x in "ab")
    assert a["switch"] == b["switch"]
    for key, value in a["networks"]["generator_ema"].items():
        assert torch.equal(value, b["networks"]["generator_ema"][key]), key


def test_nan_stops_the_run_and_keeps_the_last_good_checkpoint(cache, tmp_path):
    bad = tmp_path / "latents"
    bad.mkdir()
    for f in cache[1].iterdir():
        (bad / f.name).write_bytes(f.read_bytes())
    run_gan(config(cache, tmp_path, latents=str(bad), steps=2, checkpoint_every=2))
    before = (tmp_path / "gan" / "checkpoint.pt").read_bytes()
    for f in bad.glob("c0?.npy"):
        np.save(f, np.full_like(np.load(f), np.nan))
    with pytest.raises(NonFiniteLossError, match=r"step 3: .*gan/critic=nan.*step 2\) is intact"):
        run_gan(config(cache, tmp_path, latents=str(bad), steps=4, checkpoint_every=1), resume=True)
    assert (tmp_path / "gan" / "checkpoint.pt").read_bytes() == before
    assert load_checkpoint(tmp_path / "gan" / "checkpoint.pt")["step"] == 2


def test_conditions_from_labels(cache):
    entries = LatentCache(cache[1]).entries()
    tempo, density = resolve_conditions(entries, ["tempo", "density"])
    assert (tempo.kind, tempo.unit, tempo.min, tempo.max) == ("scalar", "BPM", 120.0, 136.0)
    assert density.kind == "curve" and density.min < density.default < density.max
    every = np.concatenate([e.curves["density"] for e in entries])
    assert (density.min, density.max) == pytest.approx(tuple(np.percentile(every, [5, 95])), abs=1e-4)
    with pytest.raises(TrainingError, match="labels present: .*density.*tempo"):
        resolve_conditions(entries, ["loudness"])
    crops = LatentCrops(entries, 32, (tempo, density))
    rng = np.random.default_rng(0)
    real, scal, curve = crops.sample(rng, 64, swap_prob=0.5, dropout=0.0)
    assert real.shape == (64, 32, 128) and scal.shape == (64, 1) and curve.shape == (64, 32, 1)
    assert np.all(np.abs(scal) <= 1) and not np.isnan(curve).any()
    _, scal, curve = crops.sample(rng, 64, swap_prob=0.5, dropout=1.0)
    assert np.isnan(scal).all() and np.isnan(curve).all()
    _, scal, curve = crops.sample(rng, 400, swap_prob=0.5, dropout=0.25)
    assert 0.15 < np.isnan(scal).mean() < 0.35 and 0.15 < np.isnan(curve[:, 0, 0]).mean() < 0.35
    # a chunk whose tempo was not confidently labelled trains with the condition dropped
    unlabelled = [dataclasses.replace(entries[0], labels={k: v for k, v in entries[0].labels.items() if k != "tempo"}),
                  *entries[1:]]
    (tempo_part,) = resolve_conditions(unlabelled, ["tempo"])
    assert tempo_part.min >= 120.0
    part = LatentCrops(unlabelled, 32, (tempo_part,))
    assert np.isnan(part.scalar_values[0]).all() and not np.isnan(part.scalar_values[1:]).any()


def test_balance_draws_rare_densities_as_often_as_common_ones():
    from generator.runtime.preset import Condition
    from training.encode import CacheEntry

    rng = np.random.default_rng(0)
    # 9 sparse pieces (1 note/s) for every dense one (8 notes/s)
    entries = [CacheEntry(f"e{i}", rng.standard_normal((64, 8)).astype(np.float32), {},
                          {"density": np.full(64, 8.0 if i % 10 == 0 else 1.0)}) for i in range(40)]
    density = Condition("density", "curve", "notes/s", 0.5, 9.0, 2.0)
    plain = LatentCrops(entries, 32, (density,))
    balanced = LatentCrops(entries, 32, (density,), balance="density")

    def dense_share(crops: LatentCrops) -> float:
        _, _, curve = crops.sample(np.random.default_rng(1), 2000, swap_prob=0.0, dropout=0.0)
        return float((curve[:, 0, 0] > density.to_model(4.0)).mean())

    assert dense_share(plain) == pytest.approx(0.1, abs=0.03)
    assert dense_share(balanced) == pytest.approx(0.5, abs=0.05)
    with pytest.raises(TrainingError, match="--balance tempo: not a tempo-like or curve condition.*those: density"):
        LatentCrops(entries, 32, (density,), balance="tempo")


def test_balance_draws_a_tempo_one_track_has_as_often_as_one_most_tracks_have():
    from generator.runtime.preset import Condition
    from training.encode import CacheEntry

    rng = np.random.default_rng(0)
    # per 10 chunks: 7 at 100 BPM, 1 at 160 BPM, 2 without a confident tempo (trained with the condition dropped)
    labels = [{"tempo": 160.0} if i % 10 == 0 else {} if i % 10 in (1, 2) else {"tempo": 100.0} for i in range(60)]
    entries = [CacheEntry(f"e{i}", rng.standard_normal((64, 8)).astype(np.float32), lab, {})
               for i, lab in enumerate(labels)]
    tempo = Condition("tempo", "scalar", "BPM", 100.0, 160.0, 130.0)

    def shares(crops: LatentCrops) -> tuple[float, float]:  # (160 BPM among labelled, unlabelled)
        _, scalars, _ = crops.sample(np.random.default_rng(1), 4000, swap_prob=0.0, dropout=0.0)
        v = scalars[:, 0]
        return float((v[np.isfinite(v)] > 0).mean()), float(np.isnan(v).mean())

    fast, unlabelled = shares(LatentCrops(entries, 32, (tempo,)))
    assert fast == pytest.approx(1 / 8, abs=0.03) and unlabelled == pytest.approx(0.2, abs=0.03)
    fast, unlabelled = shares(LatentCrops(entries, 32, (tempo,), balance="tempo"))
    assert fast == pytest.approx(0.5, abs=0.04) and unlabelled == pytest.approx(0.2, abs=0.03)


def test_min_label_trains_on_the_chosen_chunks_only(cache):
    entries = LatentCache(cache[1]).entries()
    tempos = sorted(e.labels["tempo"] for e in entries)
    kept = select_entries(entries, ["tempo=128"])
    assert kept and all(e.labels["tempo"] >= 128 for e in kept) and len(kept) == sum(t >= 128 for t in tempos)
    with pytest.raises(TrainingError, match="no entry is left"):
        select_entries(entries, ["tempo=1000"])
    with pytest.raises(TrainingError, match="--min-label 'kick': write NAME=VALUE"):
        select_entries(entries, ["kick"])
    with pytest.raises(TrainingError, match="--min-label kick_fraction: .* no such label; labels present: .*tempo"):
        select_entries(entries, ["kick_fraction=1"])


def test_training_coordinates_follow_the_inference_trajectory():
    g = GanConfig(half_len=16)
    stream = CoordinateStream(g, seed=3)
    coords = sample_coords(np.random.default_rng(0), 8, g)
    assert coords.shape == (8, 32, 128)
    assert np.allclose(coords[:, :, 64:], coords[:, :1, 64:])  # the global style is constant
    # inference window k starts at offset h/2 + 2 h k from its first anchor: one of the three training offsets
    s, h = g.anchor_spacing, g.half_len
    for k in range(3):
        m0 = h // 2 + 2 * h * k
        first = m0 // s
        anchors = np.stack([stream.anchor(first + j) for j in range(3)])[None]
        start = np.array([m0 - first * s])
        assert start[0] in (h // 2, h // 2 + h, h // 2 + 2 * h)
        assert np.allclose(coords_from_anchors(anchors, start, g)[0], stream.window(k), atol=1e-6)


def test_export_passes_the_parity_check(cache, tmp_path):
    result = run_gan(config(cache, tmp_path / "run", steps=2, conditions=("tempo",)))
    preset_dir = export_run(cache[0], result.checkpoint, tmp_path / "presets", "tiny-techno", "test preset",
                            guidance=2.0, truncation=1.0, phase="vocoder")
    preset = load_preset(preset_dir)
    assert preset.config.gan.default_guidance == 2.0  # the engine's default guidance
    assert preset.config.audio.phase == "vocoder" and Engine(preset, threads=1).phase == "vocoder"  # and phase
    assert Engine(preset, threads=1, phase="decoder").phase == "decoder"  # unless the user says otherwise
    assert preset.config.gan.default_truncation == 1.0  # and the variation control's default
    assert control_specs(preset.controls, variation=preset.config.gan.default_truncation)["variation"].default == 1.0
    assert [c.name for c in preset.conditioning] == ["tempo"]
    assert max(preset.metrics["onnx_parity_max_abs"].values()) < 1e-4
    assert preset.training["gan_steps"] == 2
    card = (preset_dir / "MODEL_CARD.md").read_text()
    assert "`gan/critic`" in card and "spectrogram.png" in card
    assert (preset_dir / "spectrogram.png").stat().st_size > 1000


def test_export_refuses_an_unknown_phase(cache, tmp_path):
    result = run_gan(config(cache, tmp_path / "run", steps=1, conditions=("tempo",)))
    with pytest.raises(CheckpointError, match="--phase 'griffin-lim' is invalid; use one of decoder, vocoder"):
        export_run(cache[0], result.checkpoint, tmp_path / "presets", "bad", phase="griffin-lim")
    assert not (tmp_path / "presets" / "bad").exists()


def test_beat_phase_comes_from_the_tempo_and_downbeat_labels(cache):
    entries = LatentCache(cache[1]).entries()
    tempo, beat = resolve_conditions(entries, ["tempo", "beat"])
    assert (beat.kind, beat.periods, beat.channels) == ("phase", (1.0, 4.0), 4)
    model = tiny_model().with_conditioning(1, 4)
    e = entries[0]
    positions = entry_positions(e, model)
    seconds = np.arange(e.latents.shape[0]) * model.samples_per_latent / model.audio.sample_rate
    np.testing.assert_allclose(positions, (seconds - e.labels["first_downbeat_s"]) * e.labels["tempo"] / 60)
    crops = LatentCrops(entries, 32, (tempo, beat), model)
    rng = np.random.default_rng(0)
    _, _, curve = crops.sample(rng, 64, swap_prob=0.5, dropout=0.0)
    assert curve.shape == (64, 32, 4)
    np.testing.assert_allclose(curve[..., 0] ** 2 + curve[..., 1] ** 2, 1.0, atol=1e-5)  # sin/cos pairs
    _, _, curve = crops.sample(rng, 400, swap_prob=0.5, dropout=0.3)
    dropped = np.isnan(curve[:, 0, :])
    assert (dropped == dropped[:, :1]).all() and 0.2 < dropped[:, 0].mean() < 0.4  # a phase drops as a whole
    with pytest.raises(TrainingError, match="needs the model config"):
        LatentCrops(entries, 32, (tempo, beat))


def test_recordings_beat_grid_gives_the_position_in_the_beat_and_untimed_chunks_drop_it(cache):
    """Chunks of recordings carry a beat grid (tempo, first_beat_s) but no bar lines: the phase has one period
    (the beat); a chunk without a confident tempo trains with it dropped; no beat grid at all is refused."""
    from training.encode import CacheEntry

    base = LatentCache(cache[1]).entries()[0]
    timed = CacheEntry("a", base.latents, {"tempo": 120.0, "first_beat_s": 0.1}, {})
    untimed = CacheEntry("b", base.latents, {}, {})
    tempo, beat = resolve_conditions([timed, untimed], ["tempo", "beat"])
    assert (beat.periods, beat.channels, beat.max) == ((1.0,), 2, 1.0)
    model = tiny_model().with_conditioning(1, 2)
    seconds = np.arange(base.latents.shape[0]) * model.samples_per_latent / model.audio.sample_rate
    np.testing.assert_allclose(entry_positions(timed, model), (seconds - 0.1) * 2.0)
    assert np.isnan(entry_positions(untimed, model)).all()
    _, _, curve = LatentCrops([timed, untimed], 32, (tempo, beat), model).sample(
        np.random.default_rng(0), 200, swap_prob=0.0, dropout=0.0)
    dropped = np.isnan(curve[:, 0, :]).all(axis=1)
    assert 0.3 < dropped.mean() < 0.7 and np.isfinite(curve[~dropped]).all()
    with pytest.raises(TrainingError, match="first_beat_s .* no chunk has them"):
        resolve_conditions([untimed], ["beat"])


def test_init_from_adds_the_beat_phase_without_changing_what_the_model_does(cache, tmp_path):
    from training.models import Critic, Generator
    from training.warm_start import warm_start

    old = run_gan(config(cache, tmp_path / "old", steps=3, conditions=("tempo",)))
    state = load_checkpoint(old.checkpoint)
    entries = LatentCache(cache[1]).entries()
    conds = resolve_conditions(entries, ["tempo", "beat"])
    model = tiny_model().with_conditioning(1, 4)
    nets = {"generator": Generator(model), "critic": Critic(model), "generator_ema": Generator(model)}
    assert warm_start(old.checkpoint, nets, conds, model.to_dict()) == 3
    before_g, before_c = Generator(old.model), Critic(old.model)
    before_g.load_state_dict(state["networks"]["generator_ema"])
    before_c.load_state_dict(state["networks"]["critic"])
    g = old.model.gan
    rng = np.random.default_rng(1)
    coords = torch.from_numpy(rng.standard_normal((2, g.half_len, g.coord_dim)).astype(np.float32))
    scal = torch.tensor([[0.3], [-0.5]])
    phase = torch.from_numpy(rng.uniform(-1, 1, (2, g.half_len, 4)).astype(np.float32))
    noise = torch.randn(2, before_g.noise_len)
    with torch.no_grad():
        want = before_g.eval()(coords, scal, None, noise)
        got = nets["generator_ema"].eval()(coords, scal, phase, noise)
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
        window = torch.randn(2, 2 * g.half_len, 128)
        phase_w = phase.repeat(1, 2, 1)
        torch.testing.assert_close(nets["critic"](window, scal, phase_w), before_c(window, scal), atol=1e-5, rtol=1e-5)
    new = run_gan(config(cache, tmp_path / "new", steps=2, conditions=("tempo", "beat"),
                         init_from=str(old.checkpoint)))
    assert new.model.gan.cond_curves == 4 and new.step == 2
    with pytest.raises(TrainingError, match=r"conditions \['tempo'\] must come first"):
        run_gan(config(cache, tmp_path / "bad", steps=1, conditions=("beat", "tempo"), init_from=str(old.checkpoint)))


def test_export_refuses_a_bad_guidance_and_writes_nothing(cache, tmp_path):
    from training.errors import CheckpointError

    result = run_gan(config(cache, tmp_path / "run", steps=1, conditions=("tempo",)))
    with pytest.raises(CheckpointError, match="--guidance nan is invalid"):
        export_run(cache[0], result.checkpoint, tmp_path / "presets", "bad", guidance=float("nan"))
    with pytest.raises(CheckpointError, match="--truncation 0.0 is invalid; use a bound above 0"):
        export_run(cache[0], result.checkpoint, tmp_path / "presets", "bad", truncation=0.0)
    assert not (tmp_path / "presets").exists()


def test_beat_onset_term_trains_and_says_what_it_needs(cache, tmp_path):
    data = make_tiny_dataset(tmp_path / "data")
    ae = run_autoencoder(AeTrainConfig(dataset=str(data), run_dir=str(tmp_path / "ae"), model=tiny_model(),
                                       steps_level1=60, steps_level2=60, batch=2, device="cpu", preview_every=0,
                                       tensorboard=False, progress=False))  # decodes the clicks audibly
    encode_dataset(data, ae.checkpoint, tmp_path / "ae" / "latents", progress=False)
    trained = (ae.checkpoint, tmp_path / "ae" / "latents")
    beat = {"conditions": ("tempo", "beat"), "weights": {"gan/beat_onsets": 1.0}}
    run_gan(config(trained, tmp_path / "ok", steps=3, autoencoder=str(ae.checkpoint), **beat))
    rows = read_metrics(tmp_path / "ok" / "gan" / "metrics.jsonl")
    values = [r["gan/beat_onsets"] for r in rows if "gan/beat_onsets" in r]
    assert values and all(np.isfinite(v) and v >= 0 for v in values)
    # a kill and --resume reproduce the uninterrupted run with the term too (template and decoder noise included)
    straight: dict[int, dict[str, float]] = {}
    run_gan(config(trained, tmp_path / "a", steps=4, autoencoder=str(ae.checkpoint), **beat),
            on_step=lambda s, v: straight.__setitem__(s, v))

    def kill_at_3(step, values):
        if step == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_gan(config(trained, tmp_path / "b", steps=4, checkpoint_every=2, autoencoder=str(ae.checkpoint), **beat),
                on_step=kill_at_3)
    resumed: dict[int, dict[str, float]] = {}
    run_gan(config(trained, tmp_path / "b", steps=4, checkpoint_every=2, autoencoder=str(ae.checkpoint), **beat),
            resume=True, on_step=lambda s, v: resumed.__setitem__(s, v))
    for step in (3, 4):
        for key, value in straight[step].items():
            assert resumed[step][key] == pytest.approx(value, rel=1e-5, abs=1e-6), (step, key)
    with pytest.raises(TrainingError, match="pass --autoencoder"):
        run_gan(config(trained, tmp_path / "no-ae", steps=1, **beat))
    with pytest.raises(TrainingError, match="--condition beat"):
        run_gan(config(trained, tmp_path / "no-beat", steps=1, autoencoder=str(ae.checkpoint),
                       **{**beat, "conditions": ("tempo",)}))
    with pytest.raises(TrainingError, match="was not encoded with the encoders of --autoencoder"):
        run_gan(config(trained, tmp_path / "other-ae", steps=1, autoencoder=str(cache[0]), **beat))
    other = tmp_path / "narrow-ae.pt"
    narrow = dataclasses.replace(tiny_model(), autoencoder=dataclasses.replace(tiny_model().autoencoder, latent_dim=8))
    save_checkpoint(other, {**load_checkpoint(ae.checkpoint), "model": narrow.to_dict()})
    with pytest.raises(TrainingError, match="does not match the latents .*'latent_dim': 8.*encoded with .*'latent_dim'"
                                            ": 64"):
        run_gan(config(trained, tmp_path / "misfit", steps=1, autoencoder=str(other)))
    assert not (tmp_path / "misfit" / "gan" / "checkpoint.pt").exists()
    with pytest.raises(TrainingError, match="show no beat .* is that autoencoder trained"):
        run_gan(config(cache, tmp_path / "untrained", steps=1, autoencoder=str(cache[0]), **beat))
