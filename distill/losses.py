"""Losses of teacher fine-tuning and of the four distillation modes.

The InternVQA loss (REFERENCE section 1, as the authors' code computes it, weights 1:1:1):

    L = MSE(teacher_score, MOS) + MSE(student_score, MOS)
      + SmoothL1_{beta=2}(LN(student_feat), LN(teacher_feat))

with LN a parameter-free LayerNorm over the 768-d pooled feature, shared by both sides,
and the feature term *not* detached from the teacher (it is co-trained). MOS is on the
normalised 0-1 scale (mos / 100) throughout.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

MODES = ("paper", "frozen", "label-free", "labels")
FEATURE_BETA = 2.0


def feature_norm(x: torch.Tensor) -> torch.Tensor:
    """Parameter-free LayerNorm over the feature dim (no affine: nothing to learn)."""
    return F.layer_norm(x.float(), x.shape[-1:])


def feature_loss(student_feat: torch.Tensor, teacher_feat: torch.Tensor) -> torch.Tensor:
    return F.smooth_l1_loss(feature_norm(student_feat), feature_norm(teacher_feat),
                            beta=FEATURE_BETA)


def score_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(pred.float(), target.float())


def distill_loss(
    mode: str,
    student: tuple[torch.Tensor, torch.Tensor],
    teacher: tuple[torch.Tensor, torch.Tensor] | None,
    mos: torch.Tensor | None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Total loss and its named parts for one batch. `student` and `teacher` are
    `(score, feature)`, the models' output order (`internvqa.distill.models`).

    paper:      MSE(t_score, mos) + MSE(s_score, mos) + feat (teacher in the graph)
    frozen:     MSE(s_score, mos) + feat, teacher outputs are cached constants
    label-free: MSE(s_score, t_score) + feat, no MOS needed
    labels:     MSE(s_score, mos), the student alone (ablation baseline)
    """
    s_score, s_feat = student
    parts: dict[str, torch.Tensor] = {}
    if mode == "labels":
        parts["student_mos"] = score_loss(s_score, mos)
    else:
        if teacher is None:
            raise ValueError(f"mode {mode!r} needs teacher outputs")
        t_score, t_feat = teacher
        parts["feature"] = feature_loss(s_feat, t_feat)
        if mode == "paper":
            parts["teacher_mos"] = score_loss(t_score, mos)
            parts["student_mos"] = score_loss(s_score, mos)
        elif mode == "frozen":
            parts["student_mos"] = score_loss(s_score, mos)
        elif mode == "label-free":
            parts["student_teacher"] = score_loss(s_score, t_score.detach())
        else:
            raise ValueError(f"unknown distillation mode {mode!r}; known: {MODES}")
    total = sum(parts.values())
    return total, {k: float(v.detach()) for k, v in parts.items()}
