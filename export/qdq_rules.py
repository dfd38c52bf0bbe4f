"""Check an ONNX graph against TensorRT's rules for explicit INT8 quantization.

Why a checker: quantizers change their defaults between releases (ORT started adding
INT32 bias quantization and Q/DQ on Gemm outputs), and TensorRT's failure modes are silent
slowdowns or accuracy loss rather than errors. So the exported graph is checked, not
assumed. The rules (NVIDIA TensorRT "explicit quantization" and ModelOpt's placement):

- every QuantizeLinear/DequantizeLinear is INT8 with zero point 0 (symmetric) and
  positive, finite scales;
- weights (initializers) are quantized per output channel: axis 0 for Conv and for
  Gemm with transB=1, the last axis for MatMul and Gemm without transB;
- a DQ feeds only MatMul/Gemm/Conv (no Q/DQ on LayerNorm, Softmax, GELU, Add ...);
- no Q reads the output of a MatMul/Gemm/Conv;
- biases are not quantized (no INT32 initializer behind a DQ).

`check_qdq(model)` returns the violations as strings, empty when the graph is clean.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

WEIGHTED_OPS = ("MatMul", "Gemm", "Conv")
_INT8 = onnx.TensorProto.INT8


def _const(graph: onnx.GraphProto) -> dict[str, np.ndarray]:
    out = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    for n in graph.node:
        if n.op_type == "Constant" and n.attribute:
            attr = n.attribute[0]
            if attr.name == "value":
                out[n.output[0]] = numpy_helper.to_array(attr.t)
    return out


def _attr(node: onnx.NodeProto, name: str, default: int) -> int:
    for a in node.attribute:
        if a.name == name:
            return int(a.i)
    return default


def _weight_axis(user: onnx.NodeProto, slot: int, rank: int) -> int | None:
    """Output-channel axis TensorRT expects for a weight feeding `user` at input `slot`."""
    if user.op_type == "Conv" and slot == 1:
        return 0
    if user.op_type == "MatMul" and slot == 1:
        return rank - 1
    if user.op_type == "Gemm" and slot == 1:
        return 0 if _attr(user, "transB", 0) else 1
    return None


def check_qdq(model: onnx.ModelProto | str | Path) -> list[str]:
    """Violations of TensorRT's explicit-quantization rules (empty list: graph is fine)."""
    if not isinstance(model, onnx.ModelProto):
        model = onnx.load(str(model), load_external_data=True)
    graph = model.graph
    consts = _const(graph)
    producer = {o: n for n in graph.node for o in n.output}
    consumers: dict[str, list[tuple[onnx.NodeProto, int]]] = {}
    for n in graph.node:
        for slot, name in enumerate(n.input):
            consumers.setdefault(name, []).append((n, slot))
    problems: list[str] = []
    qdq = [n for n in graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    if not qdq:
        return ["graph has no QuantizeLinear/DequantizeLinear nodes (not quantized)"]

    for n in qdq:
        tag = f"{n.op_type} {n.name or n.output[0]}"
        scale = consts.get(n.input[1]) if len(n.input) > 1 else None
        zp = consts.get(n.input[2]) if len(n.input) > 2 and n.input[2] else None
        if scale is None:
            problems.append(f"{tag}: scale is not a constant")
        elif not (np.all(np.isfinite(scale)) and np.all(scale > 0)):
            problems.append(f"{tag}: scales must be positive and finite")
        if zp is None:
            if n.op_type == "QuantizeLinear" and _attr(n, "output_dtype", 0) not in (0, _INT8):
                problems.append(f"{tag}: output type is not int8")
            if n.op_type == "QuantizeLinear" and _attr(n, "output_dtype", 0) == 0:
                problems.append(f"{tag}: no zero point, so the output type defaults to uint8")
        else:
            if zp.dtype != np.int8:
                problems.append(f"{tag}: zero point is {zp.dtype}, TensorRT needs int8")
            if np.any(zp != 0):
                problems.append(f"{tag}: zero point is not 0 (asymmetric)")
        if n.op_type == "DequantizeLinear":
            src = consts.get(n.input[0])
            if src is not None and src.dtype == np.int32:
                problems.append(f"{tag}: INT32 input (bias quantization); keep biases in float")
            elif src is not None and src.dtype != np.int8:
                problems.append(f"{tag}: quantized weight is {src.dtype}, not int8")
            users = consumers.get(n.output[0], [])
            for user, slot in users:
                if user.op_type not in WEIGHTED_OPS:
                    problems.append(
                        f"{tag}: feeds {user.op_type} {user.name}; only MatMul/Gemm/Conv "
                        "inputs may be quantized"
                    )
                    continue
                if src is not None and scale is not None:
                    _check_weight(problems, tag, n, user, slot, src, scale)
        else:
            src = producer.get(n.input[0])
            if src is not None and src.op_type in WEIGHTED_OPS:
                problems.append(
                    f"{tag}: quantizes the output of {src.op_type} {src.name}; TensorRT wants "
                    "Q/DQ on inputs of weighted ops only"
                )
    return problems


def _check_weight(
    problems: list[str],
    tag: str,
    dq: onnx.NodeProto,
    user: onnx.NodeProto,
    slot: int,
    weight: np.ndarray,
    scale: np.ndarray,
) -> None:
    want = _weight_axis(user, slot, weight.ndim)
    if want is None:
        return
    channels = weight.shape[want]
    if scale.size == 1:
        if channels > 1:
            problems.append(f"{tag}: weight of {user.op_type} {user.name} is per-tensor, "
                            "not per-channel")
        return
    axis = _attr(dq, "axis", 1)
    axis = axis + weight.ndim if axis < 0 else axis
    if axis != want or scale.size != channels:
        problems.append(
            f"{tag}: weight of {user.op_type} {user.name} quantized along axis {axis} "
            f"({scale.size} scales); TensorRT needs the output-channel axis {want} "
            f"({channels} scales)"
        )
