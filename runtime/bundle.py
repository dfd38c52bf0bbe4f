"""The bundle: the directory the export stage writes and the runtime loads.

A bundle holds one model in several precisions plus `bundle.json`, which says how to feed
it (the clip spec), what its outputs mean (the score scale), and how it was made. The
runtime refuses a bundle it cannot trust or run, with a one-line reason:

- `bundle.json` missing, not JSON, of another format, or of a newer `format_version`;
- `bundle.json` malformed: a field of the wrong type, a file name that is not a plain name
  inside the bundle directory (no paths, no `..`), a non-finite score scale (checked even
  when the content hash matches: the hash catches accidental edits, not a hostile author);
- `bundle.json` edited after export: `meta_sha256` is the sha256 of the canonical JSON of
  every other field (sorted keys, no whitespace), so a changed clip spec or score scale is
  caught even though the model files are untouched;
- a listed file missing, or its sha256 / size differs (tampered or truncated);
- an ONNX opset newer than the installed onnxruntime knows;
- a TensorRT `.plan` when TensorRT is not installed, or built by another TensorRT version
  (engines are tied to the TensorRT version and the GPU that built them);
- a requested precision the bundle lacks.

Precisions: ``fp32``, ``fp16`` and ``int8`` name ONNX files (ONNX Runtime); ``plan`` names
the TensorRT engine (the first `.plan` listed). With no precision asked for, the bundle's
`default_precision` is used; if that is ``plan`` and TensorRT is missing, the runtime falls
back to the int8 ONNX (or fp32) rather than failing, and says so in `Bundle.note`.
"""

from __future__ import annotations

import copy
import datetime as _dt
import hashlib
import json
import math
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from internvqa.runtime.atomic import atomic_directory
from internvqa.runtime.clipspec import ClipSpec
from internvqa.runtime.errors import BundleError

FORMAT = "internvqa-bundle"
FORMAT_VERSION = 1
META_NAME = "bundle.json"
ONNX_PRECISIONS = ("fp32", "fp16", "int8")
PRECISIONS = (*ONNX_PRECISIONS, "plan")
_NAME_PRECISION = {"model.onnx": "fp32", "model.fp16.onnx": "fp16", "model.int8.onnx": "int8"}

DEFAULT_SCORE_SCALE: dict[str, Any] = {
    "name": "MOS",
    "min": 0.0,
    "max": 100.0,
    "multiplier": 100.0,
    "offset": 0.0,
    "higher_is_better": True,
    "description": "Predicted mean opinion score on a 0-100 scale (model output x 100); "
    "higher is better.",
}

# The same 0-100 scale when the training labels were libvmaf VMAF (the corpus's default).
VMAF_SCORE_SCALE: dict[str, Any] = {
    **DEFAULT_SCORE_SCALE,
    "name": "VMAF (predicted, no reference)",
    "description": "Predicted VMAF v0.6.1 on 0-100 (model output x 100), estimated from the "
    "compressed video alone: trained on libvmaf scores of encodes against their lossless "
    "sources; higher is better.",
}

# Max ONNX opset of onnxruntime releases, used only if onnxruntime's schema list is
# unavailable (from the ONNX Runtime compatibility table).
_ORT_MAX_OPSET = {(1, 14): 18, (1, 15): 19, (1, 16): 19, (1, 17): 20, (1, 18): 21,
                  (1, 19): 21, (1, 20): 21, (1, 21): 22, (1, 22): 22}

_FIX = (
    "use an ONNX precision (--precision fp32/fp16/int8) on this machine, or run the plan on "
    "a GPU host with TensorRT (the runtime docker image)"
)


@dataclass
class Bundle:
    """A verified bundle with one precision selected."""

    path: Path
    meta: dict[str, Any]
    clip_spec: ClipSpec
    score_scale: dict[str, Any]
    precision: str
    note: str = ""
    _files: dict[str, str] = field(default_factory=dict, repr=False)  # precision -> name

    def precisions(self) -> list[str]:
        """Precisions this bundle holds (``plan`` for a TensorRT engine)."""
        return list(self._files)

    def model_file(self, precision: str | None = None) -> Path:
        p = precision or self.precision
        if p not in self._files:
            raise BundleError(
                f"{self.path}: bundle has no {p} model (it has: {', '.join(self._files)})"
            )
        return self.path / self._files[p]

    @property
    def model_name(self) -> str:
        return str(self.meta.get("model", {}).get("name", "unknown"))

    def to_score(self, raw: float) -> float:
        """Model output -> the bundle's documented scale (`scale_score`)."""
        return scale_score(self.score_scale, raw)


