"""Data parallelism: one training script on N processes, each on a share of every batch.

Launch a script with ``torchrun --nproc_per_node=N train.py``. Each process calls `init`,
builds the same model and the same global batches, and calls `nlpbook.fit` as usual:
`fit` sees the process group, wraps the model in ``DistributedDataParallel``, gives each
process its rows of every batch (`shard`) and averages the gradients, so N processes take
the same steps as one process on the whole batch. Run without torchrun, `init` does
nothing and everything below describes a world of one process.

>>> rank, world_size = init()    # (0, 1) outside torchrun
>>> shard(torch.arange(6), rank=1, world_size=3).tolist()
[2, 3]
"""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.distributed as dist

Batch = Any  # a tensor, a tuple/list of tensors, or a dict of tensors


def init(*, backend: str | None = None) -> tuple[int, int]:
    """Join the process group that torchrun describes; return ``(rank, world_size)``.

    torchrun sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and
    ``MASTER_PORT`` for each process. `backend` defaults to NCCL when CUDA is available
    (each process then uses GPU ``LOCAL_RANK``) and to gloo on the CPU. Without those
    variables, or with a world of one, this is a no-op returning ``(0, 1)``.
    """
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return 0, 1
    if not dist.is_available():
        raise RuntimeError("this PyTorch build has no torch.distributed; run one process")
    backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend)
    return dist.get_rank(), dist.get_world_size()


def finish() -> None:
    """Leave the process group (at the end of a script); a no-op when there is none."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def world_size() -> int:
    """How many processes train together (1 without a process group)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    """This process's number, from 0 to ``world_size() - 1``."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def is_main() -> bool:
    """Whether this is process 0: the one that prints, shows progress and saves files."""
    return rank() == 0


def shard(batch: Batch, *, rank: int | None = None, world_size: int | None = None) -> Batch:
    """This process's rows of a global batch: the `rank`-th of `world_size` equal slices.

    Every tensor in `batch` (a tensor, or one inside a tuple, list or dict) is sliced along
    its first dimension, which must divide evenly, so that the mean loss over the shards
    equals the mean loss over the whole batch. Other values are kept as they are.
    """
    r = _rank() if rank is None else rank
    n = _world_size() if world_size is None else world_size
    if not 0 <= r < n:
        raise ValueError(f"rank must be in [0, {n}), got {r}")
    if n == 1:
        return batch
    if isinstance(batch, torch.Tensor):
        if batch.dim() == 0 or batch.size(0) % n != 0:
            raise ValueError(
                f"a batch of {tuple(batch.shape)} cannot be split evenly over {n} processes; "
                f"expected a first dimension that is a multiple of {n}"
            )
        size = batch.size(0) // n
        return batch[r * size : (r + 1) * size]
    if isinstance(batch, (tuple, list)):
        return type(batch)(shard(b, rank=r, world_size=n) for b in batch)
    if isinstance(batch, dict):
        return {k: shard(v, rank=r, world_size=n) for k, v in batch.items()}
    return batch


def mean_over_processes(value: torch.Tensor) -> torch.Tensor:
    """The average of a tensor over all processes (itself in a world of one)."""
    if world_size() == 1:
        return value
    value = value.detach().clone()
    dist.all_reduce(value, op=dist.ReduceOp.SUM)
    return value / world_size()


_rank, _world_size = rank, world_size  # `shard`'s keyword arguments hide the functions
