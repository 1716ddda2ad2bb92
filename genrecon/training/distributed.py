"""Multi-process data parallel training under ``torchrun`` (the command-line entry is :mod:`.launch`).

Each process reads ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` from the environment (``torchrun`` sets
them), joins a process group (gloo on CPU, nccl on CUDA) and trains on its own disjoint slice of every
global batch. Gradients are averaged with one flattened all-reduce per step (``g <- mean_r g_r``) before
the optimiser step, so all ranks keep identical weights; rank 0 alone writes checkpoints and exports.

Run::

    torchrun --standalone --nproc_per_node=2 -m genrecon.training --config configs/train_prior_tiny.yaml
    python -m genrecon.training --config configs/train_prior_tiny.yaml --set train.steps=50   # one process
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Iterable

import torch
import torch.distributed as tdist

from ..errors import ConfigError


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``auto`` -> CUDA if available else CPU; under several processes ``cuda`` means ``cuda:LOCAL_RANK``."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device: {name} requested but no CUDA GPU is available: use device: auto or cpu")
    if name == "cuda":
        return torch.device("cuda", local_rank)
    return torch.device(name)


@dataclass
class DistContext:
    """This process's place in the job; all methods are no-ops for a single process."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    owns_group: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1

    def all_reduce_grads(self, params: Iterable[torch.nn.Parameter]) -> None:
        """Average gradients over ranks: ``g <- (1/W) sum_r g_r`` (one flattened all-reduce)."""
        if not self.active:
            return
        grads = [p.grad for p in params if p.grad is not None]
        if not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])
        tdist.all_reduce(flat, op=tdist.ReduceOp.SUM)
        flat /= self.world_size
        offset = 0
        for g in grads:
            g.copy_(flat[offset : offset + g.numel()].view_as(g))
            offset += g.numel()

    def mean(self, value: float) -> float:
        """Mean of a scalar over ranks."""
        if not self.active:
            return float(value)
        t = torch.tensor([float(value)], dtype=torch.float64, device=self.device)
        tdist.all_reduce(t, op=tdist.ReduceOp.SUM)
        return float(t.item()) / self.world_size

    def max(self, value: int) -> int:
        """Largest ``value`` over ranks (e.g. a stop code, so all ranks stop together and agree why)."""
        if not self.active:
            return int(value)
        t = torch.tensor([int(value)], dtype=torch.int64, device=self.device)
        tdist.all_reduce(t, op=tdist.ReduceOp.MAX)
        return int(t.item())

    def gather(self, tensor: torch.Tensor) -> list[torch.Tensor]:
        """Every rank's copy of a same-shaped tensor, in rank order, on the CPU."""
        if not self.active:
            return [tensor.detach().cpu().clone()]
        t = tensor.detach().to(self.device, torch.int64 if tensor.dtype == torch.uint8 else tensor.dtype)
        out = [torch.empty_like(t) for _ in range(self.world_size)]
        tdist.all_gather(out, t)
        return [o.cpu().to(tensor.dtype) for o in out]

    def barrier(self) -> None:
        if self.active:
            tdist.barrier()

    def close(self) -> None:
        """Leave the process group if this context created it."""
        if self.owns_group and tdist.is_initialized():
            tdist.destroy_process_group()
            self.owns_group = False


def setup_distributed(device: str) -> DistContext:
    """Join the ``torchrun`` process group if ``WORLD_SIZE > 1``; pick this process's device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device, local_rank)
    if world <= 1:
        return DistContext(device=dev)
    owns = False
    if not tdist.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        tdist.init_process_group(backend=backend, init_method="env://")
        owns = True
    return DistContext(rank=rank, world_size=world, local_rank=local_rank, device=dev, owns_group=owns)
