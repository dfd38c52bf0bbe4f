"""FP16 ONNX graph with FP32 inputs and outputs (the precision TensorRT 11 builds from).

TensorRT 11 has no FP16 builder flag: an FP16 engine comes from an FP16 graph and a
strongly-typed build. The conversion keeps `video`, `score` and `feature` in float32 so
callers feed the same tensors to every precision, and keeps the numerically touchy
reductions in float32 (`FP32_OPS`): the RMSNorm/LayerNorm statistics (`Pow` of an
activation overflows FP16 above 256, a `ReduceMean` of 2000 tokens loses digits) and
Softmax. Everything else — the MatMuls that carry the FLOPs — runs in FP16.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import onnx

FP32_OPS = (
    "LayerNormalization",
    "Pow",
    "ReduceMean",
    "Sqrt",
    "Reciprocal",
    "Softmax",
    "Erf",
)


def convert_fp16(fp32_path: str | Path, out_path: str | Path) -> Path:
    """Write an FP16 copy of an FP32 ONNX graph (FP32 I/O, `FP32_OPS` kept in FP32)."""
    from onnxconverter_common import float16

    model = onnx.load(str(fp32_path))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "value truncated" notes for tiny init constants
        half = float16.convert_float_to_float16(
            model,
            keep_io_types=True,
            op_block_list=list(FP32_OPS),
            disable_shape_infer=False,
        )
    _float32_outputs(half)
    onnx.checker.check_model(half)
    out_path = Path(out_path)
    onnx.save(half, str(out_path))
    return out_path


def _float32_outputs(model: onnx.ModelProto) -> None:
    """Make every graph output float32 again.

    onnxconverter-common 1.16 leaves an output FP16 when its producer is a blocked op
    (here `feature`, the output of the final LayerNorm): it casts the FP32 result *to*
    FP16 for the output. Cast such outputs back to FP32 so all precisions share one I/O.
    """
    graph = model.graph
    for out in graph.output:
        if out.type.tensor_type.elem_type == onnx.TensorProto.FLOAT:
            continue
        inner = out.name + "_fp16"
        for node in graph.node:
            node.output[:] = [inner if o == out.name else o for o in node.output]
            node.input[:] = [inner if i == out.name else i for i in node.input]
        graph.node.append(
            onnx.helper.make_node("Cast", [inner], [out.name], to=onnx.TensorProto.FLOAT,
                                  name=out.name + "_to_fp32")
        )
        out.type.tensor_type.elem_type = onnx.TensorProto.FLOAT
