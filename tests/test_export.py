"""vqa-export end to end on a tiny model and tiny real videos: graphs, bundle, CLI errors."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from click.testing import CliRunner
from videos import moving_frames, write_video

from internvqa.distill.checkpoint import save_checkpoint
from internvqa.distill.models import create_model
from internvqa.export import tensorrt_build as tb
from internvqa.export.cli import main
from internvqa.export.qdq_rules import check_qdq
from internvqa.runtime.bundle import DEFAULT_SCORE_SCALE, load_bundle
from internvqa.runtime.clipspec import ClipSpec
from internvqa.runtime.manifest import ManifestRow, write_manifest

SPEC = ClipSpec(num_frames=2, frame_stride=2, size=56, resize_short=None)
SCALE = {**DEFAULT_SCORE_SCALE, "multiplier": 50.0, "offset": 1.0}  # not the default: must travel


def _corpus(root: Path) -> Path:
    rows = []
    for i in range(6):
        p = write_video(root / f"v{i}.mp4", moving_frames(12, 64, 64, seed=i),
                        options={"crf": str(10 + 8 * i)})
        rows.append(ManifestRow(path=p.name, mos=90.0 - 10 * i, source=f"s{i}",
                                split="test" if i >= 4 else "train"))
    return write_manifest(rows, root / "manifest.csv")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("export")
    manifest = _corpus(root)
    work = root / "work"
    ckpt = work / "runs" / "student-vit_tiny" / "best"
    save_checkpoint(ckpt, create_model("vit_tiny"), SPEC.to_dict(), SCALE,
                    {"manifest": str(manifest.resolve())}, {"srcc": 0.5})
    return {"root": root, "manifest": manifest, "work": work, "ckpt": ckpt}


def _run(args: list[str], work: Path):
    return CliRunner().invoke(main, args, env={"INTERNVQA_WORK": str(work)},
                              catch_exceptions=False)


@pytest.fixture(scope="module")
def exported(corpus) -> dict:
    """One full `vqa-export --student vit_tiny --int8` run (defaults find everything).

    It runs from the corpus folder with a relative work dir, as `./run demo` does.
    """
    triton = corpus["root"] / "triton"
    cwd = os.getcwd()
    os.chdir(corpus["root"])
    try:
        res = _run(["--student", "vit_tiny", "--int8", "--calib-clips", "8", "--parity-clips",
                    "4", "--latency-runs", "2", "--triton", str(triton), "--json"], Path("work"))
    finally:
        os.chdir(cwd)
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    bundle = corpus["root"] / summary["bundle"]  # relative to the corpus folder, or absolute
    meta = json.loads((bundle / "bundle.json").read_text())
    return {**corpus, "bundle": bundle, "meta": meta, "summary": summary, "triton": triton,
            "stderr": res.stderr}


def test_bundle_layout_hashes_and_provenance(exported):
    bundle, meta = exported["bundle"], exported["meta"]
    assert bundle == exported["work"] / "bundles" / "vit_tiny"
    assert set(meta["files"]) == {"model.onnx", "model.fp16.onnx", "model.int8.onnx"}
    for name, entry in meta["files"].items():
        data = (bundle / name).read_bytes()
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()
        assert entry["bytes"] == len(data)
    assert meta["clip_spec"] == SPEC.to_dict()  # from the checkpoint, not re-declared
    assert meta["score_scale"] == SCALE
    # INT8 is the default unless the export's CPU timing measured it slower than FP32
    speedup = meta["latency_cpu"].get("int8_speedup_vs_fp32")
    assert meta["default_precision"] == ("fp32" if speedup is not None and speedup < 1 else "int8")
    assert meta["inputs"][0] == {"name": "video", "shape": ["batch", 3, 2, 56, 56],
                                 "dtype": "float32"}
    assert [o["name"] for o in meta["outputs"]] == ["score", "feature"]
    assert {"torch", "onnx", "onnxruntime", "opset", "tensorrt"} <= set(meta["versions"])
    assert meta["source_checkpoint"] == str(exported["ckpt"].resolve())
    quant = meta["files"]["model.int8.onnx"]["quantization"]
    assert quant["calibration"]["clips"] == 8 and quant["qdq_rules"] == "passed"
    latest = exported["work"] / "bundles" / "latest"
    assert latest.resolve() == bundle.resolve()
    b = load_bundle(latest)
    assert b.precision == meta["default_precision"]
    assert set(b.precisions()) == {"fp32", "fp16", "int8"}


def test_parity_and_accuracy_figures_recorded(exported):
    par, acc = exported["meta"]["parity"], exported["meta"]["accuracy"]
    assert par["pytorch_vs_fp32"]["clips"] == 4
    assert par["pytorch_vs_fp32"]["score_abs_max"] <= 1e-4
    assert par["pytorch_vs_fp32"]["feature_cos_min"] >= 0.9999
    assert par["fp16_vs_fp32"]["score_abs_max"] <= 2e-3
    assert par["int8_vs_fp32"]["feature_cos_min"] > 0.99
    assert acc["split"] == "test" and acc["videos"] == 2
    assert {"srcc_drop", "plcc_drop", "score_mae_vs_fp32"} <= set(acc["int8"])
    lat = exported["meta"]["latency_cpu"]
    assert lat["fp32"]["median_ms"] > 0 and lat["int8_speedup_vs_fp32"] > 0


def test_onnx_graphs_single_file_dynamic_batch_fp32_io(exported):
    bundle = exported["bundle"]
    assert not list(bundle.glob("*.data"))
    x = np.random.default_rng(0).standard_normal((3, 3, 2, 56, 56)).astype(np.float32)
    for name in ("model.onnx", "model.fp16.onnx", "model.int8.onnx"):
        model = onnx.load(str(bundle / name))
        onnx.checker.check_model(model)
        (inp,) = model.graph.input
        assert inp.name == "video"
        assert inp.type.tensor_type.shape.dim[0].dim_param
        assert [o.name for o in model.graph.output] == ["score", "feature"]
        assert all(o.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
                   for o in model.graph.output)
        score, feature = ort.InferenceSession(str(bundle / name)).run(None, {"video": x})
        assert score.shape == (3,) and feature.shape == (3, 768)
    assert check_qdq(bundle / "model.int8.onnx") == []


def test_engine_step_skipped_with_instructions(exported):
    if tb.tensorrt_status()[0]:
        pytest.skip("TensorRT and a GPU exist here: the engine is built instead")
    note = exported["meta"]["engine"]["note"]
    assert "skipped" in note and "tensorrt" in note
    assert "--engine-only" in note and "trtexec" in note and "--int8" not in note.split("no ")[0]
    assert "TensorRT engine skipped" in exported["stderr"]


def test_triton_repository(exported):
    model_dir = exported["triton"] / "vit_tiny_onnx"
    assert (model_dir / "1" / "model.onnx").read_bytes() == \
        (exported["bundle"] / "model.int8.onnx").read_bytes()
    cfg = (model_dir / "config.pbtxt").read_text()
    for text in ('name: "vit_tiny_onnx"', 'backend: "onnxruntime"', "max_batch_size: 8",
                 'name: "video"', "dims: [ 3, 2, 56, 56 ]", 'name: "score"',
                 'name: "feature"', "dims: [ 768 ]", "dynamic_batching"):
        assert text in cfg
    assert not (exported["triton"] / "vit_tiny_trt").exists() or tb.tensorrt_status()[0]


def _assert_clean_failure(res, out: Path, needle: str) -> None:
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and needle in lines[0], res.stderr
    assert "Traceback" not in res.output
    assert not out.exists()
    assert not [p for p in out.parent.glob(f".{out.name}*")] if out.parent.exists() else True


def test_cli_no_checkpoint(tmp_path):
    res = _run(["--student", "vit_s", "--int8"], tmp_path / "work")
    _assert_clean_failure(res, tmp_path / "work" / "bundles" / "vit_s", "no distilled vit_s")


def test_cli_wrong_architecture(corpus, tmp_path):
    out = tmp_path / "b"
    res = _run(["--student", "vit_s", "--checkpoint", str(corpus["ckpt"]), "--out", str(out)],
               corpus["work"])
    _assert_clean_failure(res, out, "expected vit_s")


def test_cli_unwritable_output(corpus, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    out = blocker / "bundle"
    res = _run(["--checkpoint", str(corpus["ckpt"]), "--out", str(out)], corpus["work"])
    assert res.exit_code == 2 and "not writable" in res.stderr
    assert blocker.read_text() == "not a folder"


def test_cli_manifest_with_missing_videos(corpus, tmp_path):
    rows = [ManifestRow(path=str(corpus["root"] / "v0.mp4"), mos=50.0, source="a"),
            ManifestRow(path="gone.mp4", mos=40.0, source="b")]
    manifest = write_manifest(rows, tmp_path / "m.csv")
    out = tmp_path / "b"
    res = _run(["--checkpoint", str(corpus["ckpt"]), "--manifest", str(manifest),
                "--out", str(out)], corpus["work"])
    _assert_clean_failure(res, out, "not found")


def test_failure_midway_leaves_previous_bundle(corpus, tmp_path, monkeypatch):
    """A failure after the slow work started keeps the old bundle and no temp dirs."""
    from internvqa.export import pipeline

    out = tmp_path / "bundle"
    out.mkdir()
    (out / "bundle.json").write_text("{}")

    def boom(*a, **k):
        raise pipeline.ExportError("injected failure")

    monkeypatch.setattr(pipeline, "convert_fp16", boom)
    res = _run(["--checkpoint", str(corpus["ckpt"]), "--out", str(out), "--parity-clips", "1"],
               corpus["work"])
    assert res.exit_code == 2 and "error: injected failure" in res.stderr
    assert os.listdir(out) == ["bundle.json"]
    assert [p.name for p in tmp_path.iterdir()] == ["bundle"]


@pytest.mark.parametrize(("gpu", "tag"), [("NVIDIA H100 80GB HBM3", "h100"),
                                          ("NVIDIA GeForce RTX 4090", "rtx4090"),
                                          ("NVIDIA A10G", "a10g"), ("Tesla T4", "t4")])
def test_engine_file_name(gpu, tag):
    assert tb.engine_name("int8", gpu, "10.16.0.72") == f"model.int8.{tag}.trt10.16.plan"


def test_an_fp16_graph_outside_its_bound_is_left_out_not_fatal(corpus, tmp_path, monkeypatch):
    """FP16 over its parity bound: the bundle ships FP32 (+ INT8) and says why FP16 is gone."""
    from internvqa.export import parity

    monkeypatch.setitem(parity.BOUNDS, "fp16", {"score_abs": 0.0})
    out = tmp_path / "b"
    res = _run(["--checkpoint", str(corpus["ckpt"]), "--manifest", str(corpus["manifest"]),
                "--out", str(out), "--parity-clips", "4", "--latency-runs", "0"], corpus["work"])
    assert res.exit_code == 0, res.output
    meta = json.loads((out / "bundle.json").read_text())
    assert set(meta["files"]) == {"model.onnx"} and not (out / "model.fp16.onnx").exists()
    assert "FP16 ONNX vs FP32 parity failed" in meta["parity"]["fp16_dropped"]
    assert "FP16 graph left out of the bundle" in res.output
