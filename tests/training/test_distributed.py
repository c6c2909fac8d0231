"""Data-parallel training in real processes: two gloo ranks on 127.0.0.1 at batch B train the autoencoder and
the GAN to the weights one process reaches at batch 2 B, only rank 0 writes files, and a two-rank run stopped
part-way (the autoencoder killed with SIGKILL, the GAN sent SIGTERM on one rank) resumes to the uninterrupted
run's weights."""

from __future__ import annotations

import dataclasses
import faulthandler
import multiprocessing as mp
import os
import signal
import socket
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.training.tiny_dataset import make_tiny_dataset, tiny_model
from training.checkpoint import load_checkpoint
from training.encode import encode_dataset
from training.errors import TrainingInterrupted
from training.loop_ae import run_autoencoder
from training.loop_gan import run_gan
from training.run_configs import AeTrainConfig, GanTrainConfig

BATCH = 2  # per rank; the single process runs at 2 * BATCH
AE_STEPS = dict(steps_level1=3, steps_level2=2, adversarial_from=1)  # both levels, the critic from step 2
GAN_STEPS = 5
STOP_AT, CHECKPOINT_AT = 3, 2  # the AE is killed after step 3 (checkpoint: step 2), the GAN stops at step 4
# Adam moves a weight by about lr per step, so differences are measured in lr. Two ranks at B against one
# process at 2 B: the same sums in another order. Float32 rounding through 5 steps moves most weights by under
# 1 % of lr, but Adam divides each gradient by its own scale, so a weight whose gradient is a near-cancelling sum
# can move by up to 2 lr either way: one process on 1 thread against 2 threads (the same data, another summing
# order) differs by 2.0 lr at most, yet only 3-4 % of the weights by more than 0.05 lr (median 0.004-0.009 lr).
# A run that sees other data (one process at B) moves half of them that far (median 0.25-0.38 lr).
APART = 0.05  # of lr: two weights this far apart moved differently
EQUAL_WEIGHTS = 0.10  # at most this fraction of the weights apart: the same training
OTHER_DATA = 0.30  # at least this fraction apart: other training
RUNNERS = {"ae": run_autoencoder, "gan": run_gan}

pytestmark = pytest.mark.slow


