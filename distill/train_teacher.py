"""Teacher fine-tuning: InternVideo2 + attention pool + regression head, MSE to MOS / 100.

GPU recipe (`--preset paper`, REFERENCE section 1): `internvideo2_1b`, clip spec
`PRESETS["paper"]` (8 frames 8 apart, 224x224), bf16 autocast, AdamW lr 1e-5 (the public
1B fine-tune recipe), weight decay 0.05, layer decay 0.9, batch 8, 3 epochs, 1 warm-up
epoch, cosine to 1e-6, drop_path 0.3, gradient checkpointing on 6 blocks, grad clip 1.0:

    vqa-distill teacher --manifest M --preset paper --init 1B_ft_k710_ft_k400_f8.pth
    torchrun --nproc_per_node 8 -m internvqa.distill.cli teacher --manifest M \\
        --preset paper --init ... --fsdp          # 1B/6B across GPUs

CPU demo (`--preset demo`): the small `internvideo2_cpu` teacher from random init on the
demo clip spec; see `DEMO` for the settings and benchmarks/RESULTS.md for what it reaches.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn as nn

from internvqa.runtime.atomic import atomic_write_json
from internvqa.runtime.clipspec import PRESETS, ClipSpec
from internvqa.runtime.errors import UsageError
from internvqa.runtime.manifest import ManifestRow
from internvqa.runtime.workspace import BEST, TEACHER_PREDICTIONS, write_teacher_predictions

from . import distributed as D
from .checkpoint import load_official_weights, save_checkpoint
from .data import EvalWindows, TrainWindows, WindowCache, heldout_split, split_videos
from .losses import score_loss
from .models import create_model
from .models.pretrained import is_pretrained_import, load_imported_backbone
from .models.registry import TIMM_PREFIX
from .train_common import TrainConfig, autocast, print_table, score_scale_for
from .train_eval import predict_videos, video_metrics
from .train_loop import FitResult


@dataclass
class TeacherPreset:
    model: str
    clip: ClipSpec
    train: TrainConfig
    drop_path: float
    grad_ckpt_blocks: int = 0
    model_overrides: dict = field(default_factory=dict)


PAPER = TeacherPreset(
    model="internvideo2_1b", clip=PRESETS["paper"], drop_path=0.3, grad_ckpt_blocks=6,
    train=TrainConfig(epochs=3, batch_size=8, lr=1e-5, min_lr=1e-6, weight_decay=0.05,
                      warmup_epochs=1.0, layer_decay=0.9, precision="bf16", workers=8),
)
# The CPU demo trains on 56x56 crops (4x fewer tokens than PRESETS["demo"]'s 112) so
# teacher + student fit a few minutes on two cores; the spec travels in the checkpoint.
# Evaluation (and the runtime, via the spec) averages three crops along the long side:
# one 56x56 centre crop sees ~11% of a 224x128 frame and made held-out SRCC very noisy.
DEMO_CLIP = PRESETS["demo"].replace(size=56, crop="three")
DEMO = TeacherPreset(
    model="internvideo2_cpu", clip=DEMO_CLIP, drop_path=0.0,
    # From random init (no official weights offline): LayerScale 0.1 instead of 1e-5 so
    # the blocks contribute from the first steps, and no layer decay. A narrower, shallower
    # config with 8x8 patches (finer than 14x14, for blur/blocking cues) trains ~3x faster
    # per step than the registry's internvideo2_cpu, and lr 5e-4 instead of 1e-3 (which
    # spiked). Measured in benchmarks/RESULTS.md; still far from the paper's SRCC.
    model_overrides={"init_values": 0.1, "depth": 4, "embed_dim": 192, "num_heads": 3,
                     "mlp_hidden_dim": 768, "patch_size": 8},
    train=TrainConfig(epochs=12, batch_size=16, lr=5e-4, min_lr=1e-6, weight_decay=0.05,
                      warmup_epochs=1.0, layer_decay=1.0, per_video=2, precision="fp32"),
)
# A pretrained CNN (`vqa-distill import efficientnet-lite0`) fine-tuned end to end on the
# corpus's per-window libvmaf VMAF, sized for 2 CPU cores. Native-scale 224 px crops (no
# resize: compression artefacts are fine-grained), 4 frames 6 apart, one window every 24
# frames (two training windows per 48-frame standard-corpus clip; at run time 12 crops of
# 224 px per second of 24 fps video), three crops along the long side when scoring.
# Labels only, no teacher: it is also the "labels-only" baseline students must beat.
CPU_CLIP = ClipSpec(num_frames=4, frame_stride=6, window_stride=24, size=224,
                    resize_short=None, crop="three")
CPU = TeacherPreset(
    model="timm:tf_efficientnet_lite0", clip=CPU_CLIP, drop_path=0.1,
    train=TrainConfig(epochs=3, batch_size=8, lr=5e-4, min_lr=1e-6, weight_decay=0.01,
                      warmup_epochs=0.2, layer_decay=1.0, per_video=1, precision="fp32",
                      log_every=20),
)
TEACHER_PRESETS = {"paper": PAPER, "demo": DEMO, "cpu": CPU}


class TeacherTask:
    """What `fit` trains for the teacher: one regression model, MSE to MOS / 100."""

    def __init__(self, model: nn.Module, cache: WindowCache, rows: list[ManifestRow],
                 cfg: TrainConfig, info: D.DistInfo, provenance: dict, fsdp: bool = False):
        self.model, self.rows, self.cfg, self.info = model, rows, cfg, info
        self.provenance, self.cache = provenance, cache
        splits = split_videos(rows)
        self.heldout = heldout_split(splits)
        self.train_set = TrainWindows(cache, rows, splits["train"], seed=cfg.seed,
                                      per_video=cfg.per_video)
        self.eval_set = (EvalWindows(cache, rows, splits[self.heldout])
                         if self.heldout else None)
        self.trainable = D.wrap(model, info, fsdp)

    def optim_modules(self) -> dict[str, nn.Module]:
        return {"teacher": self.model}

    @property
    def hybrid(self) -> bool:
        """A model with the bitstream side input (`--side`): it is fed each window's side."""
        return bool(getattr(getattr(self.model, "cfg", None), "side_dim", 0))

    def loss(self, batch: dict, amp) -> tuple[torch.Tensor, dict[str, float]]:
        args = [batch["x"].to(self.info.device)]
        if self.hybrid:
            args.append(batch["side"].to(self.info.device))
        with autocast(self.info.device, amp):
            score, _ = self.trainable(*args)
        loss = score_loss(score, batch["label"].to(self.info.device))
        return loss, {"mse": float(loss.detach())}

    def scores(self, x: torch.Tensor, side: torch.Tensor | None = None) -> torch.Tensor:
        return self.trainable(x, side)[0] if self.hybrid else self.trainable(x)[0]

    def evaluate(self, split: str | None = None) -> dict:
        split = split or self.heldout
        if split is None:
            return {}
        ds = self.eval_set if split == self.heldout else EvalWindows(
            self.cache, self.rows, split_videos(self.rows)[split])
        self.trainable.eval()
        preds = predict_videos(self.scores, ds, self.cfg.eval_batch_size, self.info,
                               workers=self.cfg.workers, with_side=self.hybrid)
        self.last_preds = preds
        return {**video_metrics(preds, self.rows), "split": split}

    def save(self, dirpath: Path, metrics: dict, weights: dict) -> None:
        save_checkpoint(dirpath, D.plain_module(self.model, weights), self.cache.spec.to_dict(),
                        score_scale_for(self.rows), self.provenance, metrics)


