"""Scale-out: the same training commands under `torchrun` become data-parallel.

`torchrun --nproc_per_node N vqa-distill ...` sets RANK/WORLD_SIZE/LOCAL_RANK; `setup()`
then joins the process group (NCCL on CUDA, gloo on CPU) and every rank trains on its
`DistributedSampler` shard. Without those variables everything is a single process and
no process group exists, so the plain path has no distributed code in it.

`--fsdp` (for the 1B/6B teachers, whose AdamW state does not fit one GPU with DDP) shards
parameters, gradients and optimizer state with FSDP2 `fully_shard`, one unit per
transformer block plus the root. It composes with `--grad-checkpointing` (activation
recomputation inside each block). On CPU it can only be exercised on a tiny model with
gloo; its memory benefit exists on GPUs only. Checkpoints are written from full
(gathered) state dicts, so they load without FSDP.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn as nn


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1


def setup(device: str = "auto") -> DistInfo:
    """Join the torchrun process group if there is one; pick this rank's device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() if device == "auto" else device.startswith("cuda")
    dev = torch.device(f"cuda:{local}" if use_cuda else "cpu")
    if use_cuda:
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return DistInfo(rank, world, local, dev)


def teardown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def gather_objects(obj):
    """Every rank's `obj`, in rank order (just `[obj]` without a process group)."""
    if not dist.is_initialized():
        return [obj]
    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj):
    """Rank 0's `obj` on every rank."""
    if not dist.is_initialized():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def all_reduce_mean(value: float) -> float:
    if not dist.is_initialized():
        return value
    t = torch.tensor([value], dtype=torch.float64)
    dist.all_reduce(t)
    return float(t) / dist.get_world_size()


def wrap(module: nn.Module, info: DistInfo, fsdp: bool = False) -> nn.Module:
    """DDP (or FSDP2 with `fsdp=True`) around `module`; unchanged in a single process."""
    if not info.enabled:
        return module
    if fsdp:
        return shard_fsdp(module)
    ids = [info.device.index] if info.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(module, device_ids=ids)


def shard_fsdp(module: nn.Module) -> nn.Module:
    """FSDP2: one shard unit per transformer block (`.blocks[i]` anywhere inside), then root."""
    from torch.distributed.fsdp import fully_shard

    for sub in module.modules():
        blocks = getattr(sub, "blocks", None)
        if isinstance(blocks, nn.ModuleList):
            for blk in blocks:
                fully_shard(blk)
    fully_shard(module)
    return module


def unwrap(module: nn.Module) -> nn.Module:
    return module.module if isinstance(module, nn.parallel.DistributedDataParallel) else module


def full_state_dict(module: nn.Module) -> dict[str, torch.Tensor]:
    """A plain CPU state dict, gathering FSDP shards (collective: call on every rank)."""
    module = unwrap(module)
    state = module.state_dict()
    out = {}
    for k, v in state.items():
        if hasattr(v, "full_tensor"):  # DTensor from FSDP2
            v = v.full_tensor()
        out[k] = v.detach().cpu()
    return out


def _sharded(module: nn.Module) -> bool:
    """True for an FSDP2-sharded module (its parameters are DTensors)."""
    return any(hasattr(p, "full_tensor") for p in module.parameters())


def plain_module(module: nn.Module, state: dict[str, torch.Tensor]) -> nn.Module:
    """`module` itself, or for an FSDP-sharded one an unsharded copy holding `state`."""
    module = unwrap(module)
    if not _sharded(module):
        return module
    from .models import create_from_config, model_config

    copy = create_from_config(model_config(module))
    copy.load_state_dict(state)
    return copy


def sub_state(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def load_full_state(module: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load a plain (full) state dict into a plain, DDP or FSDP-sharded module."""
    module = unwrap(module)
    if _sharded(module):
        from torch.distributed.checkpoint.state_dict import (
            StateDictOptions,
            set_model_state_dict,
        )

        set_model_state_dict(module, state, options=StateDictOptions(full_state_dict=True))
    else:
        module.load_state_dict(state)
