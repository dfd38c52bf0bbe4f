"""Held-out evaluation: per-video scores (mean over windows and crops) and runtime metrics."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence

import numpy as np
import torch

from internvqa.runtime.manifest import ManifestRow
from internvqa.runtime.metrics import evaluate

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
    """Runtime metrics on the 0-100 scale, plus RD-order accuracy when codec/crf exist."""
    vids = [v for v in preds if rows[v].mos is not None]
    if len(vids) < 3:
        return {}
    pred = np.array([preds[v] * 100.0 for v in vids])
    mos = np.array([rows[v].mos for v in vids])
    groups = [(rows[v].source, rows[v].codec, rows[v].resolution) for v in vids]
    levels = [rows[v].crf if rows[v].crf is not None else float("nan") for v in vids]
    have_ladder = all(r.codec and r.crf is not None for r in (rows[v] for v in vids))
    m = evaluate(pred, mos, groups if have_ladder else None, levels if have_ladder else None)
    return {k: v for k, v in m.items() if k not in ("logistic_method", "logistic_note")}
