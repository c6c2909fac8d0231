"""A run that blows up stops and keeps the checkpoint from before the blow-up; a noisy one goes on."""

from __future__ import annotations

import numpy as np
import pytest

from training.divergence import DivergenceGuard

torch = pytest.importorskip("torch")


def noisy(rng: np.random.Generator, level: float, n: int) -> list[float]:
    """Losses as a healthy run logs them: a level with batch-to-batch noise up to +-40 %."""
    return list(level * (1 + rng.uniform(-0.4, 0.4, n)))


def test_a_noisy_but_healthy_loss_never_trips_the_guard():
    rng = np.random.default_rng(0)
    guard = DivergenceGuard(["ae1/magnitude"])
    falling = np.linspace(1.0, 0.09, 3000) * (1 + rng.uniform(-0.4, 0.4, 3000))  # early training falls fast
    values = [*falling, *noisy(rng, 0.09, 5000)]
    assert all(guard.update(i, {"ae1/magnitude": v}) is None for i, v in enumerate(values))


def test_a_tenfold_jump_like_a_collapsed_critic_is_caught_within_a_window():
    rng = np.random.default_rng(1)
    guard = DivergenceGuard(["ae1/magnitude"], window=25)
    for i, v in enumerate(noisy(rng, 0.085, 2000)):
        assert guard.update(i, {"ae1/magnitude": v}) is None
    caught = None
    for i, v in enumerate([0.17, 0.65, 1.02, *noisy(rng, 0.9, 40)], start=2000):
        caught = caught or guard.update(i, {"ae1/magnitude": v})
    assert caught is not None and caught.term == "ae1/magnitude" and caught.step <= 2025
    assert caught.before == pytest.approx(0.085, rel=0.1) and "ae1/magnitude rose to" in str(caught)


def test_a_burst_of_bad_batches_is_not_a_divergence():
    """A few near-silent crops can send the spectral-convergence loss 10x up for a step or two; the run goes on."""
    rng = np.random.default_rng(3)
    guard = DivergenceGuard(["ae1/stft"])
    values = [*noisy(rng, 2.0, 1000), 22.0, 35.0, 18.0, 2.1, 30.0, *noisy(rng, 2.0, 200)]
    assert all(guard.update(i, {"ae1/stft": v}) is None for i, v in enumerate(values))


def test_a_term_that_starts_later_builds_its_own_history_first():
    guard = DivergenceGuard(["ae1/magnitude", "ae2/frames"], warmup=200)
    for i in range(1000):
        values = {"ae1/magnitude": 0.09}
        if i >= 900:  # level 2 starts high and falls: not a divergence
            values["ae2/frames"] = 2.0 if i < 950 else 0.5
        assert guard.update(i, values) is None


def test_the_guard_refuses_settings_that_cannot_work():
    with pytest.raises(ValueError, match="factor > 1"):
        DivergenceGuard(["x"], factor=1.0)


def test_a_diverged_stage_stops_and_puts_the_checkpoint_back_before_the_blow_up(tmp_path):
    from training.checkpoint import CHECKPOINT_NAME, load_checkpoint
    from training.distributed import setup
    from training.errors import TrainingDiverged
    from training.loop_utils import Schedule, StageRun

    info, device = setup("cpu")
    net = torch.nn.Linear(2, 2)
    run = StageRun("ae", tmp_path, info, device, seed=0, guard=DivergenceGuard(["ae1/magnitude"]))
    rng = np.random.default_rng(2)
    healthy = noisy(rng, 0.085, 700)

    def step(n: int) -> dict[str, float]:
        with torch.no_grad():
            net.weight.fill_(float(n))  # the weights say which step wrote them
        return {"ae1/magnitude": healthy[n] if n < 700 else 1.0}

    def state(at: int, _metrics) -> dict:
        return {"networks": {"net": net.state_dict()}, "step": at}

    plan = Schedule(total=2000, checkpoint_every=100, preview_every=0, log_every=10, tensorboard=False,
                    progress=False)
    with pytest.raises(TrainingDiverged, match=r"ae1/magnitude rose.*--resume and a lower --lr") as err:
        run.run(plan, step, {"net": net}, state)
    assert "back at step 600" in str(err.value)
    stored = load_checkpoint(tmp_path / CHECKPOINT_NAME)
    assert stored["step"] == 600 and float(stored["networks"]["net"]["weight"][0, 0]) == 599.0
    assert run.step < 800  # stopped within a window of the blow-up, not after thousands of wasted steps
    # resumed exactly, it would draw the batches that set it off again: a resume after a divergence draws others
    again, replay = StageRun("ae", tmp_path, info, device, seed=0), StageRun("ae", tmp_path, info, device, seed=0)
    again.resume(stored)
    replay.resume({**stored, "reseed": 0})
    assert stored["reseed"] == 1 and again.np_rng.random() != replay.np_rng.random()
