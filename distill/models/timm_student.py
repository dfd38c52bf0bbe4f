"""Heterogeneous students: any timm image backbone applied frame by frame.

The backbone sees (B*T, 3, H, W), returns its pooled feature (`num_classes=0`); frames are
averaged in time, projected to the 768-d distillation space by `proj` (the paper leaves this
adapter open; a Linear is the natural choice), then `fc_norm` and `head` as in InternVideo2,
so the `(score, feature_768)` contract (`internvqa.distill.models`) is the same for every
student.

Weights: `pretrained=False` always (no network here). `backbone_weights=PATH` loads a local
file (safetensors, or a plain `torch.save` state dict read with `weights_only=True`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import timm
import torch
import torch.nn as nn

from internvqa.runtime.errors import CheckpointError, UsageError


@dataclass
class TimmStudentConfig:
    backbone: str
    img_size: int = 224
    num_frames: int = 8
    tubelet_size: int = 1
    drop_path_rate: float = 0.0
    head_drop_rate: float = 0.0
    pooled_dim: int = 768
    num_outputs: int = 1
    head_init_scale: float = 0.001
    # Hybrid head (0: pixel-only model). `side_dim` = width of the bitstream side input
    # (`internvqa.runtime.bitstream.SIDE_DIM`); `side_drop` = chance that a training row
    # sees the all-zero side input, so the pixel-only mode stays a trained mode.
    side_dim: int = 0
    side_hidden: int = 32
    side_drop: float = 0.25


class TimmStudent(nn.Module):
    """Frame-wise timm backbone -> temporal mean -> proj(768) -> fc_norm -> head
    (+ a fusion MLP over [feature, bitstream side input] when `side_dim` > 0)."""

    def __init__(self, cfg: TimmStudentConfig) -> None:
        super().__init__()
        if cfg.tubelet_size != 1:
            raise UsageError("timm students are frame-wise: tubelet_size must be 1")
        if not timm.is_model(cfg.backbone):
            raise UsageError(f"timm has no model {cfg.backbone!r}")
        self.cfg = cfg
        self.model_name = f"timm:{cfg.backbone}"
        self.pooled_dim = cfg.pooled_dim
        kwargs: dict[str, Any] = {
            "pretrained": False,
            "num_classes": 0,
            "drop_path_rate": cfg.drop_path_rate,
        }
        pcfg = timm.models.get_pretrained_cfg(cfg.backbone)
        if pcfg is not None and pcfg.fixed_input_size:  # ViT-like: pos embed sized at creation
            kwargs["img_size"] = cfg.img_size
        self.backbone = timm.create_model(cfg.backbone, **kwargs)
        # Width of the pooled output (MobileNetV3's conv head makes it differ from num_features).
        self.backbone_dim = int(
            getattr(self.backbone, "head_hidden_size", None) or self.backbone.num_features
        )
        self.proj = nn.Linear(self.backbone_dim, cfg.pooled_dim)
        self.fc_norm = nn.LayerNorm(cfg.pooled_dim)
        self.fc_dropout = nn.Dropout(cfg.head_drop_rate)
        self.head = nn.Linear(cfg.pooled_dim, cfg.num_outputs)
        with torch.no_grad():
            self.head.weight.mul_(cfg.head_init_scale)
            self.head.bias.mul_(cfg.head_init_scale)
        self.fuse: nn.Module | None = None
        if cfg.side_dim:
            last = nn.Linear(cfg.side_hidden, cfg.num_outputs)
            nn.init.zeros_(last.weight)  # starts as the pixel model it is built on
            nn.init.zeros_(last.bias)
            self.fuse = nn.Sequential(
                nn.Linear(cfg.num_outputs + cfg.side_dim, cfg.side_hidden), nn.GELU(), last)

    @property
    def default_clip_shape(self) -> tuple[int, int, int, int]:
        return (3, self.cfg.num_frames, self.cfg.img_size, self.cfg.img_size)

    def model_config(self) -> dict:
        cfg = asdict(self.cfg)
        cfg.pop("backbone")
        return {"architecture": self.model_name, "config": cfg}

    def set_grad_checkpointing(self, enable: bool = True, num_blocks: int | None = None) -> None:
        self.backbone.set_grad_checkpointing(enable)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, T, H, W) -> per-frame pooled backbone features (B, T, F)."""
        b = x.shape[0]
        frames = x.transpose(1, 2).flatten(0, 1)  # (B*T, 3, H, W)
        if self.training:  # NHWC convolutions train ~2x faster on CPU (same maths)
            frames = frames.contiguous(memory_format=torch.channels_last)
        return self.backbone(frames).reshape(b, -1, self.backbone_dim)

    def forward_head(
        self, feats: torch.Tensor, side: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-frame features (B, T, F) [+ side (B, side_dim)] -> (score, feature 768).

        Hybrid: score = pixel score + fuse([pixel score, side]); a missing `side` is the
        all-zero vector (pixel-only mode). The fusion sees the pixel model's *score*, not
        its 768-d feature: fitted on the training videos, an MLP over the whole feature
        learned the training content (train SRCC 0.99, held-out 0.48 on the `standard`
        corpus), one over (score, side) generalises (benchmarks/RESULTS.md)."""
        feature = self.fc_norm(self.proj(feats.mean(1)))
        return self.score_from_feature(feature, side), feature

    def score_from_feature(self, feature: torch.Tensor, side: torch.Tensor | None = None) -> torch.Tensor:
        """(B, 768) fc_norm feature [+ side] -> (B,) score: the head and the fusion."""
        score = self.head(self.fc_dropout(feature))
        if self.fuse is not None:
            side = self.side_or_zeros(side, feature)
            score = score + self.fuse(torch.cat([score, side], dim=1))
        return score.squeeze(-1)

    def side_or_zeros(self, side: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
        """The side input as the head sees it: zeros if absent; in training, rows dropped
        to zeros with probability `side_drop`."""
        if side is None:
            return like.new_zeros(like.shape[0], self.cfg.side_dim)
        side = side.to(like.dtype)
        if self.training and self.cfg.side_drop > 0:
            keep = (torch.rand(side.shape[0], 1, device=side.device) >= self.cfg.side_drop)
            side = side * keep.to(side.dtype)
        return side

    def forward(
        self, x: torch.Tensor, side: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 3, T, H, W) [+ side (B, side_dim)] -> (score, feature), the registry's order."""
        return self.forward_head(self.forward_features(x), side)

    def load_backbone_state(self, state: dict[str, torch.Tensor], origin: str) -> None:
        """Load backbone weights (the classifier, if any, is dropped); every key and shape
        must match, so a file of another architecture is an error naming the key."""
        own = self.backbone.state_dict()
        state = {k: v for k, v in state.items() if k in own}  # drops the classifier
        missing = [k for k in own if k not in state]
        if missing:
            raise CheckpointError(f"{origin} lacks {len(missing)} backbone keys, e.g. {missing[0]}")
        for k, v in state.items():
            if v.shape != own[k].shape:
                raise CheckpointError(
                    f"{origin}: {k} has shape {tuple(v.shape)}, model needs {tuple(own[k].shape)}"
                )
        self.backbone.load_state_dict(state, strict=True)


def _read_backbone_weights(path: str | Path) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"backbone weights file not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    import pickle

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"{path} is not a plain weights file; it will not be unpickled"
        ) from exc
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    return obj


def create_timm_student(
    backbone: str, backbone_weights: str | Path | None = None, **overrides: Any
) -> TimmStudent:
    """Build `timm:<backbone>`; overrides are `TimmStudentConfig` fields."""
    try:
        cfg = TimmStudentConfig(backbone=backbone, **overrides)
    except TypeError as exc:
        raise UsageError(f"timm:{backbone}: {exc}") from exc
    model = TimmStudent(cfg)
    if backbone_weights is not None:
        model.load_backbone_state(_read_backbone_weights(backbone_weights), str(backbone_weights))
    return model
