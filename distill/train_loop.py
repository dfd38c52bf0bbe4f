"""The training loop, shared by teacher fine-tuning and every distillation mode.

A `Task` says what is trained and how: `trainable` (the module whose parameters the
optimizer sees, DDP-wrapped when distributed), `loss(batch)`, `evaluate()` (held-out
metrics with an "srcc" key, or {} when there is no held-out MOS) and `save(dir, metrics,
weights)` (weights = full state dict of `trainable`, gathered even under FSDP).
Everything else (schedule, clipping, precision, logging, checkpoints, resume) lives
here, once, and reads top-down like nanoGPT's train.py.

Resume is exact: per-item augmentation and the shuffle order are functions of (seed,
epoch), and the global RNGs, optimizer and scheduler are restored from the state saved
at the end of the last finished epoch, so `--resume` after a kill reproduces the weights
and metrics of an uninterrupted run (same machine, same thread count).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.nn as nn
from torch.utils.data import DataLoader, Dataset

from internvqa.runtime.atomic import append_line, repair_torn_tail
from internvqa.runtime.errors import CheckpointError
from internvqa.runtime.workspace import RESUME_STATE

from . import distributed as D
from .data import train_loader
from .train_common import (
    TrainConfig,
    autocast_dtype,
    load_resume_state,
    param_groups,
    rng_state,
    save_resume_state,
    set_rng_state,
    warmup_cosine,
)


class Task(Protocol):
    trainable: nn.Module
    train_set: Dataset

    def optim_modules(self) -> dict[str, nn.Module]: ...
    def loss(self, batch: dict, amp: Any) -> tuple[torch.Tensor, dict[str, float]]: ...
    def evaluate(self) -> dict: ...
    def save(self, dirpath: Path, metrics: dict, weights: dict) -> None: ...


@dataclass
class FitResult:
    best_metrics: dict
    last_metrics: dict
    epochs_run: int
    seconds: float
    history: list[dict] = field(default_factory=list)


def _log(run_dir: Path, info: D.DistInfo, record: dict) -> None:
    if info.is_main:
        append_line(run_dir / "train_log.jsonl", json.dumps(record, sort_keys=True))


def _state_dict(module: nn.Module) -> dict[str, torch.Tensor]:
    return D.full_state_dict(module)


def fit(
    task: Task,
    cfg: TrainConfig,
    run_dir: Path,
    info: D.DistInfo,
    resume: bool = False,
    progress: bool = True,
    run_meta: dict | None = None,
    stop_after_epoch: int | None = None,
    on_epoch_end: Callable[[int], None] | None = None,
) -> FitResult:
    """Train `task` for `cfg.epochs`, evaluating, checkpointing and logging every epoch."""
    run_dir.mkdir(parents=True, exist_ok=True)
    state_path = run_dir / RESUME_STATE
    model = task.trainable
    groups = param_groups(task.optim_modules(), cfg.lr, cfg.weight_decay, cfg.layer_decay)
    params = [p for g in groups for p in g["params"]]
    opt = torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay,
                            betas=(0.9, 0.999))
    n_items = len(task.train_set)
    steps_per_epoch = math.ceil(math.ceil(n_items / info.world) / cfg.batch_size)
    total = steps_per_epoch * cfg.epochs
    warmup = max(1, round(cfg.warmup_epochs * steps_per_epoch))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, warmup_cosine(warmup, total, cfg.min_lr / cfg.lr))
    amp = autocast_dtype(cfg.precision, info.device)
    scaler = torch.amp.GradScaler("cuda", enabled=amp is torch.float16)

    start_epoch, step, best_srcc = 0, 0, -float("inf")
    best_metrics: dict = {}
    last_metrics: dict = {}
    history: list[dict] = []
    if resume and state_path.is_file():
        st = load_resume_state(state_path)
        if st.get("meta") != (run_meta or {}):
            raise CheckpointError(
                f"{state_path} belongs to a different run (model, data or settings differ); "
                "use another --out or drop --resume")
        D.load_full_state(model, st["model"])
        opt.load_state_dict(st["optimizer"])
        sched.load_state_dict(st["scheduler"])
        scaler.load_state_dict(st["scaler"])
        set_rng_state(st["rng"])
        start_epoch, step = int(st["epoch"]), int(st["step"])
        best_srcc = float(st["best_srcc"])
        best_metrics, last_metrics = st["best_metrics"], st["last_metrics"]
        history = list(st["history"])
        repair_torn_tail(run_dir / "train_log.jsonl")
        _log(run_dir, info, {"event": "resume", "epoch": start_epoch, "step": step})
    elif info.is_main:
        (run_dir / "train_log.jsonl").unlink(missing_ok=True)

    t0 = time.perf_counter()
    for epoch in range(start_epoch, cfg.epochs):
        loader: DataLoader = train_loader(task.train_set, cfg.batch_size, cfg.seed, epoch,
                                          cfg.workers, info.rank, info.world)
        model.train()
        te = time.perf_counter()
        bar = _bar(loader, f"epoch {epoch + 1}/{cfg.epochs}", progress and info.is_main)
        running: dict[str, float] = {}
        for batch in bar:
            loss, parts = task.loss(batch, amp)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.unscale_(opt)
            gnorm = float(torch.nn.utils.clip_grad_norm_(params, cfg.clip_grad))
            scaler.step(opt)
            scaler.update()
            sched.step()
            step += 1
            for k, v in {"loss": float(loss.detach()), **parts}.items():
                running[k] = running.get(k, 0.0) + v
            if hasattr(bar, "set_postfix"):
                bar.set_postfix(loss=f"{float(loss.detach()):.4f}")
            if step % cfg.log_every == 0:
                _log(run_dir, info, {"event": "step", "epoch": epoch + 1, "step": step,
                                     "loss": float(loss.detach()), "grad_norm": gnorm,
                                     "lr": opt.param_groups[0]["lr"], **parts})
        n_batches = max(1, len(loader))
        train_seconds = time.perf_counter() - te
        metrics = task.evaluate()
        record = {"event": "epoch", "epoch": epoch + 1, "step": step,
                  "train_seconds": round(train_seconds, 3),
                  **{f"train_{k}": D.all_reduce_mean(v / n_batches) for k, v in running.items()},
                  **{f"val_{k}": v for k, v in metrics.items() if isinstance(v, int | float)}}
        history.append(record)
        _log(run_dir, info, record)
        srcc = metrics.get("srcc", float("nan"))
        improved = srcc > best_srcc if srcc == srcc else not metrics  # no MOS: keep last
        last_metrics = metrics
        weights = _state_dict(model)  # collective under FSDP: every rank
        if info.is_main:
            task.save(run_dir / "last", {**metrics, "epoch": epoch + 1}, weights)
            if improved:
                best_srcc = srcc if srcc == srcc else best_srcc
                best_metrics = {**metrics, "epoch": epoch + 1}
                task.save(run_dir / "best", best_metrics, weights)
            save_resume_state(state_path, {
                "meta": run_meta or {}, "model": weights, "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(), "scaler": scaler.state_dict(),
                "rng": rng_state(), "epoch": epoch + 1, "step": step,
                "best_srcc": best_srcc, "best_metrics": best_metrics,
                "last_metrics": last_metrics, "history": history,
            })
        else:
            best_srcc = max(best_srcc, srcc) if srcc == srcc else best_srcc
        D.barrier()
        if on_epoch_end is not None:
            on_epoch_end(epoch + 1)
        if stop_after_epoch is not None and epoch + 1 >= stop_after_epoch:
            break
    return FitResult(best_metrics, last_metrics, len(history), time.perf_counter() - t0,
                     history)


def _bar(loader, desc: str, enabled: bool):
    if not enabled:
        return loader
    from tqdm import tqdm

    return tqdm(loader, desc=desc, leave=False, dynamic_ncols=True)
