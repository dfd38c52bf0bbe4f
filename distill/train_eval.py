"""Held-out evaluation: per-video scores (mean over windows and crops) and runtime metrics."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence

import numpy as np
import torch

from internvqa.runtime.manifest import ManifestRow
from internvqa.runtime.metrics import video_accuracy

from . import distributed as D
from .data import EvalWindows, eval_loader
from .train_common import autocast


@torch.no_grad()
def predict_videos(
    forward: Callable[[torch.Tensor], torch.Tensor],
    ds: EvalWindows,
    batch_size: int,
    info: D.DistInfo,
    amp: torch.dtype | None = None,
    workers: int = 0,
    with_side: bool = False,
) -> dict[int, float]:
    """video index -> mean model output over all its windows and crops (0-1 scale).

    `with_side`: call `forward(x, side)` with each window's bitstream side input."""
    sums: dict[int, list[float]] = defaultdict(list)
    for batch in eval_loader(ds, batch_size, workers, info.rank, info.world):
        args = [batch["x"].to(info.device)]
        if with_side:
            args.append(batch["side"].to(info.device))
        with autocast(info.device, amp):
            out = forward(*args)
        for v, s in zip(batch["video"].tolist(), out.float().cpu().tolist(), strict=True):
            sums[v].append(s)
    merged: dict[int, list[float]] = defaultdict(list)
    for part in D.gather_objects(dict(sums)):
        for v, s in part.items():
            merged[v].extend(s)
    return {v: float(np.mean(s)) for v, s in sorted(merged.items())}


def video_metrics(preds: dict[int, float], rows: Sequence[ManifestRow]) -> dict:
    """`runtime.metrics.video_accuracy` (the one evaluation) of per-video model outputs
    (0-1) on the MOS scale; {} when fewer than three videos have MOS."""
    vids = [v for v in preds if rows[v].mos is not None]
    if len(vids) < 3:
        return {}
    m = video_accuracy([preds[v] * 100.0 for v in vids], [rows[v] for v in vids])
    return {k: v for k, v in m.items() if k not in ("logistic_method", "logistic_note")}
