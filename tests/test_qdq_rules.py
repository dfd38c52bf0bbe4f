"""TensorRT Q/DQ rules: the checker passes our INT8 graphs and fails bad ones."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from internvqa.distill.models import create_model
from internvqa.export.onnx_export import export_onnx
from internvqa.export.qdq_rules import check_qdq
from internvqa.export.quantize import quantize_int8_ort


class RandomClips:
    """A few random clips: enough to calibrate a graph whose placement is under test."""

    def __init__(self, shape, n=4):
        self.shape, self.n, self.i = shape, n, 0

    def get_next(self):
        self.i += 1
        if self.i > self.n:
            return None
        rng = np.random.default_rng(self.i)
        return {"video": rng.standard_normal((1, *self.shape)).astype(np.float32)}

    def rewind(self):
        self.i = 0


def _int8(tmp_path, name, **kw):
    model = create_model(name, **kw).eval()
    shape = model.default_clip_shape
    fp32 = export_onnx(model, shape, tmp_path / "m.onnx")
    return fp32, quantize_int8_ort(fp32, tmp_path / "m.int8.onnx", RandomClips(shape)), shape


@pytest.fixture(scope="module")
def vit_s_graphs(tmp_path_factory):
    return _int8(tmp_path_factory.mktemp("vit_s"), "vit_s", img_size=28, num_frames=2)


def test_vit_s_int8_graph_follows_rules(vit_s_graphs):
    _, int8, _ = vit_s_graphs
    model = onnx.load(str(int8))
    assert check_qdq(model) == []
    ops = [n.op_type for n in model.graph.node]
    dq_users = {u.op_type for n in model.graph.node if n.op_type == "DequantizeLinear"
                for u in model.graph.node if n.output[0] in u.input}
    assert dq_users <= {"MatMul", "Gemm", "Conv"}
    # Every MatMul of the 12 blocks has quantized inputs (qkv, proj, fc1, fc2, attention).
    quantized = {u.name for n in model.graph.node if n.op_type == "DequantizeLinear"
                 for u in model.graph.node if n.output[0] in u.input}
    assert len(quantized) >= 12 * 6
    assert ops.count("QuantizeLinear") > 0


@pytest.mark.slow
def test_resnet18_int8_graph_follows_rules(tmp_path):
    _, int8, _ = _int8(tmp_path, "timm:resnet18", img_size=32, num_frames=2)
    model = onnx.load(str(int8))
    assert check_qdq(model) == []
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    dq_out = {n.output[0] for n in model.graph.node if n.op_type == "DequantizeLinear"}
    assert all(c.input[0] in dq_out and c.input[1] in dq_out for c in convs)


def test_checker_fails_on_graph_quantized_over_all_ops(vit_s_graphs, tmp_path):
    """ORT's defaults (every op type, INT32 bias, asymmetric uint8) break TensorRT's rules."""
    from onnxruntime.quantization import QuantFormat, quantize_static

    fp32, _, shape = vit_s_graphs
    out = tmp_path / "all.onnx"
    quantize_static(str(fp32), str(out), RandomClips(shape), quant_format=QuantFormat.QDQ,
                    per_channel=True)
    problems = check_qdq(out)
    text = "\n".join(problems)
    assert problems
    assert "only MatMul/Gemm/Conv inputs may be quantized" in text
    assert "zero point" in text


# --- hand-made graphs: one rule each ---------------------------------------------------
def _matmul_graph(w_zp=0, w_axis=1, per_channel=True, act_zp=0, bias_int32=False,
                  q_on_output=False, w_dtype=np.int8):
    k, n = 4, 3
    w = np.arange(k * n, dtype=w_dtype).reshape(k, n)
    ws = np.full(n if per_channel else 1, 0.1, np.float32)
    inits = [
        numpy_helper.from_array(w, "w"),
        numpy_helper.from_array(ws if per_channel else ws.reshape(()), "ws"),
        numpy_helper.from_array(np.zeros_like(ws if per_channel else ws.reshape(()),
                                              dtype=w_dtype) + w_zp, "wz"),
        numpy_helper.from_array(np.array(0.05, np.float32), "xs"),
        numpy_helper.from_array(np.array(act_zp, np.int8 if act_zp >= 0 else np.int8), "xz"),
    ]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"], name="qx"),
        helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"], name="dqx"),
        helper.make_node("DequantizeLinear", ["w", "ws", "wz"], ["wd"], name="dqw",
                         axis=w_axis),
        helper.make_node("MatMul", ["xd", "wd"], ["y0"], name="mm"),
    ]
    last = "y0"
    if bias_int32:
        inits += [numpy_helper.from_array(np.zeros(n, np.int32), "b"),
                  numpy_helper.from_array(np.full(n, 0.005, np.float32), "bs"),
                  numpy_helper.from_array(np.zeros(n, np.int32), "bz")]
        nodes += [helper.make_node("DequantizeLinear", ["b", "bs", "bz"], ["bd"], name="dqb",
                                   axis=0),
                  helper.make_node("Add", ["y0", "bd"], ["y1"], name="add")]
        last = "y1"
    if q_on_output:
        nodes += [helper.make_node("QuantizeLinear", [last, "xs", "xz"], ["yq"], name="qy"),
                  helper.make_node("DequantizeLinear", ["yq", "xs", "xz"], ["yd"], name="dqy"),
                  helper.make_node("Relu", ["yd"], ["y"], name="relu")]
    else:
        nodes += [helper.make_node("Identity", [last], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                          [2, k])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, n])],
                              inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])


def test_handmade_clean_graph_passes():
    assert check_qdq(_matmul_graph()) == []


@pytest.mark.parametrize(("kw", "needle"), [
    ({"w_zp": 1}, "zero point is not 0"),
    ({"act_zp": 3}, "zero point is not 0"),
    ({"w_axis": 0}, "axis 0"),
    ({"per_channel": False}, "per-tensor"),
    ({"bias_int32": True}, "INT32"),
    ({"q_on_output": True}, "quantizes the output of MatMul"),
    ({"w_dtype": np.uint8}, "uint8"),
])
def test_each_rule_can_fail(kw, needle):
    problems = check_qdq(_matmul_graph(**kw))
    assert any(needle in p for p in problems), problems


def test_unquantized_graph_is_reported():
    model = _matmul_graph()
    keep = [n for n in model.graph.node if n.op_type not in ("QuantizeLinear", "DequantizeLinear")]
    del model.graph.node[:]
    model.graph.node.extend(keep)
    assert check_qdq(model) == ["graph has no QuantizeLinear/DequantizeLinear nodes (not quantized)"]


def test_quantize_takes_relative_paths_and_cleans_up_beside_the_output(tmp_path, monkeypatch):
    """Relative paths work although the quantizer changes directory; its calibration
    folder lives beside the output (so vqa-export's scratch sweep covers it) and is gone."""
    model = create_model("vit_tiny", img_size=28, num_frames=2).eval()
    shape = model.default_clip_shape
    (tmp_path / "in").mkdir()
    (tmp_path / "out").mkdir()
    fp32 = export_onnx(model, shape, tmp_path / "in" / "m.onnx")
    assert fp32 == tmp_path / "in" / "m.onnx"
    monkeypatch.chdir(tmp_path)
    out = quantize_int8_ort("in/m.onnx", "out/m.int8.onnx", RandomClips(shape))
    assert check_qdq(onnx.load(str(out))) == []
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["m.int8.onnx"]
