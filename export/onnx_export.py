"""PyTorch -> ONNX FP32: one self-contained file with input `video` (+ `side` for a hybrid
model: the bitstream side input, `internvqa.runtime.bitstream`), outputs `score`, `feature`.

The model is exported as it is: registry models already return `(score, feature)`, the
graph's output order (`internvqa.distill.models`), so nothing wraps or reorders them.

Exporter choice: `torch.onnx.export(dynamo=True)` at opset 18. On torch 2.14 the
TorchScript exporter (`dynamo=False`, opset 17) still works but warns that it will be
removed, and its graph carries ~250 Constant/Identity/Cast nodes around every shape
computation; the dynamo graph is about half the size, which keeps the Q/DQ placement and
the TensorRT parse simple. Both match PyTorch to ~1e-7 (REFERENCE section 5). TensorRT
10/11 and onnxruntime >= 1.14 read opset 18. The dynamo exporter writes weights to a
side `.onnx.data` file unless told not to, so `external_data` is on only when the
weights exceed the 2 GB protobuf limit (the 1B/6B teachers); a bundle then carries the
data file next to the graph.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from pathlib import Path

import onnx
import torch

OPSET = 18
INPUT_NAME = "video"
OUTPUT_NAMES = ("score", "feature")
PROTOBUF_LIMIT = 2 * 1024**3 - 64 * 1024**2  # leave room for the graph itself


SIDE_NAME = "side"


def side_dim_of(model: torch.nn.Module) -> int:
    """Width of a hybrid model's bitstream side input (0: pixel-only model)."""
    return int(getattr(getattr(model, "cfg", None), "side_dim", 0) or 0)


def weight_bytes(model: torch.nn.Module) -> int:
    return sum(t.numel() * t.element_size() for t in model.state_dict().values())


def export_onnx(
    model: torch.nn.Module,
    clip_shape: tuple[int, int, int, int],
    path: str | Path,
    max_batch: int = 64,
) -> Path:
    """Export `model` for inputs (batch, *clip_shape) with a dynamic batch axis; check it."""
    path = Path(path)
    model = model.float().eval()
    example = torch.zeros(2, *clip_shape)  # batch 2, so the exporter never specialises to 1
    external = weight_bytes(model) > PROTOBUF_LIMIT
    batch = torch.export.Dim("batch", min=1, max=max(2, max_batch))
    side = side_dim_of(model)
    args: tuple = (example, torch.zeros(2, side)) if side else (example,)
    names = [INPUT_NAME, SIDE_NAME][: len(args)]
    dynamic = tuple({0: batch} for _ in args)  # positional: forward's own argument names vary
    with _quiet(), torch.no_grad():
        torch.onnx.export(
            model,
            args,
            str(path),
            dynamo=True,
            opset_version=OPSET,
            external_data=external,
            input_names=names,
            output_names=list(OUTPUT_NAMES),
            dynamic_shapes=dynamic,
            verbose=False,
        )
    # The checker needs a path (not a proto) for graphs with external data.
    onnx.checker.check_model(str(path), full_check=True)
    return path


def onnx_files(path: str | Path) -> list[Path]:
    """The graph plus its external-data file, if the export needed one."""
    path = Path(path)
    data = path.with_name(path.name + ".data")
    return [path, data] if data.exists() else [path]


@contextlib.contextmanager
def _quiet():
    """The dynamo exporter prints progress lines and warns about internals users can't act on."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)
