"""`vqa-distill teacher` and `vqa-distill student`: the command-line faces of training.

Both run unchanged under `torchrun --nproc_per_node N` (DDP; `--fsdp` for big teachers).
Options left unset take the preset's value (`--preset demo` for CPU, `paper` for GPUs).
User errors are one line `error: ...` and exit code 2.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import click
import torch

from internvqa.runtime.cli_common import Command
from internvqa.runtime.clipspec import PRESETS, ClipSpec
from internvqa.runtime.errors import ManifestError, UsageError
from internvqa.runtime.manifest import ManifestRow, read_manifest
from internvqa.runtime.workspace import WEIGHTS_FILE

from . import distributed as D
from .data import build_window_cache
from .train_common import TrainConfig, default_run_dir, seed_everything, sha256_file

VIDEO_EXTS = (".mp4", ".mkv", ".webm", ".mov", ".avi", ".y4m", ".ivf", ".ts", ".m4v")


def _train_options(fn):
    """Optimisation options shared by both commands (None = the preset's value)."""
    opts = [
        click.option("--epochs", type=int), click.option("--lr", type=float),
        click.option("--min-lr", type=float), click.option("--batch-size", type=int),
        click.option("--weight-decay", type=float), click.option("--warmup-epochs", type=float),
        click.option("--layer-decay", type=float), click.option("--clip-grad", type=float),
        click.option("--per-video", type=int, help="Training views per video and epoch."),
        click.option("--workers", type=int, help="DataLoader worker processes."),
        click.option("--precision", type=click.Choice(["auto", "fp32", "bf16", "fp16"])),
        click.option("--seed", type=int, default=0, show_default=True),
        click.option("--log-every", type=int, help="Log a train_log.jsonl line every N steps."),
        click.option("--out", type=click.Path(path_type=Path),
                     help="Run folder (default <work>/runs/<kind>-<model>)."),
        click.option("--resume", is_flag=True, help="Continue from <out>/resume_state.pt."),
        click.option("--fsdp", is_flag=True, help="FSDP2-shard the model (multi-GPU torchrun)."),
        click.option("--threads", type=int, help="torch CPU threads."),
        click.option("--no-progress", is_flag=True, help="No tqdm bar."),
        click.option("--stop-after-epoch", type=int, hidden=True,
                     help="Stop (resumably) after this epoch; the schedule keeps --epochs."),
    ]
    for o in reversed(opts):
        fn = o(fn)
    return fn


def _config(base: TrainConfig, kw: dict) -> TrainConfig:
    d = base.to_dict()
    for k in d:
        if kw.get(k) is not None:
            d[k] = kw[k]
    cfg = TrainConfig(**d)
    if cfg.epochs < 1 or cfg.batch_size < 1 or cfg.per_video < 1 or cfg.lr <= 0:
        raise UsageError("--epochs, --batch-size, --per-video must be >= 1 and --lr > 0")
    return cfg


def load_rows(manifest: Path | None, videos: Path | None = None) -> tuple[list[ManifestRow], dict]:
    """Manifest rows (or every video file of a folder, label-free) and their provenance."""
    if (manifest is None) == (videos is None):
        raise UsageError("give exactly one of --manifest or --videos")
    if manifest is not None:
        rows = read_manifest(manifest)
        if not rows:
            raise ManifestError(f"{manifest}: no videos")
        return rows, {"manifest": str(Path(manifest).resolve()),
                      "manifest_sha256": sha256_file(manifest)}
    files = sorted(p for p in Path(videos).rglob("*") if p.suffix.lower() in VIDEO_EXTS)
    if not files:
        raise ManifestError(f"{videos}: no video files ({', '.join(VIDEO_EXTS)})")
    rows = [ManifestRow(path=str(p.resolve()), mos=None, source=p.stem, split="train")
            for p in files]
    listing = "\n".join(str(p) for p in files).encode()
    return rows, {"videos": str(Path(videos).resolve()),
                  "videos_sha256": hashlib.sha256(listing).hexdigest()}


def prepare(threads: int | None, seed: int) -> D.DistInfo:
    if threads:
        torch.set_num_threads(threads)
    info = D.setup()
    seed_everything(seed)
    return info


def cached_windows(rows, spec, info: D.DistInfo, progress: bool):
    """Rank 0 decodes (once, reused by later runs); the other ranks wait and read."""
    if info.is_main:
        cache = build_window_cache(rows, spec, progress=progress)
    D.barrier()
    if not info.is_main:
        cache = build_window_cache(rows, spec)
    return cache


def _run(body, **kw) -> None:
    """Run a command body (its errors are reported by `cli_common.Command`).

    On success every rank meets at a barrier before the process group is destroyed: a
    rank that tore gloo down while rank 0 was still writing its report aborted now and
    then ("terminate called without an active exception", ~1 run in 7 here).
    """
    try:
        body(**kw)
        D.barrier()
    finally:
        D.teardown()


# ---------------------------------------------------------------------------- teacher
@click.command("teacher", cls=Command)
@click.option("--manifest", required=True, type=click.Path(path_type=Path),
              help="Manifest CSV with MOS and splits.")
@click.option("--model", help="Teacher architecture (default: the preset's).")
@click.option("--init", type=click.Path(path_type=Path),
              help="Weights to start from: official InternVideo2 weights (any layout), or "
                   "for a timm:<name> model a `vqa-distill import` folder.")
@click.option("--preset", type=click.Choice(["demo", "paper", "cpu"]), default="demo",
              show_default=True,
              help="demo: small random-init InternVideo2 (minutes); paper: internvideo2_1b on "
                   "GPUs; cpu: pretrained EfficientNet-Lite0 (--init from `vqa-distill import "
                   "efficientnet-lite0`) fine-tuned on VMAF on 2 cores.")
@click.option("--clip-spec", "clip_spec",
              help="Clip spec: a runtime preset name, a JSON object or a JSON file "
                   "(default: the preset's).")
@click.option("--freeze-blocks", type=int, default=0, help="Freeze blocks 0..N-1.")
@click.option("--drop-path", type=float)
@click.option("--grad-checkpointing", is_flag=True,
              help="Recompute activations in backward (preset's block count, else all).")
@click.option("--side", is_flag=True,
              help="Hybrid model (timm:<name> only): the head also reads each window's "
                   "bitstream side input (bits per pixel, codec, coded/display size), trained "
                   "jointly with the pixels; see also `vqa-distill hybrid`.")
@_train_options
def teacher_command(**kw) -> None:
    """Fine-tune the InternVideo2 teacher on MOS (MSE to MOS/100); keeps the best by SRCC."""
    _run(_teacher, **kw)


def parse_clip_spec(text: str | None, default: ClipSpec) -> ClipSpec:
    """`--clip-spec`: a runtime preset name, inline JSON, or a JSON file."""
    if not text:
        return default
    if text in PRESETS:
        return PRESETS[text]
    try:
        raw = text if text.lstrip().startswith("{") else Path(text).read_text(encoding="utf-8")
        return ClipSpec.from_dict(json.loads(raw))
    except (OSError, ValueError, TypeError) as exc:
        raise UsageError(f"--clip-spec {text!r}: {exc}") from None


def _teacher(manifest, model, init, preset, clip_spec, freeze_blocks, drop_path,
             grad_checkpointing, side, out, resume, fsdp, threads, no_progress,
             stop_after_epoch, **kw) -> None:
    from .train_loop import fit
    from .train_teacher import TEACHER_PRESETS, TeacherTask, build_teacher, finish_teacher

    p = TEACHER_PRESETS[preset]
    cfg = _config(p.train, kw)
    info = prepare(threads, cfg.seed)
    rows, prov = load_rows(manifest)
    name = model or p.model
    ckpt_blocks = (p.grad_ckpt_blocks or 10**6) if grad_checkpointing else 0
    spec = parse_clip_spec(clip_spec, p.clip)
    overrides = dict(p.model_overrides or {}) if name == p.model else {}
    if side:
        from internvqa.runtime.bitstream import SIDE_DIM

        from .models.registry import TIMM_PREFIX

        if not name.startswith(TIMM_PREFIX):
            raise UsageError("--side: the hybrid head exists for timm:<name> models only")
        overrides["side_dim"] = SIDE_DIM
    net, load_summary = build_teacher(name, spec, p.drop_path if drop_path is None
                                      else drop_path, str(init) if init else None,
                                      freeze_blocks, ckpt_blocks, overrides or None)
    if load_summary and info.is_main:
        click.echo(f"init: {load_summary}")
    net = net.to(info.device)
    cache = cached_windows(rows, spec, info, not no_progress)
    run_dir = Path(out) if out else default_run_dir("teacher", name)
    provenance = {**prov, "kind": "teacher", "model": name, "preset": preset,
                  "init": str(init) if init else None, "freeze_blocks": freeze_blocks,
                  "side": bool(side), "train": cfg.to_dict(), "world_size": info.world,
                  "torch": torch.__version__}
    task = TeacherTask(net, cache, rows, cfg, info, provenance, fsdp)
    meta = {"model": name, "data": prov, "train": cfg.to_dict(), "world": info.world,
            "freeze_blocks": freeze_blocks, "init": str(init) if init else None,
            "clip_spec": spec.to_dict()}
    result = fit(task, cfg, run_dir, info, resume=resume, progress=not no_progress,
                 run_meta=meta, stop_after_epoch=stop_after_epoch)
    if result.epochs_run < cfg.epochs and stop_after_epoch:
        return
    finish_teacher(task, run_dir, result)
    if info.is_main:
        click.echo(f"teacher run: {run_dir}")


# ---------------------------------------------------------------------------- student
@click.command("student", cls=Command)
@click.option("--student", "student_name", default="vit_s", show_default=True,
              help="Student: vit_s, vit_b, vit_l, vit_tiny or timm:<name>.")
@click.option("--teacher", "teacher_dir", required=True, type=click.Path(path_type=Path),
              help="Fine-tuned teacher checkpoint dir (e.g. <work>/runs/teacher-*/best), or "
                   "`default` for the teacher shipped with the package. "
                   "--mode labels needs it too: the student takes the teacher's clip spec "
                   "and its report compares the two.")
@click.option("--mode", type=click.Choice(["paper", "frozen", "label-free", "labels"]),
              default="paper", show_default=True)
@click.option("--manifest", type=click.Path(path_type=Path),
              help="Manifest (MOS optional for --mode label-free).")
@click.option("--videos", type=click.Path(path_type=Path, file_okay=False),
              help="Folder of videos, label-free only (instead of --manifest).")
@click.option("--preset", type=click.Choice(["demo", "paper"]), default="demo",
              show_default=True)
@click.option("--views", type=int, default=4, show_default=True,
              help="Fixed views per video whose teacher outputs are cached (frozen, label-free).")
@click.option("--drop-path", type=float, default=0.0, show_default=True)
@click.option("--grad-checkpointing", is_flag=True, help="Recompute student activations.")
@click.option("--init", "student_init", type=click.Path(path_type=Path),
              help="Start the student's backbone from a `vqa-distill import` folder (e.g. "
                   "ImageNet MobileNetV2 for --student timm:mobilenetv2_100).")
@_train_options
def student_command(**kw) -> None:
    """Distill the teacher into a student (InternVQA loss by default); keeps the best by SRCC."""
    _run(_student, **kw)


def _student(student_name, teacher_dir, mode, manifest, videos, preset, views, drop_path,
             grad_checkpointing, student_init, out, resume, fsdp, threads, no_progress,
             stop_after_epoch, **kw) -> None:
    from .checkpoint import load_checkpoint
    from .train_loop import fit
    from .train_student import (
        STUDENT_OVERRIDES,
        STUDENT_PRESETS,
        StudentTask,
        build_student,
        finish_student,
    )

    if videos is not None and mode != "label-free":
        raise UsageError("--videos (no MOS) works with --mode label-free only")
    if views < 1:
        raise UsageError("--views must be >= 1")
    cfg = _config(STUDENT_PRESETS[preset], kw)
    info = prepare(threads, cfg.seed)
    rows, prov = load_rows(manifest, videos)
    if str(teacher_dir) == "default":
        from .checkpoint import default_teacher

        teacher_dir = default_teacher()
        if teacher_dir is None:
            raise UsageError("--teacher default: this install ships no teacher checkpoint")
    teacher, tconf = load_checkpoint(teacher_dir, map_location=info.device)
    spec = ClipSpec.from_dict(tconf["clip_spec"])
    student = build_student(student_name, spec, drop_path, STUDENT_OVERRIDES[preset])
    if student_init is not None:
        from .models.pretrained import load_imported_backbone

        summary = load_imported_backbone(student, str(student_init))
        if info.is_main:
            click.echo(f"student init: {summary}")
    student = student.to(info.device)
    if grad_checkpointing:
        student.set_grad_checkpointing(True)
    cache = cached_windows(rows, spec, info, not no_progress)
    default_name = student_name if mode == "paper" else f"{student_name}-{mode}"
    run_dir = Path(out) if out else default_run_dir("student", default_name)
    teacher_sha = sha256_file(Path(teacher_dir) / WEIGHTS_FILE)
    provenance = {**prov, "kind": "student", "model": student_name, "mode": mode,
                  "teacher": str(Path(teacher_dir).resolve()), "teacher_sha256": teacher_sha,
                  "teacher_model": tconf["model"]["architecture"], "views": views,
                  "student_init": str(student_init) if student_init else None,
                  "train": cfg.to_dict(), "world_size": info.world, "torch": torch.__version__}
    task = StudentTask(mode, student, teacher, Path(teacher_dir), cache, rows, cfg, info,
                       provenance, views, fsdp)
    meta = {"student": student_name, "mode": mode, "teacher_sha256": teacher_sha,
            "data": prov, "train": cfg.to_dict(), "world": info.world, "views": views}
    result = fit(task, cfg, run_dir, info, resume=resume, progress=not no_progress,
                 run_meta=meta, stop_after_epoch=stop_after_epoch)
    if result.epochs_run < cfg.epochs and stop_after_epoch:
        return
    finish_student(task, run_dir, Path(teacher_dir), result)
    if info.is_main:
        click.echo(f"student run: {run_dir}")


# ---------------------------------------------------------------------------- hybrid
@click.command("hybrid", cls=Command)
@click.option("--from", "checkpoint", required=True, type=click.Path(path_type=Path),
              help="A trained pixel model's checkpoint folder (timm:<backbone>, e.g. RUN/best).")
@click.option("--manifest", required=True, type=click.Path(path_type=Path),
              help="Manifest CSV with MOS and splits (the corpus the pixel model was trained on).")
@click.option("--out", required=True, type=click.Path(path_type=Path),
              help="Run folder: <out>/best (checkpoint) and <out>/report.json.")
@click.option("--epochs", type=int, default=30, show_default=True)
@click.option("--lr", type=float, default=1e-3, show_default=True)
@click.option("--weight-decay", type=float, default=0.05, show_default=True)
@click.option("--batch-size", type=int, default=256, show_default=True)
@click.option("--side-hidden", type=int, default=32, show_default=True,
              help="Width of the fusion MLP.")
@click.option("--side-drop", type=float, default=0.25, show_default=True,
              help="Chance a training row sees no bitstream input (trains pixel-only mode).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--threads", type=int, help="torch CPU threads.")
def hybrid_command(**kw) -> None:
    """Add the bitstream head to a pixel model: the file's bits per pixel, codec and coded
    resolution are fused with the frozen pixel features (one cached pass over the corpus,
    then seconds per epoch). Reports hybrid and pixel-only figures on every split."""
    _run(_hybrid, **kw)


def _hybrid(checkpoint, manifest, out, epochs, lr, weight_decay, batch_size, side_hidden,
            side_drop, seed, threads) -> None:
    from .data import work_dir
    from .train_hybrid import train_hybrid

    if threads:
        torch.set_num_threads(threads)
    if not 0.0 <= side_drop < 1.0:
        raise UsageError("--side-drop must be in [0, 1)")
    if epochs < 1 or batch_size < 1 or lr <= 0:
        raise UsageError("--epochs and --batch-size must be >= 1 and --lr > 0")
    rows, prov = load_rows(manifest)
    prov["command"] = " ".join(["vqa-distill", *sys.argv[1:]])
    train_hybrid(Path(checkpoint), rows, Path(out), work_dir(), epochs=epochs, lr=lr,
                 weight_decay=weight_decay, batch_size=batch_size, side_hidden=side_hidden,
                 side_drop=side_drop, seed=seed, log=lambda m: click.echo(m, err=True),
                 provenance=prov)
