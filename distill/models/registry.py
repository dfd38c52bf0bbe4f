"""Model registry: every network the toolkit trains or exports is built by name.

Names follow DESIGN.md: the InternVideo2 family (`internvideo2_1b`, `internvideo2_6b`,
`internvideo2_cpu`) and its homologous students (`vit_tiny`, `vit_s`, `vit_b`, `vit_l`),
`vit_s_dinov2` (the same encoder switched to DINOv2's block: the model that
`vqa-distill import dinov2-s` fills), plus any timm backbone as a heterogeneous student
(`timm:<timm name>`). `model_config`
returns a JSON-serialisable dict that `create_from_config` turns back into the same
architecture; checkpoints store it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields, replace
from typing import Any

import torch.nn as nn

from internvqa.runtime.errors import UsageError

from .internvideo2 import InternVideo2, InternVideo2Config

TIMM_PREFIX = "timm:"
# Heterogeneous students shown by `vqa-distill models` and covered by the tests.
TIMM_EXAMPLES = (
    "timm:convnext_tiny",
    "timm:vit_small_patch16_224",
    "timm:mobilenetv3_large_100",
    "timm:resnet18",
)

_INTERNVIDEO2_CONFIGS: dict[str, InternVideo2Config] = {
    "internvideo2_1b": InternVideo2Config(
        embed_dim=1408, depth=40, num_heads=16, mlp_hidden_dim=6144
    ),
    "internvideo2_6b": InternVideo2Config(
        embed_dim=3200, depth=48, num_heads=25, mlp_hidden_dim=12800
    ),
    # A small teacher for CPU demos: fast enough to fine-tune on minutes of video.
    "internvideo2_cpu": InternVideo2Config(
        embed_dim=384, depth=8, num_heads=6, mlp_hidden_dim=1536, img_size=112, num_frames=4
    ),
    "vit_s": InternVideo2Config(embed_dim=384, depth=12, num_heads=6, mlp_hidden_dim=1536),
    "vit_b": InternVideo2Config(embed_dim=768, depth=12, num_heads=12, mlp_hidden_dim=3072),
    "vit_l": InternVideo2Config(embed_dim=1024, depth=24, num_heads=16, mlp_hidden_dim=4096),
    # DINOv2 ViT-S/14 as a video encoder (REFERENCE section 8): LayerNorm blocks with qkv
    # bias, no q/k norm, a final norm, LayerScale. Separate embeds, because the import
    # has a spatial table (DINOv2's, resized to the grid) and a new temporal one (zeros).
    # 2 CPU threads (shared machine): ~1.0 s per 4x224x224 clip forward, ~25 s per
    # training step at batch 8 with gradient checkpointing.
    "vit_s_dinov2": InternVideo2Config(
        embed_dim=384, depth=12, num_heads=6, mlp_hidden_dim=1536, norm_layer="layernorm",
        qkv_bias=True, qk_norm=False, final_norm=True, sep_pos_embed=True,
    ),
    # For tests: a few milliseconds per clip.
    "vit_tiny": InternVideo2Config(
        embed_dim=192, depth=4, num_heads=3, mlp_hidden_dim=768, img_size=56, num_frames=2
    ),
}

_BUILDERS: dict[str, Callable[..., nn.Module]] = {}


def register_model(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator: make `fn(**overrides) -> nn.Module` buildable as `create_model(name)`."""

    def deco(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        _BUILDERS[name] = fn
        return fn

    return deco


def _internvideo2_builder(name: str) -> Callable[..., nn.Module]:
    def build(**overrides: Any) -> nn.Module:
        known = {f.name for f in fields(InternVideo2Config)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise UsageError(f"{name}: unknown option(s) {unknown}; known: {sorted(known)}")
        try:
            cfg = replace(_INTERNVIDEO2_CONFIGS[name], **overrides)
        except ValueError as exc:
            raise UsageError(f"{name}: {exc}") from None
        if cfg.img_size % cfg.patch_size or cfg.num_frames % cfg.tubelet_size:
            raise UsageError(
                f"{name}: img_size {cfg.img_size} / num_frames {cfg.num_frames} must be multiples "
                f"of patch {cfg.patch_size} / tubelet {cfg.tubelet_size}"
            )
        return InternVideo2(cfg, model_name=name)

    build.__name__ = name
    return build


for _name in _INTERNVIDEO2_CONFIGS:
    register_model(_name)(_internvideo2_builder(_name))


def list_models() -> list[str]:
    """Registered names (timm students are open-ended: any `timm:<name>` works)."""
    return sorted(_BUILDERS)


def create_model(name: str, **overrides: Any) -> nn.Module:
    """Build a model by name; `overrides` replace config fields (img_size, num_frames...)."""
    if name.startswith(TIMM_PREFIX):
        from .timm_student import create_timm_student

        return create_timm_student(name[len(TIMM_PREFIX) :], **overrides)
    if name not in _BUILDERS:
        raise UsageError(
            f"unknown model {name!r}; known: {', '.join(list_models())} or timm:<name>"
        )
    return _BUILDERS[name](**overrides)


def model_config(model: nn.Module) -> dict:
    """JSON-serialisable description that `create_from_config` rebuilds the model from."""
    if not hasattr(model, "model_config"):
        raise UsageError(f"{type(model).__name__} was not built by the registry")
    return model.model_config()


def create_from_config(config: dict) -> nn.Module:
    """Inverse of `model_config`."""
    return create_model(config["architecture"], **config.get("config", {}))
