"""Hybrid head: teach a trained pixel model to read the bitstream as well.

`vqa-distill hybrid --from RUN/best --manifest M --out DIR` takes a pixel model (any
timm student checkpoint), adds the fusion MLP of `TimmStudent` (`side_dim` > 0: score =
pixel head + MLP([feature, side])), and fits it with the backbone frozen:

1. One pass over the manifest's videos through the runtime (`iter_windows`, the spec's own
   crops, `windows_to_input`, `side_vector`) caches, per window, the model's 768-d feature
   of every crop, the window's side vector and its label (the mean per-frame VMAF of the
   frames it samples, as the teacher's training used). The cache is written in parts of
   `PART` videos, each atomically: a killed run resumes at the first missing part.
2. The MLP trains on the cached rows (everything else stays as the pixel model had it), AdamW, with the side input of a
   row zeroed with probability `side_drop` so that the pixel-only mode is trained too.
   The epoch kept is the one with the best validation SRCC of the hybrid mode.

Why frozen: measured on the `standard` corpus, the fine-tuned pixel features already carry
the content's difficulty, which is what bits-per-pixel lacks; fitting the head takes
seconds instead of a fine-tune's hour, so the head's design could be chosen by measurement
(benchmarks/RESULTS.md). Both modes are reported on every held-out split with the one
evaluation the training reports use (`train_eval.video_metrics`).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from internvqa.runtime.atomic import atomic_write_json
from internvqa.runtime.bitstream import SIDE_DIM, SIDE_NAMES
from internvqa.runtime.clipspec import ClipSpec, windows_to_input
from internvqa.runtime.errors import UsageError, VideoError
from internvqa.runtime.manifest import ManifestRow
from internvqa.runtime.video import iter_windows, open_video
from internvqa.runtime.workspace import WEIGHTS_FILE

from .checkpoint import load_checkpoint, save_checkpoint
from .data import cache_key, frame_labels, split_videos, window_side
from .models.timm_student import TimmStudent, create_timm_student
from .train_common import seed_everything, sha256_file
from .train_eval import video_metrics

PART = 200  # videos per cache part
Log = Callable[[str], None]


def hybrid_model(pixel: TimmStudent, side_hidden: int = 32, side_drop: float = 0.25) -> TimmStudent:
    """A copy of `pixel` with the fusion MLP added (zero-initialised: same scores at start)."""
    if not isinstance(pixel, TimmStudent):
        raise UsageError("the hybrid head is built on a timm student (timm:<backbone>) checkpoint")
    if pixel.cfg.side_dim:
        raise UsageError("that checkpoint is already a hybrid model")
    cfg = {k: v for k, v in vars(pixel.cfg).items() if k != "backbone"}
    cfg.update(side_dim=SIDE_DIM, side_hidden=side_hidden, side_drop=side_drop)
    model = create_timm_student(pixel.cfg.backbone, **cfg)
    missing, unexpected = model.load_state_dict(pixel.state_dict(), strict=False)
    if unexpected or any(not k.startswith("fuse.") for k in missing):
        raise UsageError(f"pixel checkpoint does not fit the hybrid model: {missing[:2]} {unexpected[:2]}")
    return model


# ------------------------------------------------------------------------------ cache
def _part_rows(model: TimmStudent, rows: Sequence[ManifestRow], first: int, spec: ClipSpec) -> dict:
    out: dict[str, list] = {k: [] for k in ("video", "feat", "side", "label")}
    model.eval()
    for vid in range(first, min(len(rows), first + PART)):
        row = rows[vid]
        per_frame = frame_labels(row)
        try:
            with open_video(row.abspath, decode_threads=1) as src:
                info = src.info
                for w in iter_windows(src, spec, crop_only=True):
                    x = torch.from_numpy(windows_to_input(spec, [w.clip]))
                    with torch.inference_mode():
                        _, feat = model(x)
                    idx = [i for i in w.frame_indices if per_frame is not None and i < len(per_frame)]
                    label = float(np.mean(per_frame[idx])) if idx else float(row.mos or np.nan)
                    out["video"].append(vid)
                    out["feat"].append(feat.numpy().astype(np.float16))
                    out["side"].append(window_side(row, w, info))
                    out["label"].append(label / 100.0)
        except VideoError as exc:
            raise VideoError(f"{row.path}: {exc}") from None
    return {k: np.asarray(v) for k, v in out.items()}


def build_head_cache(model: TimmStudent, rows: Sequence[ManifestRow], spec: ClipSpec,
                     folder: Path, log: Log) -> dict[str, np.ndarray]:
    """Per-window (feature of each crop, side vector, label, video), resumable by part."""
    folder.mkdir(parents=True, exist_ok=True)
    parts = []
    t0 = time.perf_counter()
    for first in range(0, len(rows), PART):
        path = folder / f"part{first:06d}.npz"
        if not path.is_file():
            data = _part_rows(model, rows, first, spec)
            tmp = path.with_suffix(".tmp.npz")
            np.savez(tmp, **data)
            tmp.replace(path)
            done = min(len(rows), first + PART)
            log(f"features: {done}/{len(rows)} videos ({time.perf_counter() - t0:.0f} s)")
        with np.load(path) as z:
            parts.append({k: z[k] for k in z.files})
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def cache_folder(root: Path, checkpoint: Path, rows: Sequence[ManifestRow], spec: ClipSpec) -> Path:
    h = hashlib.sha256()
    h.update(sha256_file(checkpoint / WEIGHTS_FILE).encode())
    h.update(cache_key(rows, spec).encode())
    h.update(f"side{SIDE_DIM}:{','.join(SIDE_NAMES)}".encode())
    return root / "cache" / "hybrid" / h.hexdigest()[:20]


# ------------------------------------------------------------------------------ fit
def _predict(model: TimmStudent, cache: dict, rows_mask: np.ndarray, pixels_only: bool) -> dict[int, float]:
    """video -> mean score over its windows and crops (0-1), in eval mode."""
    model.eval()
    feats = torch.from_numpy(cache["feat"][rows_mask].astype(np.float32))  # (N, C, D)
    side = torch.from_numpy(cache["side"][rows_mask].astype(np.float32))
    n, c, d = feats.shape
    flat = feats.reshape(n * c, d)
    s = None if pixels_only else side.repeat_interleave(c, dim=0)
    with torch.no_grad():
        score = _head(model, flat, s).reshape(n, c).mean(1).numpy()
    sums: dict[int, list[float]] = {}
    for v, sc in zip(cache["video"][rows_mask].tolist(), score.tolist(), strict=True):
        sums.setdefault(v, []).append(sc)
    return {v: float(np.mean(x)) for v, x in sums.items()}


def _head(model: TimmStudent, feature: torch.Tensor, side: torch.Tensor | None) -> torch.Tensor:
    """The model's head on cached fc_norm features (the same code as `forward_head`)."""
    return model.score_from_feature(feature, side)


