"""Bundle format: write, load, and every refusal (tampering, edits, versions, TensorRT)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import RUNTIME_TEST_SPEC, make_runtime_bundle

from internvqa.runtime.bundle import FORMAT_VERSION, load_bundle, meta_digest, write_bundle
from internvqa.runtime.clipspec import ClipSpec
from internvqa.runtime.errors import BundleError


def _copy(bundle: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(bundle, tmp_path / "b"))


def _has_tensorrt() -> bool:
    try:
        import tensorrt  # noqa: F401
    except Exception:  # noqa: BLE001
        return False
    return True


def test_load_roundtrip(runtime_bundle):
    b = load_bundle(runtime_bundle)
    meta = json.loads((runtime_bundle / "bundle.json").read_text())
    assert meta["format"] == "internvqa-bundle" and meta["format_version"] == FORMAT_VERSION
    assert meta["files"]["model.onnx"]["precision"] == "fp32"
    assert meta["files"]["model.onnx"]["bytes"] == (runtime_bundle / "model.onnx").stat().st_size
    assert meta["inputs"][0]["shape"] == ["batch", 3, 4, 32, 32]
    assert b.precision == "fp32" and b.precisions() == ["fp32"]
    assert b.clip_spec == ClipSpec(**RUNTIME_TEST_SPEC)
    assert b.model_file() == runtime_bundle / "model.onnx"
    assert b.to_score(0.5) == pytest.approx(50.0)
    # a model file inside the bundle selects that file, via the sibling bundle.json
    assert load_bundle(runtime_bundle / "model.onnx").precision == "fp32"


def test_tampered_model_byte(runtime_bundle, tmp_path):
    b = _copy(runtime_bundle, tmp_path)
    data = bytearray((b / "model.onnx").read_bytes())
    data[len(data) // 2] ^= 0x01
    (b / "model.onnx").write_bytes(bytes(data))
    with pytest.raises(BundleError, match="sha256 differs"):
        load_bundle(b)
    load_bundle(b, verify=False)  # same size: only the hash catches it


def test_edited_bundle_json(runtime_bundle, tmp_path):
    b = _copy(runtime_bundle, tmp_path)
    meta = json.loads((b / "bundle.json").read_text())
    meta["clip_spec"]["num_frames"] = 8
    (b / "bundle.json").write_text(json.dumps(meta))
    with pytest.raises(BundleError, match="edited after export"):
        load_bundle(b, verify=False)


def test_missing_and_malformed(runtime_bundle, tmp_path):
    with pytest.raises(BundleError, match="no such bundle"):
        load_bundle(tmp_path / "nope")
    b = _copy(runtime_bundle, tmp_path)
    (b / "model.onnx").unlink()
    with pytest.raises(BundleError, match="model.onnx is missing"):
        load_bundle(b)
    (b / "bundle.json").write_text("{not json")
    with pytest.raises(BundleError, match="not valid JSON"):
        load_bundle(b)
    (b / "bundle.json").unlink()
    with pytest.raises(BundleError, match="bundle.json missing"):
        load_bundle(b)


def test_format_and_version(runtime_bundle, tmp_path):
    b = _copy(runtime_bundle, tmp_path)
    meta = json.loads((b / "bundle.json").read_text())
    for change, msg in [({"format": "other"}, "not an internvqa-bundle"),
                        ({"format_version": FORMAT_VERSION + 1}, "newer than this runtime")]:
        m = {**meta, **change}
        m["meta_sha256"] = meta_digest(m)
        (b / "bundle.json").write_text(json.dumps(m))
        with pytest.raises(BundleError, match=msg):
            load_bundle(b)


def test_opset_newer_than_onnxruntime(runtime_bundle, tmp_path):
    b = make_runtime_bundle(tmp_path / "b", {"model.onnx": runtime_bundle / "model.onnx"},
                            versions={"opset": 999})
    with pytest.raises(BundleError, match="opset 999"):
        load_bundle(b)


def test_missing_precision(runtime_bundle):
    with pytest.raises(BundleError, match="no int8 model"):
        load_bundle(runtime_bundle, precision="int8")
    with pytest.raises(BundleError, match="unknown precision"):
        load_bundle(runtime_bundle, precision="fp8")


@pytest.mark.skipif(_has_tensorrt(), reason="checks the behaviour without TensorRT")
def test_plan_without_tensorrt(runtime_bundle, tmp_path):
    b = write_bundle(
        tmp_path / "b",
        {"model.onnx": runtime_bundle / "model.onnx", "model.plan": b"engine bytes stand-in"},
        {"clip_spec": ClipSpec(**RUNTIME_TEST_SPEC).to_dict(), "default_precision": "plan",
         "files": {"model.plan": {"precision": "int8", "tensorrt_version": "10.16.0",
                                  "gpu": "NVIDIA H100"}}},
    )
    with pytest.raises(BundleError, match="needs the tensorrt package.*ONNX precision"):
        load_bundle(b, precision="plan")
    with pytest.raises(BundleError, match="tensorrt package"):
        load_bundle(b / "model.plan")
    # no precision asked: the default plan falls back to an ONNX model, and says so
    fallback = load_bundle(b)
    assert fallback.precision == "fp32" and "TensorRT not installed" in fallback.note


@pytest.mark.tensorrt
def test_tensorrt_plan_matches_onnxruntime(runtime_bundle, tmp_path):
    """Build a plan from the tiny ONNX with TensorRT, run it, compare with ONNX Runtime."""
    trt = pytest.importorskip("tensorrt", reason="TensorRT is not installed on this machine")
    pytest.importorskip("cuda.bindings", reason="cuda-python is not installed")
    from internvqa.runtime.backend_ort import OrtBackend
    from internvqa.runtime.backend_trt import TensorRTBackend

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    if int(trt.__version__.split(".")[0]) < 11:
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    assert parser.parse((runtime_bundle / "model.onnx").read_bytes())
    config = builder.create_builder_config()
    profile = builder.create_optimization_profile()
    profile.set_shape("video", (1, 3, 4, 32, 32), (3, 3, 4, 32, 32), (6, 3, 4, 32, 32))
    config.add_optimization_profile(profile)
    plan = builder.build_serialized_network(network, config)
    (tmp_path / "model.plan").write_bytes(bytes(plan))
    x = np.random.default_rng(0).standard_normal((8, 3, 4, 32, 32)).astype(np.float32)
    ref_s, ref_f = OrtBackend(runtime_bundle / "model.onnx").run(x)
    backend = TensorRTBackend(tmp_path / "model.plan")
    assert backend.max_batch == 6
    s, f = backend.run(x)  # 8 > 6: split into two engine calls
    np.testing.assert_allclose(s, ref_s, atol=1e-4)
    np.testing.assert_allclose(f, ref_f, atol=1e-3)


def test_scores_are_clipped_to_the_documented_scale():
    from internvqa.runtime.bundle import VMAF_SCORE_SCALE, scale_score

    assert scale_score(VMAF_SCORE_SCALE, 1.009) == 100.0  # as libvmaf clips VMAF
    assert scale_score(VMAF_SCORE_SCALE, -0.2) == 0.0
    assert scale_score(VMAF_SCORE_SCALE, 0.5) == pytest.approx(50.0)
    unbounded = {"multiplier": 2.0, "offset": 1.0}
    assert scale_score(unbounded, 10.0) == 21.0
