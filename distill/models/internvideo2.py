"""InternVideo2 vision encoder in plain PyTorch, state-dict compatible with official weights.

One module serves the teacher (1B / 6B), the homologous students (S/B/L at patch 14) and
small CPU configs. Parameter names and shapes equal the official fine-tune checkpoints
(REFERENCE section 2), so `checkpoint.load_official_weights` needs no renaming inside the
encoder. Attention uses `F.scaled_dot_product_attention` (no flash-attn): it runs on CPU,
on any GPU, and exports to ONNX.

The block is one piece of code with timm-style switches in the config, so other ViT
families are configs of the same model rather than second copies of it:

| switch | InternVideo2 (default) | DINOv2 (`vit_s_dinov2`) |
|---|---|---|
| `norm_layer` | "rmsnorm" (weight only) | "layernorm" (weight + bias), eps 1e-6 both |
| `qkv_bias` | False | True (`attn.qkv.bias`) |
| `qk_norm` | True: q and k normalised over the full width | False (no `q_norm`/`k_norm`) |
| `final_norm` | False | True (`norm` over the tokens, before pooling) |
| `init_values` | 1e-5 (LayerScale) | 1e-5 (LayerScale); None or 0 drops it, as in timm |

A switch that is off leaves no parameter behind, so every existing config keeps exactly
the official key set (tests/test_models.py pins it) and old checkpoints, whose
config.json predates the switches, rebuild with the registry's defaults.

The output contract shared by every model in the registry (`internvqa.distill.models`):
`forward(x: (B, 3, T, H, W)) -> (score (B,), feature (B, 768))`, where `feature` is
`fc_norm(attention_pool(tokens))`, the vector the distillation loss matches. Score first is
the order of the exported graph's outputs (`score`, `feature`) and of the runtime's
`Backend.run`, so no layer reorders them.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from internvqa.runtime.errors import CheckpointError

from .pos_embed import (
    Grid,
    infer_grid,
    resize_pos_embed,
    resize_spatial,
    resize_temporal,
    sincos_1d,
    sincos_2d,
    sincos_3d,
)


@dataclass
class InternVideo2Config:
    """Everything needed to rebuild an encoder (`create_model(name, **asdict(cfg))`)."""

    embed_dim: int = 1408
    depth: int = 40
    num_heads: int = 16
    mlp_hidden_dim: int = 6144
    img_size: int = 224
    patch_size: int = 14
    num_frames: int = 8
    tubelet_size: int = 1
    in_chans: int = 3
    attn_pool_num_heads: int = 16
    pooled_dim: int = 768
    num_outputs: int = 1
    drop_path_rate: float = 0.0
    head_drop_rate: float = 0.0
    init_values: float | None = 1e-5  # LayerScale init; None/0: no LayerScale (timm)
    head_init_scale: float = 0.001
    sep_pos_embed: bool = False
    norm_layer: str = "rmsnorm"  # "rmsnorm" (InternVideo2) or "layernorm" (DINOv2, timm ViT)
    qkv_bias: bool = False
    qk_norm: bool = True  # InternVideo2: RMS-normalise q and k over the full width
    final_norm: bool = False  # a norm over the output tokens (DINOv2's `norm`)

    def __post_init__(self) -> None:
        if self.norm_layer not in NORM_LAYERS:
            raise ValueError(
                f"norm_layer {self.norm_layer!r} is not one of {sorted(NORM_LAYERS)}")

    @property
    def grid(self) -> Grid:
        side = self.img_size // self.patch_size
        return (self.num_frames // self.tubelet_size, side, side)


class RMSNorm(nn.Module):
    """RMS normalisation over the last dim, computed in fp32 (official eps 1e-6)."""

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * xf.to(x.dtype)


def _layernorm(dim: int) -> nn.Module:
    return nn.LayerNorm(dim, eps=1e-6)


NORM_LAYERS = {"rmsnorm": RMSNorm, "layernorm": _layernorm}


class LayerScale(nn.Module):
    """Per-channel residual scale; multiplied in fp32 so a 1e-5 init survives bf16."""

    def __init__(self, dim: int, init_values: float) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), float(init_values)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x.float() * self.gamma.float()).to(x.dtype)


class DropPath(nn.Module):
    """Stochastic depth: drop the whole residual branch per sample while training."""

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep


class PatchEmbed3D(nn.Module):
    """Conv3d tubelet embedding: (B, 3, T, H, W) -> (B, D, T', H', W')."""

    def __init__(self, cfg: InternVideo2Config) -> None:
        super().__init__()
        k = (cfg.tubelet_size, cfg.patch_size, cfg.patch_size)
        self.proj = nn.Conv3d(cfg.in_chans, cfg.embed_dim, kernel_size=k, stride=k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


class Attention(nn.Module):
    """Self-attention; with `qk_norm` (InternVideo2) q and k are normalised over the full
    width before the head split."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = False, qk_norm: bool = True,
                 norm_layer=RMSNorm) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"embed dim {dim} is not divisible by {num_heads} heads")
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.q_norm = norm_layer(dim) if qk_norm else nn.Identity()
        self.k_norm = norm_layer(dim) if qk_norm else nn.Identity()
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(x).chunk(3, dim=-1)  # each (B, N, D)
        q, k = self.q_norm(q), self.k_norm(k)
        heads = self.num_heads
        q, k, v = (t.unflatten(-1, (heads, -1)).transpose(1, 2) for t in (q, k, v))
        out = F.scaled_dot_product_attention(q, k, v)  # (B, heads, N, hd)
        return self.proj(out.transpose(1, 2).flatten(2))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block with LayerScale and stochastic depth (config switches:
    norm type, qkv bias, q/k norm, LayerScale)."""

    def __init__(self, cfg: InternVideo2Config, drop_path: float) -> None:
        super().__init__()
        d = cfg.embed_dim
        norm = NORM_LAYERS[cfg.norm_layer]
        self.norm1 = norm(d)
        self.attn = Attention(d, cfg.num_heads, cfg.qkv_bias, cfg.qk_norm, norm)
        self.ls1 = LayerScale(d, cfg.init_values) if cfg.init_values else nn.Identity()
        self.drop_path1 = DropPath(drop_path)
        self.norm2 = norm(d)
        self.mlp = Mlp(d, cfg.mlp_hidden_dim)
        self.ls2 = LayerScale(d, cfg.init_values) if cfg.init_values else nn.Identity()
        self.drop_path2 = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path1(self.ls1(self.attn(self.norm1(x))))
        return x + self.drop_path2(self.ls2(self.mlp(self.norm2(x))))


class CrossAttention(nn.Module):
    """Cross-attention with bias-free q/k/v weights plus separate learnable biases."""

    def __init__(self, dim: int, num_heads: int, out_dim: int) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"embed dim {dim} is not divisible by {num_heads} pooling heads")
        self.num_heads = num_heads
        self.q = nn.Linear(dim, dim, bias=False)
        self.k = nn.Linear(dim, dim, bias=False)
        self.v = nn.Linear(dim, dim, bias=False)
        self.q_bias = nn.Parameter(torch.zeros(dim))
        self.k_bias = nn.Parameter(torch.zeros(dim))
        self.v_bias = nn.Parameter(torch.zeros(dim))
        self.proj = nn.Linear(dim, out_dim)

    def forward(self, xq: torch.Tensor, xk: torch.Tensor, xv: torch.Tensor) -> torch.Tensor:
        q = F.linear(xq, self.q.weight, self.q_bias)
        k = F.linear(xk, self.k.weight, self.k_bias)
        v = F.linear(xv, self.v.weight, self.v_bias)
        heads = self.num_heads
        q, k, v = (t.unflatten(-1, (heads, -1)).transpose(1, 2) for t in (q, k, v))
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).flatten(2))


