"""torchrun integration: process group from the environment, sums across ranks, rank 0 writes.

Every collective runs on the device of the process group's backend: `cuda:LOCAL_RANK` under NCCL
(which rejects CPU tensors), the CPU under gloo. On CUDA the group is "cpu:gloo,cuda:nccl", so
object collectives (sampler and RNG states) and barriers still have a CPU backend."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch
import torch.distributed as dist

CUDA_BACKEND = "cpu:gloo,cuda:nccl"


@dataclass
class Dist:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @classmethod
    def from_env(cls, use_cuda: bool) -> Dist:
        """Join the process group torchrun describes (WORLD_SIZE, RANK, LOCAL_RANK), if any."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world == 1:
            return cls()
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        device = torch.device("cuda", local_rank) if use_cuda else torch.device("cpu")
        if use_cuda:
            torch.cuda.set_device(device)  # before NCCL starts, so that no rank opens a context on cuda:0
        if not dist.is_initialized():
            dist.init_process_group(CUDA_BACKEND if use_cuda else "gloo")
        return cls(dist.get_rank(), dist.get_world_size(), local_rank, device)

    def sum(self, values: list[float]) -> list[float]:
        """Element-wise sum over ranks (float64, on the backend's device), back as Python floats."""
        if not self.enabled:
            return values
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return t.tolist()

    def average_gradients(self, params: list[torch.nn.Parameter]) -> None:
        """Mean of the gradients over ranks, in one all-reduce (missing gradients count as zero);
        each gradient ends on its parameter's device."""
        if not self.enabled:
            return
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        flat = torch.cat([g.reshape(-1).to(self.device) for g in grads])
        dist.all_reduce(flat)
        flat /= self.world_size
        offset = 0
        for p, g in zip(params, grads, strict=True):
            p.grad = flat[offset : offset + g.numel()].view_as(p).to(p.device, p.dtype, copy=True)
            offset += g.numel()

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def close(self) -> None:
        """Leave the group together. The barrier lets every rank's last collective finish first: a
        rank that raced ahead (its peer still writing the checkpoint) could otherwise exit while a
        gloo worker thread still held that collective's tensors, and abort in interpreter shutdown
        ("terminate called without an active exception")."""
        if self.enabled and dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()