def evaluate_modes(model: TimmStudent, cache: dict, rows: Sequence[ManifestRow],
                   videos: Sequence[int]) -> dict[str, dict]:
    mask = np.isin(cache["video"], np.asarray(list(videos)))
    return {mode: video_metrics(_predict(model, cache, mask, mode == "pixels"), rows)
            for mode in ("hybrid", "pixels")}


def fit_head(model: TimmStudent, cache: dict, rows: Sequence[ManifestRow],
             splits: dict[str, list[int]], epochs: int, lr: float, weight_decay: float,
             batch_size: int, seed: int, log: Log) -> dict:
    """Train `fuse` on the cached training rows; keep the best-validation epoch."""
    seed_everything(seed)
    train = np.isin(cache["video"], np.asarray(splits.get("train", [])))
    if not train.any():
        raise UsageError("no training videos (empty training split?)")
    val_split = "val" if splits.get("val") else ("test" if splits.get("test") else "train")
    feats = torch.from_numpy(cache["feat"][train].astype(np.float32))
    n, c, d = feats.shape
    feats = feats.reshape(n * c, d)
    side = torch.from_numpy(cache["side"][train].astype(np.float32)).repeat_interleave(c, dim=0)
    label = torch.from_numpy(cache["label"][train].astype(np.float32)).repeat_interleave(c)
    ok = torch.isfinite(label)
    feats, side, label = feats[ok], side[ok], label[ok]
    params = [p for name, p in model.named_parameters() if name.startswith("fuse.")]
    for name, p in model.named_parameters():  # the pixel head too stays as trained:
        p.requires_grad_(name.startswith("fuse."))  # refitted here it re-learns train content
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    steps = epochs * max(1, (len(label) + batch_size - 1) // batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    gen = torch.Generator().manual_seed(seed)
    best, best_state, history = -2.0, None, []
    for epoch in range(1, epochs + 1):
        model.train()
        order = torch.randperm(len(label), generator=gen)
        total = 0.0
        for i in range(0, len(order), batch_size):
            b = order[i : i + batch_size]
            pred = _head(model, feats[b], side[b])
            loss = nn.functional.mse_loss(pred, label[b])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(b)
        got = evaluate_modes(model, cache, rows, splits[val_split])
        srcc = got["hybrid"].get("srcc", float("nan"))
        history.append({"epoch": epoch, "mse": total / len(label), f"{val_split}_hybrid": got["hybrid"],
                        f"{val_split}_pixels": got["pixels"]})
        log(f"epoch {epoch}/{epochs}: train mse {total / len(label):.5f}, {val_split} SRCC hybrid "
            f"{srcc:.4f}, pixels {got['pixels'].get('srcc', float('nan')):.4f}")
        if srcc > best:
            best, best_state = srcc, {k: v.detach().clone() for k, v in model.state_dict().items()}
    if best_state is not None:
        model.load_state_dict(best_state)
    for p in model.parameters():
        p.requires_grad_(True)
    best_epoch = max(history, key=lambda h: h[f"{val_split}_hybrid"].get("srcc", -2))["epoch"]
    return {"history": history, "best_epoch": best_epoch, "selected_on": val_split}


def train_hybrid(checkpoint: Path, rows: Sequence[ManifestRow], out: Path, work: Path,
                 epochs: int = 30, lr: float = 1e-3, weight_decay: float = 0.05,
                 batch_size: int = 256, side_hidden: int = 32, side_drop: float = 0.25,
                 seed: int = 0, log: Log = print, provenance: dict | None = None) -> dict:
    """The whole recipe: cache, fit, report both modes on every split, save the checkpoint."""
    pixel, config = load_checkpoint(checkpoint)
    spec = ClipSpec.from_dict(config["clip_spec"])
    model = hybrid_model(pixel, side_hidden=side_hidden, side_drop=side_drop)
    folder = cache_folder(work, checkpoint, rows, spec)
    log(f"caching frozen features of {len(rows)} videos in {folder}")
    cache = build_head_cache(model, rows, spec, folder, log)
    splits = split_videos(rows)
    fit = fit_head(model, cache, rows, splits, epochs, lr, weight_decay, batch_size, seed, log)
    metrics = {name: evaluate_modes(model, cache, rows, vids) for name, vids in splits.items() if vids}
    for name, m in metrics.items():
        log(f"{name}: SRCC hybrid {m['hybrid'].get('srcc', float('nan')):.4f}, pixels "
            f"{m['pixels'].get('srcc', float('nan')):.4f} ({len(splits[name])} videos)")
    prov = {**(provenance or {}), "kind": "hybrid-head", "pixel_checkpoint": str(checkpoint),
            "pixel_metrics": config.get("metrics", {}), "side_inputs": list(SIDE_NAMES),
            "recipe": {"epochs": epochs, "lr": lr, "weight_decay": weight_decay,
                       "batch_size": batch_size, "side_hidden": side_hidden,
                       "side_drop": side_drop, "seed": seed, "backbone": "frozen"},
            "fit": {"best_epoch": fit["best_epoch"], "selected_on": fit["selected_on"]}}
    save_checkpoint(out / "best", model.eval(), spec.to_dict(), config["score_scale"],
                    provenance=prov, metrics=metrics)
    report = {"metrics": metrics, **fit, "provenance": prov}
    atomic_write_json(out / "report.json", report)
    log(f"wrote {out / 'best'}")
    return json.loads(json.dumps(report))
