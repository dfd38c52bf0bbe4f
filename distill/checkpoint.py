"""Checkpoint IO: the project's own format, and official InternVideo2 weights.

Project checkpoint = a directory with `model.safetensors` + `config.json`:

    {"format": "internvqa-checkpoint", "format_version": 1, "model": model_config(model),
     "dtype": "float32", "clip_spec": {...}, "score_scale": {...}, "provenance": {...},
     "metrics": {...}}

It is written atomically and read with safetensors only: our own files never need pickle.

Official weights (`load_official_weights`) are pickles in several layouts (REFERENCE
section 2). Following timm's `checkpoint_filter_fn`, each foreign layout has one small
`_convert_*` function that maps its keys onto ours; `_filter_state_dict` then drops what
the model does not have, resizes position embeddings, casts dtypes and checks shapes.
Unlike the official loaders nothing is silent: a `LoadReport` lists every key's fate, and
a shape mismatch is an error naming the key.
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from internvqa.runtime.atomic import atomic_directory, atomic_write_json
from internvqa.runtime.errors import CheckpointError, UsageError
from internvqa.runtime.workspace import CHECKPOINT_FORMAT, CONFIG_FILE, WEIGHTS_FILE

from .models.pos_embed import infer_grid, resize_pos_embed, resize_spatial, resize_temporal
from .models.registry import create_from_config, model_config

FORMAT = CHECKPOINT_FORMAT
FORMAT_VERSION = 1

StateDict = dict[str, torch.Tensor]


# --------------------------------------------------------------------------- project format
def _unshared(state: Mapping[str, torch.Tensor]) -> StateDict:
    """Contiguous tensors, cloning any that share storage (safetensors refuses aliasing)."""
    seen: set[int] = set()
    out: StateDict = {}
    for k, v in state.items():
        v = v.detach().contiguous()
        ptr = v.untyped_storage().data_ptr()
        out[k] = v.clone() if ptr in seen and v.numel() else v
        seen.add(ptr)
    return out


def _model_dtype(model: nn.Module) -> torch.dtype:
    for p in model.parameters():
        return p.dtype
    return torch.float32


def save_checkpoint(
    dirpath: str | Path,
    model: nn.Module,
    clip_spec: dict,
    score_scale: dict,
    provenance: dict | None = None,
    metrics: dict | None = None,
) -> Path:
    """Write `dirpath/{model.safetensors, config.json}`; a crash leaves the old dir intact."""
    config = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model": model_config(model),
        "dtype": str(_model_dtype(model)).removeprefix("torch."),
        "clip_spec": dict(clip_spec),
        "score_scale": dict(score_scale),
        "provenance": dict(provenance or {}),
        "metrics": dict(metrics or {}),
    }
    try:
        json.dumps(config)
    except TypeError as exc:
        raise CheckpointError(f"checkpoint config is not JSON-serialisable: {exc}") from exc
    dirpath = Path(dirpath)
    with atomic_directory(dirpath) as tmp:
        save_file(
            _unshared(model.state_dict()), str(tmp / WEIGHTS_FILE), metadata={"format": FORMAT}
        )
        atomic_write_json(tmp / CONFIG_FILE, config)
    return dirpath


def read_checkpoint_config(dirpath: str | Path) -> dict:
    """The validated `config.json` of a project checkpoint."""
    dirpath = Path(dirpath)
    if not dirpath.is_dir():
        raise CheckpointError(f"checkpoint directory not found: {dirpath}")
    for name in (CONFIG_FILE, WEIGHTS_FILE):
        if not (dirpath / name).is_file():
            raise CheckpointError(f"checkpoint {dirpath} has no {name}")
    try:
        config = json.loads((dirpath / CONFIG_FILE).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{dirpath / CONFIG_FILE} is not valid JSON: {exc}") from exc
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise CheckpointError(f"{dirpath} is not an InternVQA checkpoint (format != {FORMAT!r})")
    if config.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{dirpath}: checkpoint format_version {config.get('format_version')} is not supported "
            f"(this version reads {FORMAT_VERSION})"
        )
    if not isinstance(config.get("model"), dict) or "architecture" not in config["model"]:
        raise CheckpointError(f"{dirpath / CONFIG_FILE} has no model architecture")
    return config


def load_checkpoint(
    dirpath: str | Path,
    map_location: str | torch.device = "cpu",
    expect_architecture: str | None = None,
) -> tuple[nn.Module, dict]:
    """Rebuild the model from `config.json` and load its weights exactly; returns (model, config)."""
    dirpath = Path(dirpath)
    config = read_checkpoint_config(dirpath)
    arch = config["model"]["architecture"]
    if expect_architecture is not None and arch != expect_architecture:
        raise CheckpointError(f"{dirpath} holds a {arch} model, expected {expect_architecture}")
    try:
        model = create_from_config(config["model"])
    except (UsageError, TypeError) as exc:
        raise CheckpointError(
            f"{dirpath}: unknown or invalid architecture {arch!r}: {exc}"
        ) from exc
    dtype = getattr(torch, config.get("dtype", "float32"), None)
    if isinstance(dtype, torch.dtype):
        model = model.to(dtype)
    try:
        state = load_file(str(dirpath / WEIGHTS_FILE), device="cpu")
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(
            f"{dirpath / WEIGHTS_FILE} is not a readable safetensors file: {exc}"
        ) from exc
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    if missing:
        raise CheckpointError(f"{dirpath}: weights lack {len(missing)} key(s), e.g. {missing[0]}")
    extra = [k for k in state if k not in own]
    if extra:
        raise CheckpointError(
            f"{dirpath}: weights have {len(extra)} unknown key(s), e.g. {extra[0]}"
        )
    for k, v in state.items():
        if v.shape != own[k].shape:
            raise CheckpointError(
                f"{dirpath}: {k} has shape {tuple(v.shape)}, {arch} needs {tuple(own[k].shape)}"
            )
    model.load_state_dict(state, strict=True)  # copies cast FP16-stored weights to the model's dtype
    return model.to(map_location).eval(), config


# --------------------------------------------------------------------------- official weights
@dataclass
class LoadReport:
    """What happened to every key of a foreign checkpoint."""

    layout: str = "plain"
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    interpolated: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)

    @property
    def missing_backbone(self) -> list[str]:
        """Missing keys other than the regression head (which fine-tuning learns anyway)."""
        return [k for k in self.missing if not k.startswith(("fc_norm.", "head."))]

    def summary(self) -> str:
        parts = [
            f"{self.layout} checkpoint: loaded {len(self.loaded)}",
            f"missing {len(self.missing)}"
            + (f" ({', '.join(self.missing[:4])})" if self.missing else ""),
            f"dropped {len(self.unexpected)}",
            f"interpolated {len(self.interpolated)}"
            + (f" ({', '.join(self.interpolated)})" if self.interpolated else ""),
        ]
        if self.mismatched:
            parts.append(f"skipped for shape {len(self.mismatched)}")
        return ", ".join(parts)


def _read_weights(path: str | Path) -> Any:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"weights file not found: {path}")
    if path.suffix == ".safetensors":
        try:
            return load_file(str(path), device="cpu")
        except (SafetensorError, OSError) as exc:
            raise CheckpointError(f"{path} is not a readable safetensors file: {exc}") from exc
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"{path} is not a plain weights file (it holds Python objects beyond tensors, "
            "or is corrupt); it will not be unpickled"
        ) from exc
    except (RuntimeError, EOFError, OSError) as exc:
        raise CheckpointError(f"{path} is not a readable PyTorch weights file: {exc}") from exc


def _unwrap(obj: Any) -> StateDict:
    """Stage-1 / Kinetics files keep weights under 'model' or 'module' (or 'state_dict')."""
    for _ in range(3):
        if isinstance(obj, Mapping):
            inner = next(
                (
                    obj[k]
                    for k in ("model", "module", "state_dict")
                    if isinstance(obj.get(k), Mapping)
                ),
                None,
            )
            if inner is None:
                break
            obj = inner
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError("checkpoint does not hold a state dict of tensors")
    return dict(obj)


def _strip(state: StateDict, prefix: str) -> StateDict:
    return {k.removeprefix(prefix): v for k, v in state.items()}


def _convert_wrapped(state: StateDict) -> StateDict:
    """DDP `module.` and detection-style `backbone.` prefixes."""
    for prefix in ("module.", "backbone."):
        if state and all(k.startswith(prefix) for k in state):
            state = _strip(state, prefix)
    return state


def _convert_distillation(state: StateDict, side: str, dropped: list[str]) -> StateDict:
    """InternVQA distillation files: student under `encoder.`, teacher under `feature_model.`."""
    keep = {"student": "encoder.", "teacher": "feature_model."}[side]
    out: StateDict = {}
    for k, v in state.items():
        if k.startswith(keep):
            out[k[len(keep) :]] = v
        else:
            dropped.append(k)
    return out


def _convert_stage2(state: StateDict, dropped: list[str]) -> StateDict:
    """Stage-2 video-text files: vision tower under `vision_encoder.`; text side dropped."""
    out: StateDict = {}
    for k, v in state.items():
        if k.startswith("vision_encoder."):
            out[k[len("vision_encoder.") :]] = v
        else:
            dropped.append(k)
    return out


def _detect_and_convert(state: StateDict, side: str) -> tuple[str, StateDict, list[str]]:
    dropped: list[str] = []
    state = _convert_wrapped(state)
    if any(k.startswith(("encoder.", "feature_model.")) for k in state):
        layout, state = f"distillation ({side})", _convert_distillation(state, side, dropped)
    elif any(k.startswith("vision_encoder.") for k in state):
        layout, state = "stage-2", _convert_stage2(state, dropped)
    elif any(k.startswith("clip_decoder.") for k in state):
        layout = "distilled-S/B/L"
    else:
        layout = "stage-1/fine-tune"
    return layout, _convert_wrapped(state), dropped


def _resize_pos(key: str, value: torch.Tensor, model: nn.Module) -> torch.Tensor:
    grid = tuple(model.cfg.grid)
    if key == "pos_embed":
        src = infer_grid(value.shape[1] - 1, grid)
        return resize_pos_embed(value, src, grid)
    if key == "pos_embed_temporal":
        return resize_temporal(value, grid[0])
    if key == "pos_embed_spatial":
        side = round(value.shape[1] ** 0.5)
        return resize_spatial(value, (side, side), grid[1:])
    raise ValueError(key)


def _filter_state_dict(
    state: StateDict, model: nn.Module, report: LoadReport, strict_shapes: bool
) -> StateDict:
    """Keep the model's keys, resize pos embeds, cast dtypes, check shapes; fill `report`."""
    own = model.state_dict()
    out: StateDict = {}
    for k, v in state.items():
        if k not in own:
            report.unexpected.append(k)
            continue
        target = own[k]
        if v.shape != target.shape and k in (
            "pos_embed",
            "pos_embed_spatial",
            "pos_embed_temporal",
        ):
            try:
                v = _resize_pos(k, v.float(), model)
                report.interpolated.append(k)
            except (ValueError, RuntimeError) as exc:
                raise CheckpointError(f"cannot resize {k} from {tuple(v.shape)}: {exc}") from exc
        if v.shape != target.shape:
            if strict_shapes:
                raise CheckpointError(
                    f"shape mismatch for {k}: checkpoint {tuple(v.shape)}, model {tuple(target.shape)}"
                )
            report.mismatched.append(k)
            continue
        out[k] = v.to(target.dtype)
        report.loaded.append(k)
    report.missing = [k for k in own if k not in out]
    return out