def scale_score(scale: dict, raw: float) -> float:
    """`multiplier * raw + offset`, clipped to the scale's [min, max] when it names both (as
    libvmaf clips VMAF to 0-100). The one mapping: the runtime and export's accuracy use it."""
    score = float(scale["multiplier"]) * raw + float(scale["offset"])
    lo, hi = scale.get("min"), scale.get("max")
    if lo is not None and hi is not None and math.isfinite(score):
        score = min(max(score, float(lo)), float(hi))
    return score


DEFAULT_BUNDLE_DIR = "default_bundle"


def default_bundle() -> Path | None:
    """The trained bundle shipped as package data (its MODEL_CARD.md says what it is)."""
    path = Path(__file__).resolve().parent / DEFAULT_BUNDLE_DIR
    return path if (path / META_NAME).is_file() else None


# ---- hashing -------------------------------------------------------------------------
def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def meta_digest(meta: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of every field except `meta_sha256` itself."""
    body = {k: v for k, v in meta.items() if k != "meta_sha256"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def precision_of(name: str, entry: dict[str, Any]) -> str:
    """The precision key a file is selected by: fp32/fp16/int8 for ONNX, plan for engines."""
    if name.endswith(".plan"):
        return "plan"
    return str(entry.get("precision") or _NAME_PRECISION.get(name, "fp32"))


# ---- writing -------------------------------------------------------------------------
def write_bundle(
    dirpath: str | os.PathLike, files: dict[str, Path | str | bytes], meta: dict[str, Any]
) -> Path:
    """Write a bundle directory atomically: model files + `bundle.json` with hashes.

    `files` maps file names to paths or bytes. `meta` holds the other fields of the format
    (model, clip_spec, inputs, outputs, score_scale, versions, parity, accuracy,
    source_checkpoint); `meta["files"][name]` may add per-file fields (precision, and for a
    `.plan` its tensorrt_version and gpu). Missing format fields get defaults.
    """
    meta = copy.deepcopy(meta)
    if not files:
        raise BundleError("write_bundle: no model files given")
    for name in files:
        _check_file_name(name, "write_bundle")
    extra = meta.pop("files", {}) or {}
    spec = meta.get("clip_spec")
    if isinstance(spec, ClipSpec):
        spec = spec.to_dict()
    if not isinstance(spec, dict):
        raise BundleError("write_bundle: meta needs a clip_spec")
    ClipSpec.from_dict(spec)  # validates
    meta["clip_spec"] = spec
    out: dict[str, Any] = {"format": FORMAT, "format_version": FORMAT_VERSION}
    out.update({k: v for k, v in meta.items() if k not in ("format", "format_version")})
    out.setdefault("model", {"name": "unknown", "config": {}})
    out.setdefault("score_scale", dict(DEFAULT_SCORE_SCALE))
    out.setdefault("inputs", [{"name": "video", "shape": ["batch", 3, spec["num_frames"],
                                                          spec["size"], spec["size"]],
                               "dtype": "float32"}])
    out.setdefault("outputs", [{"name": "score", "shape": ["batch"]},
                               {"name": "feature", "shape": ["batch", 768]}])
    out.setdefault("created", _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    versions = out.setdefault("versions", {})
    versions.setdefault("internvqa", _toolkit_version())
    _check_score_scale(out["score_scale"], "write_bundle")
    with atomic_directory(dirpath) as tmp:
        entries: dict[str, Any] = {}
        for name, src in files.items():
            dst = tmp / name
            if isinstance(src, (bytes, bytearray)):
                dst.write_bytes(src)
            else:
                shutil.copyfile(src, dst)
            entry = dict(extra.get(name, {}))
            entry["sha256"] = sha256_file(dst)
            entry["bytes"] = dst.stat().st_size
            entry.setdefault("precision", _NAME_PRECISION.get(name, "int8" if name.endswith(".plan") else "fp32"))
            if name.endswith(".plan"):
                entry.setdefault("tensorrt_version", versions.get("tensorrt"))
                entry.setdefault("gpu", "")
            entries[name] = entry
        out["files"] = entries
        keys = {precision_of(n, e) for n, e in entries.items()}
        if out.get("default_precision") not in keys:
            out["default_precision"] = next(p for p in PRECISIONS if p in keys)
        out["meta_sha256"] = meta_digest(out)
        (tmp / META_NAME).write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    return Path(dirpath)


def _toolkit_version() -> str:
    try:
        from importlib.metadata import version

        return version("internvqa")
    except Exception:  # noqa: BLE001 - not installed: still write a bundle
        return "unknown"


def _check_file_name(name: Any, where: str) -> None:
    """A bundled file is a plain `.onnx`/`.plan` name inside the bundle directory."""
    if (not isinstance(name, str) or "/" in name or "\\" in name or "\x00" in name
            or name in ("", ".", "..", META_NAME)):
        raise BundleError(f"{where}: bad file name {name!r} (plain names inside the bundle only)")
    if not name.endswith((".onnx", ".plan")):
        raise BundleError(f"{where}: {name}: only .onnx and .plan files are bundled")


def _check_score_scale(scale: Any, where: str) -> None:
    if not isinstance(scale, dict):
        raise BundleError(f"{where}: score_scale must be an object")
    for key in ("multiplier", "offset"):
        v = scale.get(key)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise BundleError(f"{where}: score_scale.{key} must be a finite number")


def _check_structure(mp: Path, meta: dict[str, Any]) -> None:
    """Types of the fields the runtime reads, so a malformed file is a BundleError."""
    for name, entry in meta["files"].items():
        _check_file_name(name, str(mp))
        if not isinstance(entry, dict):
            raise BundleError(f"{mp}: files.{name} must be an object")
        if not isinstance(entry.get("precision", ""), str):
            raise BundleError(f"{mp}: files.{name}.precision must be a string")
    if not isinstance(meta.get("clip_spec"), dict):
        raise BundleError(f"{mp}: clip_spec missing or not an object")
    for key in ("model", "versions"):
        if not isinstance(meta.get(key, {}), dict):
            raise BundleError(f"{mp}: {key} must be an object")
    for key in ("inputs", "outputs"):
        value = meta.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise BundleError(f"{mp}: {key} must be a list of objects")
        if not all(isinstance(v.get("shape", []), list) for v in value):
            raise BundleError(f"{mp}: {key}[].shape must be a list")


# ---- loading -------------------------------------------------------------------------
def load_bundle(
    path: str | os.PathLike, precision: str | None = None, verify: bool = True
) -> Bundle:
    """Read, verify and select one precision of a bundle (a dir, or a model file inside it).

    `verify=False` skips the file hashes (the one slow step); everything else is checked.
    """
    p = Path(path)
    if p.is_file() and p.name != META_NAME:
        root, chosen = p.parent, p.name
    else:
        root, chosen = (p.parent if p.name == META_NAME else p), None
    meta = _read_meta(root)
    entries = meta["files"]
    by_precision: dict[str, str] = {}
    for name, entry in entries.items():
        by_precision.setdefault(precision_of(name, entry), name)
    if chosen is not None:
        if chosen not in entries:
            raise BundleError(f"{p}: file is not listed in {root / META_NAME}")
        key = precision_of(chosen, entries[chosen])
        if precision not in (None, key):
            raise BundleError(f"{p}: is the {key} model, but precision {precision} was asked for")
        precision = key
        by_precision[key] = chosen

    for name, entry in entries.items():
        f = root / name
        if not f.is_file():
            raise BundleError(f"{root}: listed file {name} is missing")
        if f.stat().st_size != entry.get("bytes"):
            raise BundleError(f"{f}: size differs from bundle.json (truncated or replaced file)")
        if verify and sha256_file(f) != entry.get("sha256"):
            raise BundleError(f"{f}: sha256 differs from bundle.json (file was modified)")

    note = ""
    if precision is None:
        precision = str(meta.get("default_precision") or "fp32")
        if precision == "plan" and not _tensorrt_version():
            fallback = next((q for q in ("int8", "fp32", "fp16") if q in by_precision), None)
            if fallback:
                note = f"TensorRT not installed: using the {fallback} ONNX model, not the plan"
                precision = fallback
    if precision not in PRECISIONS:
        raise BundleError(f"unknown precision {precision!r} (use one of {', '.join(PRECISIONS)})")
    if precision not in by_precision:
        raise BundleError(
            f"{root}: bundle has no {precision} model (it has: {', '.join(by_precision)})"
        )
    if precision == "plan":
        _check_plan(root / by_precision["plan"], entries[by_precision["plan"]])
    else:
        _check_opset(root, meta)
    try:
        spec = ClipSpec.from_dict(meta["clip_spec"])
    except (ValueError, TypeError) as exc:
        raise BundleError(f"{root}: bad clip_spec in bundle.json ({exc})") from None
    _check_io(root, meta, spec)
    return Bundle(root, meta, spec, meta["score_scale"], precision, note, by_precision)


def _read_meta(root: Path) -> dict[str, Any]:
    mp = root / META_NAME
    if not root.exists():
        raise BundleError(f"{root}: no such bundle directory")
    if not mp.is_file():
        raise BundleError(f"{root}: not a bundle ({META_NAME} missing)")
    try:
        meta = json.loads(mp.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise BundleError(f"{mp}: not valid JSON ({(str(exc) or type(exc).__name__).splitlines()[0]})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise BundleError(f"{mp}: not an {FORMAT} file")
    fv = meta.get("format_version")
    if not isinstance(fv, int):
        raise BundleError(f"{mp}: format_version missing")
    if fv > FORMAT_VERSION:
        raise BundleError(
            f"{mp}: bundle format {fv} is newer than this runtime's ({FORMAT_VERSION}); "
            "upgrade internvqa"
        )
    if meta.get("meta_sha256") != meta_digest(meta):
        raise BundleError(f"{mp}: content hash mismatch (bundle.json was edited after export)")
    if not isinstance(meta.get("files"), dict) or not meta["files"]:
        raise BundleError(f"{mp}: lists no model files")
    _check_score_scale(meta.get("score_scale"), str(mp))
    _check_structure(mp, meta)
    return meta


def _check_io(root: Path, meta: dict[str, Any], spec: ClipSpec) -> None:
    inputs = meta.get("inputs") or []
    if inputs:
        shape = list(inputs[0].get("shape", []))[1:]
        want = [3, spec.num_frames, spec.size, spec.size]
        if shape and shape != want:
            raise BundleError(
                f"{root}: input shape {shape} disagrees with the clip spec {want}"
            )


def ort_max_opset() -> int | None:
    """Highest ai.onnx opset the installed onnxruntime has schemas for (None if unknown)."""
    try:
        from onnxruntime.capi import _pybind_state as C

        return max(s.since_version for s in C.get_all_operator_schema() if s.domain in ("", "ai.onnx"))
    except Exception:  # noqa: BLE001 - private API moved: use the table
        import onnxruntime

        major, minor = (int(x) for x in onnxruntime.__version__.split(".")[:2])
        return _ORT_MAX_OPSET.get((major, minor))


def _check_opset(root: Path, meta: dict[str, Any]) -> None:
    opset = (meta.get("versions") or {}).get("opset")
    if not isinstance(opset, int):
        return  # unknown: onnxruntime itself reports an unsupported opset when loading
    best = ort_max_opset()
    if best is not None and opset > best:
        import onnxruntime

        raise BundleError(
            f"{root}: model uses ONNX opset {opset}, onnxruntime {onnxruntime.__version__} "
            f"supports up to {best}; upgrade onnxruntime"
        )


def _tensorrt_version() -> str | None:
    try:
        import tensorrt  # noqa: F401 - optional, GPU hosts only
    except Exception:  # noqa: BLE001 - ImportError or a broken CUDA install
        return None
    return str(tensorrt.__version__)


def _check_plan(path: Path, entry: dict[str, Any]) -> None:
    have = _tensorrt_version()
    if have is None:
        raise BundleError(f"{path}: a TensorRT plan needs the tensorrt package, not installed "
                          f"here; {_FIX}")
    built = entry.get("tensorrt_version")
    if built and str(built) != have:
        raise BundleError(
            f"{path}: built by TensorRT {built}, installed TensorRT is {have}; plans only run "
            "on the version that built them (rebuild it with vqa-export, or use an ONNX precision)"
        )
