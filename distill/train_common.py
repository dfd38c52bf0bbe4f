"""Pieces every training run shares: config, optimizer, schedule, precision, run folder, state.

Run folder (`<work>/runs/<kind>-<model>/` unless `--out`):

    best/              project checkpoint with the best held-out SRCC (config.json says so)
    last/              project checkpoint after the latest epoch
    resume_state.pt    weights of everything trainable, optimizer, scheduler, RNG states,
                       epoch, step, best SRCC; rewritten atomically after every epoch
    train_log.jsonl    one JSON line per `log_every` steps and per epoch (append_line)
    report.json        held-out metrics at the end

`resume_state.pt` holds tensors and plain Python values only, so it loads with
`torch.load(weights_only=True)`: numpy's RNG state is stored as a tensor plus ints.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import math
import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from internvqa.runtime.atomic import atomic_write_bytes
from internvqa.runtime.bundle import DEFAULT_SCORE_SCALE, VMAF_SCORE_SCALE
from internvqa.runtime.errors import CheckpointError, UsageError
from internvqa.runtime.workspace import run_dir

# The one score-scale definition lives with the bundle format (runtime); checkpoints carry
# the same dict so export copies it unchanged.
SCORE_SCALE = DEFAULT_SCORE_SCALE


def score_scale_for(rows) -> dict:
    """The VMAF scale when every labelled row's MOS is its libvmaf `vmaf`, else MOS."""
    labelled = [r for r in rows if r.mos is not None]
    try:
        vmaf = bool(labelled) and all(abs(float(r.extra["vmaf"]) - r.mos) < 1e-6
                                      for r in labelled)
    except (KeyError, ValueError):
        vmaf = False
    return dict(VMAF_SCORE_SCALE if vmaf else SCORE_SCALE)


@dataclass
class TrainConfig:
    """Optimisation settings shared by teacher fine-tuning and distillation."""

    epochs: int = 10
    batch_size: int = 8
    lr: float = 1e-3
    min_lr: float = 1e-6
    weight_decay: float = 0.05
    warmup_epochs: float = 1.0
    layer_decay: float = 0.75
    clip_grad: float = 1.0
    per_video: int = 1  # training views per video and epoch
    seed: int = 0
    workers: int = 0
    precision: str = "auto"  # auto | fp32 | bf16 | fp16
    log_every: int = 10
    eval_batch_size: int = 16

    def to_dict(self) -> dict:
        return asdict(self)


# ---------------------------------------------------------------------------- optimizer
def layer_id(name: str, depth: int) -> int:
    """0 for embeddings, i + 1 for blocks.i, depth + 1 for pooling/head (and non-ViTs)."""
    if name.startswith(("patch_embed.", "cls_token", "pos_embed")):
        return 0
    if name.startswith("blocks."):
        return int(name.split(".")[1]) + 1
    return depth + 1


def param_groups(
    modules: dict[str, nn.Module], lr: float, weight_decay: float, layer_decay: float
) -> list[dict]:
    """AdamW groups with layer-wise lr decay (lr * decay^(depth + 1 - layer)).

    Biases, norms, position embeddings and tokens get no weight decay. Models without
    a top-level `blocks` list (timm students) get one lr. Frozen params are left out.
    """
    groups: dict[tuple, dict] = {}
    for prefix, module in modules.items():
        blocks = getattr(module, "blocks", None)
        depth = len(blocks) if isinstance(blocks, nn.ModuleList) else 0
        skip = set(getattr(module, "no_weight_decay", lambda: set())())
        for name, p in module.named_parameters():
            if not p.requires_grad:
                continue
            lid = layer_id(name, depth) if depth else 0
            scale = layer_decay ** (depth + 1 - lid) if depth else 1.0
            no_wd = p.ndim <= 1 or name in skip or name.endswith(".bias")
            key = (prefix, lid, no_wd)
            g = groups.setdefault(key, {"params": [], "lr": lr * scale, "lr_scale": scale,
                                        "weight_decay": 0.0 if no_wd else weight_decay,
                                        "name": f"{prefix}/layer{lid}/{'no_wd' if no_wd else 'wd'}"})
            g["params"].append(p)
    if not groups:
        raise UsageError("nothing to train: every parameter is frozen")
    return list(groups.values())


def warmup_cosine(warmup_steps: int, total_steps: int, min_ratio: float):
    """lr multiplier: linear warm-up from ~0 to 1, then cosine down to `min_ratio`."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        t = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * min(1.0, t)))

    return factor


# ---------------------------------------------------------------------------- precision
def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """None = fp32. 'auto' is bf16 on a CUDA GPU that has it, else fp16 there, fp32 on CPU."""
    if precision == "fp32":
        return None
    if precision == "auto":
        if device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if precision in ("bf16", "fp16"):
        return torch.bfloat16 if precision == "bf16" else torch.float16
    raise UsageError(f"unknown precision {precision!r} (auto, fp32, bf16, fp16)")


def autocast(device: torch.device, dtype: torch.dtype | None):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


# ---------------------------------------------------------------------------- RNG state
def rng_state() -> dict[str, Any]:
    """Global RNG states as tensors and plain values (loadable with weights_only=True)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    py = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "gauss": float(gauss)},
        "python": {"version": py[0], "state": torch.tensor(py[1], dtype=torch.int64),
                   "gauss": py[2]},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"],
                         n["has_gauss"], n["gauss"]))
    p = state["python"]
    random.setstate((p["version"], tuple(int(v) for v in p["state"].tolist()), p["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# ---------------------------------------------------------------------------- run folder
def default_run_dir(kind: str, model: str) -> Path:
    return run_dir(kind, model)  # <work>/runs/<kind>-<model>: the workspace's naming


def save_resume_state(path: Path, state: dict[str, Any]) -> None:
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write_bytes(path, buf.getvalue())


def load_resume_state(path: Path) -> dict[str, Any]:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the same user problem
        raise CheckpointError(f"cannot read resume state {path}: {exc}") from None


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def print_table(rows: list[tuple[str, dict]], keys=("srcc", "krcc", "plcc_linear", "rmse")) -> str:
    """A small fixed-width table of metrics, one model per row."""
    head = f"{'model':<28}" + "".join(f"{k:>13}" for k in keys)
    lines = [head, "-" * len(head)]
    for name, m in rows:
        cells = "".join(
            f"{m[k]:>13.4f}" if isinstance(m.get(k), int | float) else f"{'-':>13}" for k in keys
        )
        lines.append(f"{name:<28}{cells}")
    return "\n".join(lines)
