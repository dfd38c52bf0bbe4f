"""A Triton Inference Server model repository for a bundle (`vqa-export --triton DIR`).

Layout (one model per backend, version folder `1/`):

    DIR/<name>_onnx/config.pbtxt     backend "onnxruntime"
    DIR/<name>_onnx/1/model.onnx
    DIR/<name>_trt/config.pbtxt      platform "tensorrt_plan" (only when an engine exists)
    DIR/<name>_trt/1/model.plan

Batch: `max_batch_size > 0` with dynamic batching, so the batch dimension (-1) is implicit
and `dims` list the per-clip shape, as Triton requires when it batches requests itself.
`score` is one number per clip: declared `dims: [ 1 ]` and reshaped to a scalar (`[]`), the
documented way to describe an output whose only dimension is the batch.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from internvqa.runtime.atomic import atomic_directory


def config_pbtxt(name: str, platform: str, clip_shape: tuple[int, ...], max_batch: int,
                 feature_dim: int = 768, side_dim: int = 0) -> str:
    """config.pbtxt text for one model (platform: onnxruntime_onnx or tensorrt_plan)."""
    dims = ", ".join(str(d) for d in clip_shape)
    backend = 'backend: "onnxruntime"' if platform == "onnxruntime_onnx" else \
        'platform: "tensorrt_plan"'
    kind = "KIND_CPU" if platform == "onnxruntime_onnx" else "KIND_GPU"
    side = (f""",
  {{
    name: "side"
    data_type: TYPE_FP32
    dims: [ {side_dim} ]
  }}""" if side_dim else "")
    return f"""name: "{name}"
{backend}
max_batch_size: {max_batch}
input [
  {{
    name: "video"
    data_type: TYPE_FP32
    dims: [ {dims} ]
  }}{side}
]
output [
  {{
    name: "score"
    data_type: TYPE_FP32
    dims: [ 1 ]
    reshape: {{ shape: [ ] }}
  }},
  {{
    name: "feature"
    data_type: TYPE_FP32
    dims: [ {feature_dim} ]
  }}
]
dynamic_batching {{
  preferred_batch_size: [ {max(1, max_batch // 2)}, {max_batch} ]
  max_queue_delay_microseconds: 2000
}}
instance_group [ {{ count: 1, kind: {kind} }} ]
"""


def write_triton_repo(
    repo: str | os.PathLike,
    name: str,
    onnx_file: Path,
    clip_shape: tuple[int, ...],
    max_batch: int,
    plan_file: Path | None = None,
    side_dim: int = 0,
) -> list[Path]:
    """Write (or replace) this model's folders in the repository; returns them."""
    repo = Path(repo)
    written = []
    models = [(f"{name}_onnx", "onnxruntime_onnx", onnx_file, "model.onnx")]
    if plan_file is not None:
        models.append((f"{name}_trt", "tensorrt_plan", plan_file, "model.plan"))
    for model_name, platform, src, dst_name in models:
        with atomic_directory(repo / model_name) as tmp:
            (tmp / "1").mkdir()
            shutil.copyfile(src, tmp / "1" / dst_name)
            (tmp / "config.pbtxt").write_text(
                config_pbtxt(model_name, platform, clip_shape, max_batch, side_dim=side_dim),
                encoding="utf-8",
            )
        written.append(repo / model_name)
    return written