def build_teacher(name: str, spec: ClipSpec, drop_path: float, init: str | None,
                  freeze_blocks: int, grad_ckpt_blocks: int,
                  overrides: dict | None = None) -> tuple[nn.Module, str | None]:
    """The teacher at the clip spec's size, optional official init, frozen early blocks."""
    model = create_model(name, img_size=spec.size, num_frames=spec.num_frames,
                         drop_path_rate=drop_path, **(overrides or {}))
    summary = None
    if init and (name.startswith(TIMM_PREFIX) or is_pretrained_import(init)):  # an import
        summary = load_imported_backbone(model, init)
    elif init:
        summary = load_official_weights(model, init, side="teacher").summary()
    if freeze_blocks:
        blocks = getattr(model, "blocks", None)
        if blocks is None or freeze_blocks > len(blocks):
            raise UsageError(f"--freeze-blocks {freeze_blocks}: {name} has "
                             f"{len(blocks) if blocks is not None else 0} blocks")
        for blk in blocks[:freeze_blocks]:
            blk.requires_grad_(False)
    if grad_ckpt_blocks:
        model.set_grad_checkpointing(True, grad_ckpt_blocks)
    if name.startswith(TIMM_PREFIX):  # NHWC weights to match the NHWC training input
        model = model.to(memory_format=torch.channels_last)
    return model, summary


def write_predictions(path: Path, preds: dict[int, float], rows: list[ManifestRow]) -> None:
    """`path, mos, pred, split` per held-out video, pred on the 0-100 MOS scale."""
    write_teacher_predictions(path, [(str(rows[v].abspath), rows[v].mos, p * 100.0, rows[v].split)
                                     for v, p in sorted(preds.items())])


def finish_teacher(task: TeacherTask, run_dir: Path, result: FitResult) -> dict:
    """Reload best weights, score every held-out split, write predictions and report."""
    from .checkpoint import load_checkpoint

    best, _ = load_checkpoint(run_dir / "best")
    D.load_full_state(task.model, best.state_dict())
    splits = split_videos(task.rows)
    report: dict = {"kind": "teacher", "heldout": {}, "train_seconds": round(result.seconds, 2),
                    "best_epoch": result.best_metrics.get("epoch")}
    preds: dict[int, float] = {}
    for split in ("val", "test"):
        if splits.get(split):
            report["heldout"][split] = task.evaluate(split)
            preds.update(task.last_preds)
    if task.info.is_main:
        if preds:
            write_predictions(run_dir / BEST / TEACHER_PREDICTIONS, preds, task.rows)
        atomic_write_json(run_dir / "report.json", report)
        print(print_table([(f"teacher {s}", m) for s, m in report["heldout"].items()]))
    return report
