"""Parameter and MAC counts, measured rather than derived by hand.

MACs come from `torch.utils.flop_counter.FlopCounterMode` (MACs = FLOPs / 2) over one
forward pass, so they include attention matmuls and pooling. Big models are built on the
`meta` device: no weights are allocated and the pass costs no arithmetic, so the 6B
teacher is counted in seconds on a laptop.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count


def _cpu_sdpa_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    return sdpa_flop_count(query_shape, key_shape, value_shape)


# PyTorch's table covers the CUDA attention kernels but not the CPU one; without this entry
# attention matmuls (about half the MACs of a 2049-token clip) would be counted as zero.
_EXTRA_FORMULAS = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _cpu_sdpa_flops}


def count_params(model: nn.Module) -> int:
    """Number of parameters (buffers excluded)."""
    return sum(p.numel() for p in model.parameters())


def _device_of(model: nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def count_macs(model: nn.Module, clip_shape: Sequence[int]) -> int:
    """Multiply-accumulates of one forward pass on a clip (C, T, H, W) or (B, C, T, H, W)."""
    shape = tuple(clip_shape)
    if len(shape) == 4:
        shape = (1, *shape)
    x = torch.zeros(shape, device=_device_of(model))
    was_training = model.training
    model.eval()
    try:
        with (
            torch.no_grad(),
            FlopCounterMode(display=False, custom_mapping=_EXTRA_FORMULAS) as counter,
        ):
            model(x)
    finally:
        model.train(was_training)
    return counter.get_total_flops() // 2


def build_on_meta(name: str, **overrides: Any) -> nn.Module:
    """Build a registry model with shapes only (no memory); falls back to CPU if that fails."""
    from .registry import create_model

    try:
        with torch.device("meta"):
            return create_model(name, **overrides)
    except (NotImplementedError, RuntimeError):  # an op without a meta kernel during init
        return create_model(name, **overrides)


def profile_model(name: str, clip_shape: Sequence[int] | None = None, **overrides: Any) -> dict:
    """{'name', 'params', 'macs', 'clip_shape'} for a registry model at its default clip."""
    model = build_on_meta(name, **overrides)
    shape = tuple(clip_shape) if clip_shape is not None else tuple(model.default_clip_shape)
    try:
        macs = count_macs(model, shape)
    except (NotImplementedError, RuntimeError):  # a kernel missing on meta: count on CPU
        model = model.to_empty(device="cpu") if _device_of(model).type == "meta" else model
        macs = count_macs(model, shape)
    return {"name": name, "params": count_params(model), "macs": macs, "clip_shape": list(shape)}
