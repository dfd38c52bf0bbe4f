"""Untrusted files: planted pickles never run, tampered or malformed bundles are refused
before inference with one line, and no project source builds shell command strings.

The library-level refusals live in test_checkpoint.py and test_bundle.py; this file adds
the command-line paths and what those leave out.
"""

from __future__ import annotations

import ast
import json
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from videos import moving_frames, write_video

from internvqa.runtime.bundle import load_bundle, meta_digest
from internvqa.runtime.cli_common import run_command
from internvqa.runtime.errors import BundleError, CheckpointError
from internvqa.runtime.score_cli import score

ROOT = Path(__file__).resolve().parents[1]


class _Planted:
    """Unpickling this writes a marker file: proof that the payload ran."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self):
        return (Path.write_text, (self.target, "pwned"))


def _plant(path: Path, marker: Path) -> Path:
    import torch

    torch.save({"model": {"cls_token": torch.zeros(1, 1, 8)}, "x": _Planted(marker)}, path)
    return path


@pytest.mark.slow
def test_planted_pickle_refused_by_vqa_distill(tmp_path, small_video):
    """`vqa-distill teacher --init evil.pth`: exit 2, one line, the payload never runs."""
    marker = tmp_path / "side_effect.txt"
    evil = _plant(tmp_path / "evil.pth", marker)
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"path,mos,source,split\n{small_video},50,a,train\n{small_video},60,b,val\n")
    cmd = [sys.executable, "-m", "internvqa.distill.cli", "teacher", "--manifest", str(manifest),
           "--init", str(evil), "--preset", "demo", "--out", str(tmp_path / "run"),
           "--no-progress", "--threads", "1"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1, proc.stderr
    assert "will not be unpickled" in proc.stderr and "Traceback" not in proc.stderr
    assert not marker.exists()


def test_planted_resume_state_is_refused(tmp_path):
    """A planted `resume_state.pt` (training resume) is read with weights_only too."""
    from internvqa.distill.train_common import load_resume_state

    marker = tmp_path / "side_effect.txt"
    evil = _plant(tmp_path / "resume_state.pt", marker)
    with pytest.raises(CheckpointError, match="cannot read resume state"):
        load_resume_state(evil)
    raw = tmp_path / "raw.pkl"
    raw.write_bytes(pickle.dumps({"step": 1, "x": _Planted(marker)}))
    with pytest.raises(CheckpointError):
        load_resume_state(raw)
    assert not marker.exists()


# ---- bundles on the command line ----------------------------------------------------------
@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return write_video(tmp_path_factory.mktemp("u") / "c.mp4", moving_frames(12, 64, 48))


def _copy(bundle: Path, dst: Path) -> Path:
    shutil.rmtree(dst, ignore_errors=True)
    return Path(shutil.copytree(bundle, dst))


def _edit_meta(b: Path, change, rehash: bool) -> None:
    meta = json.loads((b / "bundle.json").read_text())
    change(meta)
    if rehash:
        meta["meta_sha256"] = meta_digest(meta)
    (b / "bundle.json").write_text(json.dumps(meta))


def _garbage_same_size(b: Path) -> None:
    """Not an ONNX graph at all: reaching onnxruntime would fail with another message."""
    n = (b / "model.onnx").stat().st_size
    (b / "model.onnx").write_bytes(b"\xff" * n)


def _flip(b: Path) -> None:
    data = bytearray((b / "model.onnx").read_bytes())
    data[len(data) // 3] ^= 0x40
    (b / "model.onnx").write_bytes(bytes(data))


def _swap_scale(meta) -> None:
    meta["score_scale"]["multiplier"] = 1.0


TAMPERING = {
    "onnx byte flipped": (_flip, "sha256 differs"),
    "onnx replaced, same size": (_garbage_same_size, "sha256 differs"),
    "onnx truncated": (lambda b: (b / "model.onnx").write_bytes((b / "model.onnx").read_bytes()[:-9]),
                       "size differs"),
    "bundle.json field edited": (lambda b: _edit_meta(b, _swap_scale, rehash=False),
                                 "edited after export"),
    "file outside the bundle": (
        lambda b: _edit_meta(b, lambda m: m.update(files={"../model.onnx": m["files"]["model.onnx"]}),
                             rehash=True), "bad file name"),
    "non-finite score scale": (
        lambda b: _edit_meta(b, lambda m: m["score_scale"].update(offset=float("inf")), rehash=True),
        "finite number"),
}


@pytest.mark.parametrize("case", list(TAMPERING))
def test_tampered_bundle_refused_by_vqa_score(runtime_bundle, clip, tmp_path, capsys, case):
    """Exit 2, one `error:` line naming the problem, and no score row written."""
    tamper, message = TAMPERING[case]
    b = _copy(runtime_bundle, tmp_path / "b")
    tamper(b)
    out = tmp_path / "scores.csv"
    capsys.readouterr()
    rc = run_command(score, ["--bundle", str(b), "--csv", str(out), "--no-progress", str(clip)])
    cap = capsys.readouterr()
    assert rc == 2 and cap.err.startswith("error: ") and cap.err.count("\n") == 1, cap.err
    assert message in cap.err and cap.out == ""
    assert not out.exists() or len(out.read_text().splitlines()) <= 1  # header at most


def test_engine_of_another_tensorrt_version_refused(runtime_bundle, clip, tmp_path, capsys):
    """A plan entry claiming TensorRT 0.0.1 is never deserialised: with TensorRT installed
    the version differs, without it the plan cannot load; either way exit 2 before any
    engine runs. With no precision asked for and no TensorRT, the ONNX model is used."""
    from internvqa.runtime.bundle import write_bundle

    meta = json.loads((runtime_bundle / "bundle.json").read_text())
    b = write_bundle(
        tmp_path / "b", {"model.onnx": runtime_bundle / "model.onnx", "model.plan": b"not an engine"},
        {"clip_spec": meta["clip_spec"], "default_precision": "plan",
         "files": {"model.plan": {"precision": "int8", "tensorrt_version": "0.0.1", "gpu": "X"}}})
    capsys.readouterr()
    rc = run_command(score, ["--bundle", str(b), "--precision", "plan", "--no-progress", str(clip)])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1
    try:
        import tensorrt  # noqa: F401
    except Exception:  # noqa: BLE001 - absent or broken CUDA: the plan cannot be used
        assert "needs the tensorrt package" in err
        assert load_bundle(b).precision == "fp32"
    else:
        assert "built by TensorRT 0.0.1" in err


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-10, 10**12) | st.floats(allow_nan=True)
    | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12)
FIELDS = ["files", "clip_spec", "inputs", "outputs", "score_scale", "versions", "model",
          "default_precision", "format_version", "files.model.onnx", "files.model.onnx.precision",
          "files.model.onnx.bytes", "clip_spec.num_frames", "clip_spec.size", "score_scale.offset",
          "inputs.0", "versions.opset"]


@settings(max_examples=80, deadline=5_000, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(field=st.sampled_from(FIELDS), value=JSON)
def test_malformed_bundle_json_is_a_bundle_error(runtime_bundle, tmp_path_factory, field, value):
    """Any value in any field, with a matching content hash: loads, or a BundleError."""
    b = tmp_path_factory.mktemp("m")
    (b / "model.onnx").symlink_to(runtime_bundle / "model.onnx")
    meta = json.loads((runtime_bundle / "bundle.json").read_text())
    node, *path = field.split(".")
    if field.startswith("files.model.onnx"):
        node, path = "files", ["model.onnx", *path[2:]]
    target, key = meta, node
    for k in path:
        target = target[key]
        key = int(k) if isinstance(target, list) else k
    target[key] = value
    meta["meta_sha256"] = meta_digest(meta)
    (b / "bundle.json").write_text(json.dumps(meta))
    try:
        load_bundle(b, verify=False)
    except BundleError as exc:
        assert "\n" not in str(exc)


# ---- no shell strings ---------------------------------------------------------------------
SOURCE_DIRS = ("runtime", "distill", "export", "benchmarks", "tests", "docker", ".ci")
SHELL_CALLS = {("os", "system"), ("os", "popen"), ("subprocess", "getoutput"),
               ("subprocess", "getstatusoutput"), ("os", "execl"), ("os", "spawnl")}


def shell_uses(source: str, filename: str = "<src>") -> list[str]:
    """`shell=True` keywords and calls of shell-string APIs in Python source."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if not isinstance(node, ast.Call):
            continue
        for kw in node.keywords:
            if kw.arg == "shell" and not (isinstance(kw.value, ast.Constant) and kw.value.value is False):
                found.append(f"{filename}:{node.lineno}: shell={ast.unparse(kw.value)}")
        f = node.func
        if (isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name)
                and (f.value.id, f.attr) in SHELL_CALLS):
            found.append(f"{filename}:{node.lineno}: {f.value.id}.{f.attr}()")
        if isinstance(f, ast.Name) and f.id in ("system", "popen", "getoutput"):
            found.append(f"{filename}:{node.lineno}: {f.id}()")
    return found


def test_the_scanner_finds_shell_strings():
    snippet = ("import os, subprocess\nsubprocess.run('ls ' + p, shell=True)\nos.system('rm x')\n"
               "os.popen('id')\nsubprocess.check_output(c, shell=flag)\nsubprocess.run(['ls'])\n")
    assert len(shell_uses(snippet)) == 4


def test_no_shell_string_subprocesses_in_the_project():
    files = [p for d in SOURCE_DIRS for p in (ROOT / d).rglob("*.py") if ".venv" not in p.parts]
    files += [p for p in ROOT.glob("*.py")]
    assert len(files) > 30
    found = [hit for p in files for hit in shell_uses(p.read_text(encoding="utf-8"), str(p.relative_to(ROOT)))]
    assert not found, "shell-string subprocess usage (pass an argument list):\n" + "\n".join(found)
