"""Multi-process training with torchrun: process group, sharding, and the shared beta state.

``torchrun --nproc_per_node=K -m redcore_lite train ...`` starts K processes; each holds the
same model (DistributedDataParallel averages gradients), takes every K-th sample of each global
batch, and all-reduces the per-modality reconstruction sums and counts before the relative-
advantage step, so every rank computes the same beta. Only rank 0 writes files.
"""
from __future__ import annotations

import os

import torch
import torch.distributed as dist

__all__ = ["init_from_env", "world", "rank", "is_main", "shard", "global_rec", "local_device",
           "shutdown"]


def init_from_env(backend: str | None = None) -> bool:
    """Join the process group torchrun describes (``WORLD_SIZE`` > 1); True if distributed.

    The backend is NCCL when CUDA is available, else gloo (CPU).
    """
    if dist.is_available() and dist.is_initialized():
        return True
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend)
    return True


def world() -> int:
    """Number of processes (1 when not distributed)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    """This process's rank (0 when not distributed)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def is_main() -> bool:
    """True on the process that writes files."""
    return rank() == 0


def local_device(device: torch.device) -> torch.device:
    """Under torchrun a CUDA device becomes ``cuda:LOCAL_RANK``."""
    if device.type == "cuda" and world() > 1:
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


def shard(batch: torch.Tensor) -> torch.Tensor:
    """This rank's part of a global batch of indices: every world()-th row from rank()."""
    return batch[rank()::world()] if world() > 1 else batch


def global_rec(rec: torch.Tensor, avail: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Reconstruction loss over the global batch: all-reduce of per-modality sums and counts.

    Args:
        rec: ``[M]`` this rank's mean over its present rows; avail: ``[B_local, M]``.
    Returns:
        ``rec [M]`` over all ranks' present rows and ``observed [M]`` bool.
    """
    n = avail.to(rec.dtype).sum(0)
    stats = torch.stack([rec.detach() * n, n])
    dist.all_reduce(stats)
    return stats[0] / stats[1].clamp(min=1.0), stats[1] > 0


def shutdown() -> None:
    """Leave the process group, if joined."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
