"""Distillation of a fine-tuned teacher into a student, in four modes.

- `paper` (InternVQA, REFERENCE section 1): L = MSE(t_score, MOS) + MSE(s_score, MOS) +
  SmoothL1_beta=2(LN(s_feat), LN(t_feat)). The teacher is co-trained: blocks 0..N-2
  frozen, the last block and every non-block parameter (patch/pos embed, cls token,
  attention pool, fc_norm, head) trainable, and the feature term flows into it too.
  Each step runs the teacher forward and backward (gradients reach the patch embedding
  through the frozen blocks), which is most of the cost.
- `frozen`: the teacher is fixed, so its outputs are a function of the input only. They
  are computed once per training view and cached on disk; distillation never runs the
  teacher again. Augmentation is kept but made finite: each training video has K fixed
  views (window + native-scale crop + flip, a function of seed, video and k) and each
  epoch draws one of the K per video. K = 1 means no augmentation at all.
- `label-free`: no MOS needed (a manifest without MOS, or `--videos DIR`): MSE(s_score,
  t_score) + the feature term, on the same cached frozen-teacher views.
- `labels`: the student alone, MSE to MOS with the same budget (the ablation baseline).

Heterogeneous `timm:*` students match the teacher through their own Linear projection to
the 768-d pooled space (part of the model), like homologous ones.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from internvqa.runtime.atomic import atomic_directory, atomic_write_json
from internvqa.runtime.clipspec import ClipSpec
from internvqa.runtime.errors import ManifestError, UsageError
from internvqa.runtime.manifest import ManifestRow
from internvqa.runtime.workspace import WEIGHTS_FILE

from . import distributed as D
from .checkpoint import load_checkpoint, save_checkpoint
from .data import EvalWindows, TrainWindows, WindowCache, heldout_split, split_videos, work_dir
from .losses import MODES, distill_loss
from .models import create_model
from .train_common import TrainConfig, autocast, print_table, score_scale_for, sha256_file
from .train_eval import predict_videos, video_metrics
from .train_loop import FitResult

# CPU demo distillation settings (tuned for the demo corpus; see benchmarks/RESULTS.md).
DEMO = TrainConfig(epochs=5, batch_size=16, lr=1e-3, min_lr=1e-6, weight_decay=0.05,
                   warmup_epochs=0.5, layer_decay=1.0, per_video=1, precision="fp32")
# GPU: the authors' script defaults (REFERENCE section 1), lr 1e-3 scaled by batch/256.
PAPER = TrainConfig(epochs=30, batch_size=32, lr=1e-3 * 32 / 256, min_lr=1e-6,
                    weight_decay=0.05, warmup_epochs=5, layer_decay=0.75, precision="bf16",
                    workers=8)
STUDENT_PRESETS = {"demo": DEMO, "paper": PAPER}
# Homologous students start from random init in the demo: LayerScale 0.1 (as the teacher).
STUDENT_OVERRIDES = {"demo": {"init_values": 0.1}, "paper": {}}
FROZEN_VIEWS = 4


class DistillPair(nn.Module):
    """Student and co-trained teacher in one module, so one DDP wrapper syncs both."""

    def __init__(self, student: nn.Module, teacher: nn.Module):
        super().__init__()
        self.student, self.teacher = student, teacher

    def forward(self, x: torch.Tensor):
        return self.student(x), self.teacher(x)


def cotrain_freeze(teacher: nn.Module) -> None:
    """Freeze blocks 0..N-2; the last block and all non-block params stay trainable."""
    teacher.requires_grad_(True)
    blocks = getattr(teacher, "blocks", None)
    if not isinstance(blocks, nn.ModuleList) or not len(blocks):
        raise UsageError("paper mode co-trains an InternVideo2 teacher (it needs .blocks)")
    for blk in blocks[:-1]:
        blk.requires_grad_(False)


def build_student(name: str, spec: ClipSpec, drop_path: float = 0.0,
                  overrides: dict | None = None) -> nn.Module:
    """The student at the clip spec's size; `overrides` apply to InternVideo2 students only."""
    extra = {} if name.startswith("timm:") else (overrides or {})
    return create_model(name, img_size=spec.size, num_frames=spec.num_frames,
                        drop_path_rate=drop_path, **extra)