class AttentionPoolingBlock(nn.Module):
    """Pools all tokens into one vector: the query is the mean token (cls included)."""

    def __init__(self, dim: int, num_heads: int, out_dim: int) -> None:
        super().__init__()
        self.norm1_q = nn.LayerNorm(dim, eps=1e-5)
        self.norm1_k = nn.LayerNorm(dim, eps=1e-5)
        self.norm1_v = nn.LayerNorm(dim, eps=1e-5)
        self.cross_attn = CrossAttention(dim, num_heads, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = self.norm1_q(x.mean(1, keepdim=True))
        out = self.cross_attn(q, self.norm1_k(x), self.norm1_v(x))
        return out.squeeze(1)


class InternVideo2(nn.Module):
    """InternVideo2 encoder + attention pooling + fc_norm + regression head."""

    def __init__(self, cfg: InternVideo2Config, model_name: str = "internvideo2") -> None:
        super().__init__()
        self.cfg = cfg
        self.model_name = model_name
        self.pooled_dim = cfg.pooled_dim
        d = cfg.embed_dim
        t, h, w = cfg.grid
        self.patch_embed = PatchEmbed3D(cfg)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        if cfg.sep_pos_embed:
            self.pos_embed_spatial = nn.Parameter(torch.zeros(1, h * w, d))
            self.pos_embed_temporal = nn.Parameter(torch.zeros(1, t, d))
            self.pos_embed_cls = nn.Parameter(torch.zeros(1, 1, d))
        else:
            self.pos_embed = nn.Parameter(torch.zeros(1, 1 + t * h * w, d))
        dpr = [cfg.drop_path_rate * i / max(cfg.depth - 1, 1) for i in range(cfg.depth)]
        self.blocks = nn.ModuleList(Block(cfg, dpr[i]) for i in range(cfg.depth))
        self.norm = NORM_LAYERS[cfg.norm_layer](d) if cfg.final_norm else nn.Identity()
        self.clip_projector = AttentionPoolingBlock(d, cfg.attn_pool_num_heads, cfg.pooled_dim)
        self.fc_norm = nn.LayerNorm(cfg.pooled_dim)
        self.fc_dropout = nn.Dropout(cfg.head_drop_rate)
        self.head = nn.Linear(cfg.pooled_dim, cfg.num_outputs)
        self.grad_checkpointing_blocks = 0
        self._init_weights()

    # ---- initialisation (official recipe) ----
    def _init_weights(self) -> None:
        cfg = self.cfg
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        for i, blk in enumerate(self.blocks, start=1):  # depth-scaled residual outputs
            blk.attn.proj.weight.data.div_(math.sqrt(2.0 * i))
            blk.mlp.fc2.weight.data.div_(math.sqrt(2.0 * i))
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        self.head.weight.data.mul_(cfg.head_init_scale)
        self.head.bias.data.mul_(cfg.head_init_scale)
        if self.cls_token.is_meta:  # shape-only build (profiling): no tables to copy
            return
        t, h, w = cfg.grid
        with torch.no_grad():
            if cfg.sep_pos_embed:
                self.pos_embed_spatial.copy_(sincos_2d(cfg.embed_dim, h, w).float()[None])
                self.pos_embed_temporal.copy_(
                    sincos_1d(cfg.embed_dim, torch.arange(t)).float()[None]
                )
            else:
                self.pos_embed.copy_(sincos_3d(cfg.embed_dim, cfg.grid)[None])

    # ---- switches ----
    def set_grad_checkpointing(self, enable: bool = True, num_blocks: int | None = None) -> None:
        """Recompute activations of the first `num_blocks` blocks (all when None) in backward."""
        self.grad_checkpointing_blocks = (
            (len(self.blocks) if num_blocks is None else num_blocks) if enable else 0
        )

    def no_weight_decay(self) -> set[str]:
        return {
            "pos_embed",
            "pos_embed_spatial",
            "pos_embed_temporal",
            "pos_embed_cls",
            "cls_token",
        }

    @property
    def default_clip_shape(self) -> tuple[int, int, int, int]:
        """(C, T, H, W) of the clip this config was built for."""
        c = self.cfg
        return (c.in_chans, c.num_frames, c.img_size, c.img_size)

    def model_config(self) -> dict:
        return {"architecture": self.model_name, "config": asdict(self.cfg)}

    # ---- weights from elsewhere ----
    HEAD_PREFIXES = ("clip_projector.", "fc_norm.", "head.")

    def load_backbone_state(self, state: dict[str, torch.Tensor], origin: str) -> list[str]:
        """Load encoder weights in this model's key layout; returns what was adapted.

        For pretrained imports (`models.pretrained`): the file holds the encoder only (the
        pooling, fc_norm and head stay at their initialisation) and was written for one clip
        shape, so position embeddings are resized to this model's token grid (linear in
        time, bicubic in space, as `pos_embed.py`) and a patch kernel of another tubelet
        length is re-inflated (summed over time, spread evenly over the new length: a static
        clip embeds the same). Every encoder key must be present; an unknown key or a shape
        that cannot be adapted is an error naming it.
        """
        own = self.state_dict()
        encoder = [k for k in own if not k.startswith(self.HEAD_PREFIXES)]
        unknown = sorted(set(state) - set(own))
        if unknown:
            raise CheckpointError(f"{origin} has {len(unknown)} key(s) {self.model_name} "
                                  f"lacks, e.g. {unknown[0]}")
        missing = [k for k in encoder if k not in state]
        if missing:
            raise CheckpointError(f"{origin} lacks {len(missing)} encoder key(s), "
                                  f"e.g. {missing[0]}")
        adapted: list[str] = []
        out = {}
        for k, v in state.items():
            if v.shape != own[k].shape:
                try:
                    v, how = self._adapt(k, v, own[k].shape)
                except ValueError as exc:  # a grid that cannot be inferred
                    raise CheckpointError(f"{origin}: cannot resize {k}: {exc}") from None
                if v.shape != own[k].shape:
                    raise CheckpointError(f"{origin}: {k} has shape {tuple(state[k].shape)}, "
                                          f"{self.model_name} needs {tuple(own[k].shape)}")
                adapted.append(f"{k} {how}")
            out[k] = v.to(own[k].dtype)
        self.load_state_dict(out, strict=False)
        return adapted

    def _adapt(self, key: str, v: torch.Tensor, shape: torch.Size) -> tuple[torch.Tensor, str]:
        """(tensor resized towards `shape`, how) for the keys whose shape follows the clip."""
        t, h, w = self.cfg.grid
        if key == "pos_embed_spatial":
            side = math.isqrt(v.shape[1])
            if side * side == v.shape[1]:
                return (resize_spatial(v, (side, side), (h, w)),
                        f"{side}x{side} -> {h}x{w} (bicubic)")
        elif key == "pos_embed_temporal":
            return resize_temporal(v, t), f"{v.shape[1]} -> {t} frames (linear)"
        elif key == "pos_embed":
            src = infer_grid(v.shape[1] - 1, (t, h, w))
            return resize_pos_embed(v, src, (t, h, w)), f"{src} -> {(t, h, w)}"
        elif key == "patch_embed.proj.weight" and v.shape[:2] + v.shape[3:] == shape[:2] + shape[3:]:
            t1 = shape[2]
            inflated = v.sum(2, keepdim=True).repeat(1, 1, t1, 1, 1) / t1
            return inflated, f"tubelet {v.shape[2]} -> {t1} (summed, then averaged over time)"
        return v, "unchanged"

    # ---- forward ----
    def pos_embed_for(self, grid: Grid) -> torch.Tensor:
        """Position embedding (1, 1 + T*H*W, D) for a token grid; resized if it differs."""
        t, h, w = self.cfg.grid
        if not self.cfg.sep_pos_embed:
            return resize_pos_embed(self.pos_embed, (t, h, w), grid)
        spatial = resize_spatial(self.pos_embed_spatial, (h, w), grid[1:])
        temporal = resize_temporal(self.pos_embed_temporal, grid[0])
        joint = spatial.repeat(1, grid[0], 1) + temporal.repeat_interleave(grid[1] * grid[2], dim=1)
        return torch.cat([self.pos_embed_cls, joint], dim=1)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, T, H, W) -> tokens (B, 1 + T'*H'*W', D), cls first, then frame-major
        patches; normed only with `final_norm` (InternVideo2 has none, DINOv2 has one)."""
        x = self.patch_embed(x.to(self.patch_embed.proj.weight.dtype))
        # The token grid is a Python constant: an ONNX trace fixes T/H/W (only batch is dynamic).
        grid = (int(x.shape[2]), int(x.shape[3]), int(x.shape[4]))
        x = x.flatten(2).transpose(1, 2)
        cls = self.cls_token.expand(x.shape[0], -1, -1)
        x = torch.cat([cls, x], dim=1) + self.pos_embed_for(grid).to(x.dtype)
        for i, blk in enumerate(self.blocks):
            if i < self.grad_checkpointing_blocks and self.training and torch.is_grad_enabled():
                x = checkpoint(blk, x, use_reentrant=False)
            else:
                x = blk(x)
        return self.norm(x)

    def forward_head(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """tokens -> (score (B,) or (B, n), feature (B, 768) = fc_norm(pool(tokens)))."""
        feature = self.fc_norm(self.clip_projector(tokens))
        score = self.head(self.fc_dropout(feature))
        return score.squeeze(-1), feature

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 3, T, H, W) -> (score, feature): the registry's output order (module doc)."""
        return self.forward_head(self.forward_features(x))