def load_official_weights(
    model: nn.Module,
    path_or_state_dict: str | Path | Mapping[str, Any],
    strict_shapes: bool = True,
    side: str = "student",
) -> LoadReport:
    """Load official InternVideo2 weights (any layout of REFERENCE section 2) into `model`.

    `side` picks the half of an InternVQA distillation checkpoint: "student" (`encoder.`)
    or "teacher" (`feature_model.`). Returns a report; raises CheckpointError on a
    non-resizable shape mismatch (unless strict_shapes=False, which skips and reports it).
    """
    if side not in ("student", "teacher"):
        raise UsageError(f"side must be 'student' or 'teacher', got {side!r}")
    raw = (
        path_or_state_dict
        if isinstance(path_or_state_dict, Mapping)
        else _read_weights(path_or_state_dict)
    )
    layout, state, dropped = _detect_and_convert(_unwrap(raw), side)
    report = LoadReport(layout=layout, unexpected=dropped)
    if not state:
        raise CheckpointError(f"no {layout} weights found in the checkpoint")
    filtered = _filter_state_dict(state, model, report, strict_shapes)
    if not filtered:
        raise CheckpointError(
            "no key of the checkpoint matches the model; is it an InternVideo2 file?"
        )
    with torch.no_grad():
        model.load_state_dict(filtered, strict=False)
    return report


DEFAULT_TEACHER_DIR = "default_teacher"


def default_teacher() -> Path | None:
    """The teacher checkpoint shipped with the package (`vqa-distill student --teacher
    default`): the default model's own weights, FP16 on disk, loaded as FP32. None if this
    install has none."""
    path = Path(__file__).resolve().parent / DEFAULT_TEACHER_DIR
    return path if (path / CONFIG_FILE).is_file() and (path / WEIGHTS_FILE).is_file() else None


def save_half_checkpoint(dirpath: str | Path, model: nn.Module, config: dict) -> Path:
    """`config` with the weights stored as FP16 (half the size; `load_checkpoint` casts them
    back to the FP32 model the config describes)."""
    state = {k: (v.half() if v.is_floating_point() else v) for k, v in
             _unshared(model.state_dict()).items()}
    dirpath = Path(dirpath)
    with atomic_directory(dirpath) as tmp:
        save_file(state, str(tmp / WEIGHTS_FILE), metadata={"format": FORMAT, "storage": "fp16"})
        atomic_write_json(tmp / CONFIG_FILE, {**config, "dtype": "float32",
                                              "storage_dtype": "float16"})
    return dirpath