# ---------------------------------------------------------------------------- teacher cache
@torch.no_grad()
def teacher_targets(teacher: nn.Module, ds: TrainWindows, teacher_sha: str, views: int,
                    info: D.DistInfo, batch_size: int = 32) -> tuple[np.ndarray, np.ndarray, float]:
    """(features (V, K, 768), scores (V, K), seconds) of the frozen teacher per fixed view.

    Cached in `<work>/cache/teacher/<key>/` keyed by teacher weights, clip cache, seed,
    K and the training videos; ranks compute shards, rank 0 writes the cache.
    """
    key_src = json.dumps({"teacher": teacher_sha, "clips": ds.cache.folder.name,
                          "seed": ds.seed, "views": views, "videos": ds.videos})
    folder = work_dir() / "cache" / "teacher" / hashlib.sha256(key_src.encode()).hexdigest()[:20]
    if (folder / "scores.npy").is_file():
        return np.load(folder / "features.npy"), np.load(folder / "scores.npy"), 0.0
    t0 = time.perf_counter()
    teacher.eval()
    jobs = [(i, k) for i in range(len(ds.videos)) for k in range(views)][info.rank::info.world]
    out: dict[tuple[int, int], tuple[np.ndarray, float]] = {}
    for s in range(0, len(jobs), batch_size):
        chunk = jobs[s : s + batch_size]
        xs = [ds.render(ds.videos[i], ds.fixed_view_rng(ds.videos[i], k))[1] for i, k in chunk]
        score, feat = teacher(torch.from_numpy(np.stack(xs)).to(info.device))
        for j, ik in enumerate(chunk):
            out[ik] = (feat[j].float().cpu().numpy(), float(score[j]))
    merged: dict = {}
    for part in D.gather_objects(out):
        merged.update(part)
    dim = next(iter(merged.values()))[0].shape[0]
    feats = np.zeros((len(ds.videos), views, dim), np.float32)
    scores = np.zeros((len(ds.videos), views), np.float32)
    for (i, k), (f, sc) in merged.items():
        feats[i, k], scores[i, k] = f, sc
    if info.is_main:
        with atomic_directory(folder) as tmp:
            np.save(tmp / "features.npy", feats)
            np.save(tmp / "scores.npy", scores)
    D.barrier()
    return feats, scores, time.perf_counter() - t0


