"""INT8 with explicit Q/DQ, placed the way TensorRT wants it (REFERENCE section 5).

TensorRT 10/11 builds INT8 engines only from explicit quantization: QuantizeLinear /
DequantizeLinear pairs in the ONNX graph and a strongly-typed build, no calibrator. The
placement follows NVIDIA's recipe: symmetric INT8 (zero point 0) on the *inputs* of
MatMul/Gemm/Conv only, weights per output channel, biases left in float, nothing on
LayerNorm/Softmax/GELU/Add (quantizing those costs accuracy and TensorRT fuses them anyway).

Two quantizers produce that graph:
- NVIDIA ModelOpt's ONNX PTQ (`modelopt.onnx.quantization.quantize`), used when it imports;
  it is TensorRT's own tool. It takes calibration data as one in-memory array.
- ONNX Runtime's `quantize_static` (QDQ format) otherwise, fed by a streaming reader. Its
  defaults are wrong for TensorRT (INT32 bias quantization, a Q/DQ pair on Gemm outputs), so
  it is configured against them and the result is cleaned and checked (`qdq_rules`).
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import onnx

from .qdq_rules import WEIGHTED_OPS

CALIB_METHODS = ("minmax", "entropy")


def modelopt_available() -> bool:
    """True where NVIDIA ModelOpt's ONNX quantizer imports (GPU/TensorRT images)."""
    try:
        import modelopt.onnx.quantization  # noqa: F401
    except Exception:  # noqa: BLE001 - ImportError, or a CUDA library it could not load
        return False
    return True


def quantize_int8_ort(
    fp32_path: str | Path,
    out_path: str | Path,
    reader,
    method: str = "minmax",
) -> Path:
    """Static INT8 Q/DQ with ONNX Runtime, restricted to MatMul/Gemm/Conv inputs.

    Memory: with MinMax, ORT's augmented model reduces every calibrated tensor to its
    min and max inside the graph, so each clip leaves a few scalars per tensor and 512
    streamed clips cost kilobytes. Entropy keeps every calibrated activation of every clip
    until the histograms are built (clips x activations: use a few dozen clips, or
    ModelOpt). `CalibMaxIntermediateOutputs` is not used: on ORT 1.32 it discards the
    collected ranges instead of merging them (calibrate.py `collect_data` clears before
    `compute_data`), which would calibrate on the last partial chunk only.
    """
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    if method not in CALIB_METHODS:
        raise ValueError(f"calibration method must be one of {CALIB_METHODS}")
    calib = CalibrationMethod.MinMax if method == "minmax" else CalibrationMethod.Entropy
    out_path = Path(out_path).absolute()
    fp32_path = Path(fp32_path).absolute()  # before the chdir below
    # The calibration model (as big as the FP32 graph) is written beside the output, so
    # vqa-export's scratch folder holds it and a killed export's sweep removes it.
    with tempfile.TemporaryDirectory(prefix=".quant-", dir=out_path.parent) as tmp:
        # ORT writes its augmented calibration model next to the working dir by default.
        raw = Path(tmp) / "raw.int8.onnx"
        cwd = os.getcwd()
        os.chdir(tmp)
        root_logger = logging.getLogger()
        level = root_logger.level
        # ORT logs "consider pre-processing" on the root logger: the graph is already
        # shape-inferred and its optimizer would fuse LayerNorm into contrib ops TensorRT
        # cannot parse, so the advice does not apply here.
        root_logger.setLevel(logging.ERROR)
        try:
            quantize_static(
                str(fp32_path),
                str(raw),
                reader,
                quant_format=QuantFormat.QDQ,
                op_types_to_quantize=list(WEIGHTED_OPS),
                per_channel=True,
                reduce_range=False,
                activation_type=QuantType.QInt8,
                weight_type=QuantType.QInt8,
                calibrate_method=calib,
                extra_options={
                    "ActivationSymmetric": True,
                    "WeightSymmetric": True,
                    "QuantizeBias": False,
                    "OpTypesToExcludeOutputQuantization": list(WEIGHTED_OPS),
                    # MatMul weights are (K, N): one scale per output column N.
                    "QDQOpTypePerChannelSupportToAxis": {"MatMul": 1},
                },
            )
        finally:
            root_logger.setLevel(level)
            os.chdir(cwd)
        model = onnx.load(str(raw))
    clean_for_tensorrt(model)
    onnx.checker.check_model(model)
    onnx.save(model, str(out_path))
    return out_path