@dataclasses.dataclass(frozen=True)
class Job:
    stage: str  # "ae" or "gan"
    cfg: Any  # AeTrainConfig or GanTrainConfig
    resume: bool = False
    signal_after: int = 0  # send `signum` to this process right after that step (0: never)
    signum: int = signal.SIGKILL
    signal_rank: int | None = None  # only this rank gets it (None: both)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _watch_writes(watched: Path, report: Path) -> None:
    """Append every file write, creation, rename or removal under `watched` by this process to `report`."""
    fd = os.open(report, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    root = str(watched)
    writing = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC

    def hook(event: str, args: tuple) -> None:
        if event == "open":
            path, mode, flags = args
            if not (isinstance(mode, str) and set(mode) & set("wax+")) and not (flags or 0) & writing:
                return
            paths = [path]
        elif event in ("os.mkdir", "os.rename", "os.remove", "os.rmdir", "os.truncate", "os.symlink", "os.link"):
            paths = [args[0], args[1]] if event in ("os.rename", "os.symlink", "os.link") else [args[0]]
        else:
            return
        for p in paths:
            if isinstance(p, (str, bytes, os.PathLike)) and os.fsdecode(p).startswith(root):
                os.write(fd, f"{event} {os.fsdecode(p)}\n".encode())

    sys.addaudithook(hook)


def _rank_main(rank: int, port: int, jobs: list[Job], watched: Path, reports: Path, from_env: bool) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE="2",
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    faulthandler.dump_traceback_later(100)  # a hung collective shows where
    _watch_writes(watched, reports / f"rank{rank}.txt")
    if not from_env:  # else training.distributed.setup joins from the environment, as under torchrun
        torch.distributed.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    for job in jobs:
        steps: list[int] = []

        def stop(step: int, _values: Mapping[str, float], job: Job = job, steps: list[int] = steps) -> None:
            steps.append(step)
            if step == job.signal_after and job.signal_rank in (None, rank):
                os.kill(os.getpid(), job.signum)

        name = Path(job.cfg.run_dir).name
        try:
            RUNNERS[job.stage](job.cfg, resume=job.resume, on_step=stop)
            ended = "done"
        except TrainingInterrupted as exc:  # SIGTERM: every rank stops at the same step, a checkpoint written
            ended = str(exc).split(";")[0]
        with open(reports / f"rank{rank}-jobs.txt", "a") as fh:
            fh.write(f"{name} steps {steps}: {ended}\n")
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def two_ranks(jobs: list[Job], watched: Path, reports: Path, from_env: bool = False) -> list[int | str]:
    """Run `jobs` in order on two spawned ranks; returns their exit codes (-9: killed as planned; "hung":
    still running after 120 s, then killed)."""
    ctx = mp.get_context("spawn")
    port = free_port()
    procs = [ctx.Process(target=_rank_main, args=(r, port, jobs, watched, reports, from_env)) for r in range(2)]
    for p in procs:
        p.start()
    deadline = time.monotonic() + 120
    for p in procs:
        p.join(timeout=max(0.0, deadline - time.monotonic()))
    hung = [p.is_alive() for p in procs]
    for p in procs:
        if p.is_alive():  # a hung collective: end our own children and fail
            p.kill()
            p.join()
    return ["hung" if h else p.exitcode for p, h in zip(procs, hung, strict=True)]


def weights(path: Path) -> dict[str, torch.Tensor]:
    state = load_checkpoint(path)
    return {f"{net}.{k}": v for net, params in state["networks"].items() for k, v in params.items()}


def max_difference(a: Path, b: Path) -> tuple[float, str]:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    return max(((wa[k] - wb[k]).abs().max().item(), k) for k in wa)


def fraction_apart(a: Path, b: Path, lr: float) -> float:
    """The fraction of all weights that are more than APART lr apart in two checkpoints."""
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    apart = sum(int(((wa[k] - wb[k]).abs() > APART * lr).sum()) for k in wa)
    return apart / sum(v.numel() for v in wa.values())


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Any]:
    """Single-process runs at 2 B (and at B, the control), then two launches of two ranks at B: the GAN
    straight, stopped by SIGTERM to rank 1 and resumed, the AE straight and killed; then the AE resumed."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("ddp")
    data = make_tiny_dataset(root / "data")
    runs_dir, reports = root / "runs", root / "reports"
    reports.mkdir()

    def ae(name: str, batch: int = BATCH, **kw: Any) -> AeTrainConfig:
        base = dict(lr=1e-3, device="cpu", checkpoint_every=1000, preview_every=0, log_every=1, tensorboard=False,
                    progress=False, threads=1, **AE_STEPS)
        return AeTrainConfig(dataset=str(data), run_dir=str(runs_dir / name), model=tiny_model(), batch=batch,
                             **{**base, **kw})

    run_autoencoder(ae("ae_single", 2 * BATCH))
    run_autoencoder(ae("ae_control", BATCH))
    ae_ckpt = runs_dir / "ae_single" / "ae" / "checkpoint.pt"
    latents = root / "latents"
    encode_dataset(data, ae_ckpt, latents, progress=False)

    def gan(name: str, batch: int = BATCH, **kw: Any) -> GanTrainConfig:
        base = dict(lr=2e-4, steps=GAN_STEPS, device="cpu", checkpoint_every=1000, preview_every=0, log_every=1,
                    tensorboard=False, progress=False, threads=1)
        return GanTrainConfig(latents=str(latents), run_dir=str(runs_dir / name), gan=tiny_model().gan,
                              conditions=("tempo", "density"), batch=batch, **{**base, **kw})

    run_gan(gan("gan_single", 2 * BATCH))
    run_gan(gan("gan_control", BATCH))
    every = dict(checkpoint_every=CHECKPOINT_AT)
    exits = [
        two_ranks([Job("gan", gan("gan_ranks")),
                   Job("gan", gan("gan_stopped", **every), signal_after=STOP_AT, signum=signal.SIGTERM,
                       signal_rank=1),
                   Job("gan", gan("gan_stopped", **every), resume=True),
                   Job("ae", ae("ae_ranks")),
                   Job("ae", ae("ae_killed", **every), signal_after=STOP_AT)], runs_dir, reports),
        two_ranks([Job("ae", ae("ae_killed", **every), resume=True)], runs_dir, reports, from_env=True),
    ]
    return {"runs": runs_dir, "reports": reports, "exits": exits}


def checkpoint(runs: Mapping[str, Any], name: str) -> Path:
    stage = name.split("_")[0]
    return runs["runs"] / name / stage / "checkpoint.pt"


def test_the_ranks_ran_and_stopped_where_planned(runs):
    assert runs["exits"] == [[-signal.SIGKILL] * 2, [0, 0]]
    jobs = [(runs["reports"] / f"rank{r}-jobs.txt").read_text().splitlines() for r in range(2)]
    assert jobs[0] == ["gan_ranks steps [1, 2, 3, 4, 5]: done",
                       "gan_stopped steps [1, 2, 3, 4]: stopped by another rank at step 4",
                       "gan_stopped steps [5]: done",
                       "ae_ranks steps [1, 2, 3, 4, 5]: done",
                       "ae_killed steps [3, 4, 5]: done"]  # after SIGKILL at step 3, from the step-2 checkpoint
    assert jobs[1][1] == "gan_stopped steps [1, 2, 3, 4]: stopped by SIGTERM at step 4"
    assert jobs[1][:1] + jobs[1][2:] == jobs[0][:1] + jobs[0][2:]


@pytest.mark.parametrize("stage", ["ae", "gan"])
def test_two_ranks_at_batch_b_train_the_weights_of_one_process_at_2b(runs, stage):
    steps = sum(AE_STEPS[k] for k in ("steps_level1", "steps_level2")) if stage == "ae" else GAN_STEPS
    ranks = checkpoint(runs, f"{stage}_ranks")
    assert load_checkpoint(ranks)["step"] == steps and load_checkpoint(ranks)["world_size"] == 2
    lr = load_checkpoint(ranks)["config"]["lr"]
    same = fraction_apart(ranks, checkpoint(runs, f"{stage}_single"), lr)
    assert same <= EQUAL_WEIGHTS, f"{stage}: {same:.1%} of the weights of 2 ranks are over {APART} lr from 1 at 2B"
    other = fraction_apart(ranks, checkpoint(runs, f"{stage}_control"), lr)
    assert other >= OTHER_DATA, f"{stage}: one process at batch B matches too ({other:.1%} of the weights apart)"


def test_only_rank_0_writes_files(runs):
    rank0 = (runs["reports"] / "rank0.txt").read_text().splitlines()
    assert (runs["reports"] / "rank1.txt").read_text() == ""
    for name in ("ae_ranks", "gan_ranks", "ae_killed", "gan_stopped"):  # the watch sees rank 0's checkpoints
        assert any(f"os.rename {checkpoint(runs, name).parent}/.checkpoint.tmp-" in line for line in rank0), name


@pytest.mark.parametrize("stage", ["ae", "gan"])
def test_a_stopped_two_rank_run_resumes_to_the_uninterrupted_weights(runs, stage):
    resumed = checkpoint(runs, "ae_killed" if stage == "ae" else "gan_stopped")
    straight = checkpoint(runs, f"{stage}_ranks")
    assert load_checkpoint(resumed)["step"] == load_checkpoint(straight)["step"]
    diff, where = max_difference(resumed, straight)
    assert diff == 0.0, f"{stage}: the resumed run differs from the uninterrupted one by {diff:.3g} in {where}"