# ---------------------------------------------------------------------------- the task
class StudentTask:
    """What `fit` trains for one distillation mode (see the module docstring)."""

    def __init__(self, mode: str, student: nn.Module, teacher: nn.Module, teacher_dir: Path,
                 cache: WindowCache, rows: list[ManifestRow], cfg: TrainConfig,
                 info: D.DistInfo, provenance: dict, views: int = FROZEN_VIEWS,
                 fsdp: bool = False):
        if mode not in MODES:
            raise UsageError(f"unknown --mode {mode!r}; choose from {', '.join(MODES)}")
        self.mode, self.student, self.teacher = mode, student, teacher
        self.rows, self.cfg, self.info, self.cache = rows, cfg, info, cache
        self.provenance = provenance
        splits = split_videos(rows)
        if mode != "label-free":
            unlabeled = [rows[v].path for v in splits["train"] if rows[v].mos is None]
            if unlabeled:
                raise ManifestError(f"--mode {mode} needs MOS for every training video; "
                                    f"{len(unlabeled)} have none (e.g. {unlabeled[0]}); "
                                    "use --mode label-free")
        self.heldout = heldout_split(splits)
        cached = mode in ("frozen", "label-free")
        self.train_set = TrainWindows(cache, rows, splits["train"], seed=cfg.seed,
                                      per_video=cfg.per_video, views=views if cached else None)
        self.eval_set = EvalWindows(cache, rows, splits[self.heldout]) if self.heldout else None
        self.teacher_seconds = 0.0
        if cached:
            teacher.requires_grad_(False)
            feats, scores, self.teacher_seconds = teacher_targets(
                teacher, self.train_set, sha256_file(teacher_dir / WEIGHTS_FILE),
                views, info, cfg.eval_batch_size)
            pos = {v: i for i, v in enumerate(self.train_set.videos)}
            self.t_feats, self.t_scores, self.pos = (torch.from_numpy(feats),
                                                     torch.from_numpy(scores), pos)
        if mode == "paper":
            cotrain_freeze(teacher)
            self.trainable = D.wrap(DistillPair(student, teacher), info, fsdp)
        else:
            self.trainable = D.wrap(student, info, fsdp)

    def optim_modules(self) -> dict[str, nn.Module]:
        mods = {"student": self.student}
        if self.mode == "paper":
            mods["teacher"] = self.teacher
        return mods

    def loss(self, batch: dict, amp) -> tuple[torch.Tensor, dict[str, float]]:
        dev = self.info.device
        x, mos = batch["x"].to(dev), batch["label"].to(dev)
        with autocast(dev, amp):
            if self.mode == "paper":
                s, t = self.trainable(x)
            else:
                s = self.trainable(x)
                t = None
        if self.mode in ("frozen", "label-free"):
            rows = torch.tensor([self.pos[int(v)] for v in batch["video"]])
            views = batch["view"].long()
            t = (self.t_scores[rows, views].to(dev), self.t_feats[rows, views].to(dev))
        return distill_loss(self.mode, s, t, None if self.mode == "label-free" else mos)

    def _student_scores(self, x: torch.Tensor) -> torch.Tensor:
        return self.student(x)[0]  # not the pair: evaluation needs no teacher pass

    def evaluate(self, split: str | None = None, model: nn.Module | None = None) -> dict:
        split = split or self.heldout
        if split is None:
            return {}
        ds = self.eval_set if split == self.heldout else EvalWindows(
            self.cache, self.rows, split_videos(self.rows)[split])
        fwd = self._student_scores if model is None else (lambda x: model(x)[0])
        (model or self.trainable).eval()
        preds = predict_videos(fwd, ds, self.cfg.eval_batch_size, self.info,
                               workers=self.cfg.workers)
        return {**video_metrics(preds, self.rows), "split": split}

    def save(self, dirpath: Path, metrics: dict, weights: dict) -> None:
        paper = self.mode == "paper"
        student = D.plain_module(self.student, D.sub_state(weights, "student.") if paper
                                 else weights)
        save_checkpoint(dirpath, student, self.cache.spec.to_dict(), score_scale_for(self.rows),
                        self.provenance, metrics)
        if paper:  # the co-trained teacher, for inspection
            teacher = D.plain_module(self.teacher, D.sub_state(weights, "teacher."))
            save_checkpoint(dirpath.parent / f"{dirpath.name}_teacher", teacher,
                            self.cache.spec.to_dict(), score_scale_for(self.rows),
                            {**self.provenance, "kind": "cotrained-teacher"}, metrics)


def finish_student(task: StudentTask, run_dir: Path, teacher_dir: Path,
                   result: FitResult) -> dict:
    """Held-out metrics of the original teacher and of the best student; report.json."""
    splits = [s for s in ("val", "test") if split_videos(task.rows).get(s)]
    best, _ = load_checkpoint(run_dir / "best")
    teacher, _ = load_checkpoint(teacher_dir)
    best, teacher = best.to(task.info.device), teacher.to(task.info.device)
    epochs = [h["train_seconds"] for h in result.history]
    report = {
        "kind": "student", "mode": task.mode, "teacher_dir": str(teacher_dir),
        "teacher": {s: task.evaluate(s, teacher) for s in splits},
        "student": {s: task.evaluate(s, best) for s in splits},
        "best_epoch": result.best_metrics.get("epoch"),
        "train_seconds": round(result.seconds, 2), "epochs": len(epochs),
        "epoch_train_seconds": round(float(np.mean(epochs)), 3) if epochs else None,
        "teacher_cache_seconds": round(task.teacher_seconds, 2),
    }
    if task.info.is_main:
        atomic_write_json(run_dir / "report.json", report)
        table = [(f"teacher {s}", m) for s, m in report["teacher"].items()]
        table += [(f"student {task.mode} {s}", m) for s, m in report["student"].items()]
        print(print_table(table))
    return report