def quantize_int8_modelopt(
    fp32_path: str | Path,
    out_path: str | Path,
    reader,
    method: str = "minmax",
) -> Path:
    """Static INT8 Q/DQ with NVIDIA ModelOpt, fed by the same streaming reader.

    `high_precision_dtype="fp32"` keeps the non-quantized ops in FP32 so one INT8 graph
    serves ONNX Runtime on CPUs (where FP16 ops are slow) and TensorRT alike. ModelOpt
    0.47 runs on a CPU-only host (it falls back to ORT's CPU provider).
    """
    from modelopt.onnx.quantization import quantize

    out_path = Path(out_path)
    quantize(
        onnx_path=str(fp32_path),
        quantize_mode="int8",
        calibration_data_reader=reader,
        calibration_method="max" if method == "minmax" else "entropy",
        calibration_eps=["cpu"],
        op_types_to_quantize=list(WEIGHTED_OPS),
        high_precision_dtype="fp32",
        output_path=str(out_path),
        log_level="WARNING",
    )
    model = onnx.load(str(out_path))
    clean_for_tensorrt(model)
    onnx.save(model, str(out_path))
    return out_path


def clean_for_tensorrt(model: onnx.ModelProto) -> dict[str, int]:
    """Apply both clean-ups below; returns what each changed."""
    removed = strip_output_qdq(model)
    rewired = float_readers_read_float(model)
    return {"output_qdq_removed": removed, "float_readers_rewired": rewired}


def float_readers_read_float(model: onnx.ModelProto) -> int:
    """Point non-weighted consumers of a Q->DQ output back at the float tensor.

    ORT hands the DQ output to *every* consumer of a quantized tensor, e.g. the `Shape`
    that reads the batch size of `video`, or the residual `Add` next to a ResNet Conv.
    Those ops would then compute on a rounded copy, and TensorRT would see Q/DQ on a
    non-weighted op. Rewiring them to the original tensor changes nothing for the
    MatMul/Gemm/Conv consumers. Returns the number of inputs rewired.
    """
    graph = model.graph
    producer = {o: n for n in graph.node for o in n.output}
    changed = 0
    for dq in [n for n in graph.node if n.op_type == "DequantizeLinear"]:
        q = producer.get(dq.input[0])
        if q is None or q.op_type != "QuantizeLinear":
            continue  # a weight DQ (int8 initializer): nothing float to go back to
        for user in graph.node:
            if user.op_type in WEIGHTED_OPS:
                continue
            for k, name in enumerate(user.input):
                if name == dq.output[0]:
                    user.input[k] = q.input[0]
                    changed += 1
    _drop_dead_qdq(graph)
    return changed


def _drop_dead_qdq(graph: onnx.GraphProto) -> None:
    """Remove Q/DQ nodes whose outputs nobody reads any more, then their orphaned scale /
    zero-point initializers (ONNX Runtime warns about each one at every session start)."""
    while True:
        used = {i for n in graph.node for i in n.input} | {o.name for o in graph.output}
        dead = [
            n
            for n in graph.node
            if n.op_type in ("QuantizeLinear", "DequantizeLinear") and n.output[0] not in used
        ]
        if not dead:
            break
        for n in dead:
            graph.node.remove(n)
    used = {i for n in graph.node for i in n.input} | {o.name for o in graph.output}
    for init in [t for t in graph.initializer if t.name not in used]:
        graph.initializer.remove(init)


def strip_output_qdq(model: onnx.ModelProto) -> int:
    """Remove Q->DQ pairs that sit on the output of a MatMul/Gemm/Conv; returns how many.

    Consumers of the removed DQ read the original float tensor again. Quantizers add such
    pairs so that the next quantized op can share them; TensorRT wants the next op to read
    the float output (it fuses a Q only into the op that consumes it).
    """
    graph = model.graph
    producer = {o: n for n in graph.node for o in n.output}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for n in graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    drop: list[onnx.NodeProto] = []
    for q in graph.node:
        if q.op_type != "QuantizeLinear":
            continue
        src = producer.get(q.input[0])
        if src is None or src.op_type not in WEIGHTED_OPS:
            continue
        dqs = consumers.get(q.output[0], [])
        if not dqs or any(d.op_type != "DequantizeLinear" for d in dqs):
            continue
        for dq in dqs:
            for user in consumers.get(dq.output[0], []):
                for k, name in enumerate(user.input):
                    if name == dq.output[0]:
                        user.input[k] = q.input[0]
            for out in graph.output:
                if out.name == dq.output[0]:
                    raise ValueError(f"graph output {out.name} is a DequantizeLinear output")
            drop.append(dq)
        drop.append(q)
    for n in drop:
        graph.node.remove(n)
    return sum(1 for n in drop if n.op_type == "QuantizeLinear")

