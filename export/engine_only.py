"""`vqa-export --engine-only BUNDLE`: add a TensorRT plan to a bundle made on a CPU host.

The ONNX graphs travel to the GPU host inside the bundle; this builds the engine from the
INT8 graph (else FP16, else FP32) and rewrites the bundle with the plan and its hash,
keeping every other field.
"""

from __future__ import annotations

import json
from pathlib import Path

from internvqa.runtime.bundle import META_NAME, load_bundle, write_bundle
from internvqa.runtime.errors import UsageError

from . import tensorrt_build as tb


class EngineResult:
    def __init__(self, bundle: Path, meta: dict, note: str) -> None:
        self.bundle, self.meta, self.engine_note, self.triton = bundle, meta, note, []


def add_engine(bundle_dir: Path, max_batch: int, work: Path, log) -> EngineResult:
    """Build the plan for an existing bundle on this GPU host and re-write the bundle."""
    bundle = load_bundle(bundle_dir, precision="fp32")  # verifies hashes first
    ok, why = tb.tensorrt_status()
    if not ok:
        raise UsageError(f"--engine-only: cannot build a TensorRT engine here: {why}")
    import tensorrt

    meta = json.loads((bundle.path / META_NAME).read_text(encoding="utf-8"))
    source = next(n for n in ("model.int8.onnx", "model.fp16.onnx", "model.onnx")
                  if n in meta["files"])
    spec = bundle.clip_spec
    clip_shape = (3, spec.num_frames, spec.size, spec.size)
    precision = meta["files"][source].get("precision", "fp32")
    name = tb.engine_name(precision, tb.gpu_name() or "gpu", tensorrt.__version__)
    log(f"building {name} from {source}")
    import tempfile

    with tempfile.TemporaryDirectory(prefix="internvqa-engine-") as tmp:
        plan = Path(tmp) / name
        info = tb.build_engine(bundle.path / source, plan, clip_shape, max_batch,
                               timing_cache=work / "trt_timing.cache")
        files = {n: bundle.path / n for n in meta["files"] if not n.endswith(".plan")}
        files[name] = plan
        extra = {n: {k: v for k, v in e.items() if k not in ("sha256", "bytes")}
                 for n, e in meta["files"].items() if n in files}
        extra[name] = {"precision": precision, **info}
        keep = {k: v for k, v in meta.items()
                if k not in ("files", "meta_sha256", "format", "format_version")}
        keep["files"] = extra
        keep.setdefault("versions", {})["tensorrt"] = tensorrt.__version__
        keep["engine"] = {"built": True, "note": f"engine {name} built"}
        write_bundle(bundle.path, files, keep)
    written = json.loads((bundle.path / META_NAME).read_text(encoding="utf-8"))
    return EngineResult(bundle.path, written, f"engine {name} added to {bundle.path}")
