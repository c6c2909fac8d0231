"""Multi-process data-parallel training under torchrun; everything is a no-op in a single process.

Gradients are averaged across ranks with one all-reduce per network after each backward pass (the
data-parallel scheme of DistributedDataParallel, done explicitly as StyleGAN2-ADA does, because the R1
penalty's double backward and the simultaneous critic/generator update do not fit the DDP wrapper's
hooks). Parameters start equal (rank 0 broadcasts them).

Every rank seeds alike and draws the whole global batch's random numbers (crop choices, coordinates,
noise), then keeps its own block of rows: N ranks at batch B train what one process at batch N B trains,
up to float rounding in the mean. Their random states stay equal, so a checkpoint holds one. Only rank 0
writes checkpoints, logs and previews.

Launch: ``torchrun --nproc_per_node N --no-python -- musika train gan --run RUN ...`` (the ``--`` stops
torchrun from reading ``--run`` as its own ``--run-path``; the env vars RANK, WORLD_SIZE, LOCAL_RANK and
MASTER_ADDR/PORT come from torchrun). Every process reads the data and, on resume, the checkpoint itself:
on several machines both must be at the same path on each. Backend: nccl on CUDA, gloo otherwise. A process
group that the caller initialised already is used as it is and left open at the end.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from training.errors import TrainingError

logger = logging.getLogger(__name__)

Rows = TypeVar("Rows", np.ndarray, torch.Tensor)


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owns_group: bool = False  # setup() started the process group, so cleanup() ends it

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """"auto" -> cuda (this rank's GPU), mps, else cpu; an unavailable explicit device is refused."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank)
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise TrainingError(f"--device {name}: CUDA is not available on this machine; use cpu, mps or auto")
    if name == "mps" and not torch.backends.mps.is_available():
        raise TrainingError("--device mps: Metal (MPS) is not available on this machine; use cpu, cuda or auto")
    if name not in ("cpu", "mps") and not name.startswith("cuda"):
        raise TrainingError(f"--device {name!r} is not a device; use auto, cpu, cuda, cuda:N or mps")
    if name == "cuda":
        return torch.device("cuda", local_rank)
    return torch.device(name)


def setup(device_name: str = "auto") -> tuple[DistInfo, torch.device]:
    """Join the process group (an initialised one, else torchrun's when WORLD_SIZE > 1); returns this rank's
    info and device."""
    joined = dist.is_available() and dist.is_initialized()
    world = dist.get_world_size() if joined else int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo(), resolve_device(device_name)
    rank = dist.get_rank() if joined else int(os.environ["RANK"])
    local = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_name, local)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not joined:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    logger.info("rank %d of %d on %s", rank, world, device)
    return DistInfo(rank, world, local, owns_group=not joined), device


def cleanup(info: DistInfo) -> None:
    if info.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def global_batch(info: DistInfo, batch: int) -> int:
    """Items per step over all ranks (`batch` is per rank)."""
    return batch * info.world_size


def row_slice(info: DistInfo, rows: int) -> slice:
    """This rank's equal share of `rows` (a global batch drawn alike on every rank): rank r of N keeps the
    r-th of N consecutive blocks."""
    n = rows // info.world_size
    if n * info.world_size != rows:
        raise ValueError(f"{rows} rows do not split into {info.world_size} equal shares")
    return slice(info.rank * n, (info.rank + 1) * n)


def my_rows(info: DistInfo, x: Rows) -> Rows:
    """This rank's rows of `x` (first axis; see :func:`row_slice`)."""
    return x[row_slice(info, x.shape[0])] if info.active else x


def randn_rows(info: DistInfo, rows: int, cols: int, like: torch.Tensor) -> torch.Tensor:
    """Standard-normal noise (rows, cols) on `like`'s device: this rank's rows of one (world rows, cols) draw,
    so the torch random state advances alike on every rank."""
    full = torch.randn(rows * info.world_size, cols, device=like.device, dtype=like.dtype)
    return my_rows(info, full)


def broadcast_modules(info: DistInfo, modules: Iterable[nn.Module]) -> None:
    """Copy rank 0's parameters and buffers to every rank."""
    if not info.active:
        return
    for m in modules:
        for t in [*m.parameters(), *m.buffers()]:
            dist.broadcast(t.data, src=0)


def average_gradients(info: DistInfo, modules: Iterable[nn.Module]) -> None:
    """All-reduce (mean) the .grad of every parameter that has one, one flat buffer per call."""
    if not info.active:
        return
    grads = [p.grad for m in modules for p in m.parameters() if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= info.world_size
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()


def average_scalar(info: DistInfo, value: torch.Tensor) -> torch.Tensor:
    """Mean of a scalar tensor over ranks (for logging and the adaptive R1 weight)."""
    if not info.active:
        return value
    out = value.detach().clone()
    dist.all_reduce(out)
    return out / info.world_size


def any_flag(info: DistInfo, flag: bool, device: torch.device | None = None) -> bool:
    """True when `flag` is set on any rank (stop requests)."""
    if not info.active:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t)
    return bool(t.item() > 0)


def spread(info: DistInfo, value: int, device: torch.device | None = None) -> tuple[int, int]:
    """(smallest, largest) of an integer over the ranks (to check they agree, e.g. on the step)."""
    if not info.active:
        return value, value
    lo = torch.tensor([value], dtype=torch.int64, device=device)
    hi = lo.clone()
    dist.all_reduce(lo, op=dist.ReduceOp.MIN)
    dist.all_reduce(hi, op=dist.ReduceOp.MAX)
    return int(lo.item()), int(hi.item())


def barrier(info: DistInfo) -> None:
    if info.active:
        dist.barrier()
