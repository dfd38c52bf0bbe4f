"""`vqa-export` killed with SIGKILL mid-build loses nothing: the rerun gives the same graphs
as an uninterrupted export, and the killed run's temp folder is cleaned up."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from videos import moving_frames, write_video

from internvqa.distill.checkpoint import save_checkpoint
from internvqa.distill.models import create_model
from internvqa.runtime.bundle import DEFAULT_SCORE_SCALE
from internvqa.runtime.clipspec import ClipSpec
from internvqa.runtime.manifest import ManifestRow, write_manifest

pytestmark = pytest.mark.slow
SPEC = ClipSpec(num_frames=2, frame_stride=2, size=56, resize_short=None)
GRAPHS = ("model.onnx", "model.fp16.onnx", "model.int8.onnx")


def _setup(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(4):
        p = write_video(root / f"v{i}.mp4", moving_frames(8, 64, 64, seed=i),
                        options={"crf": str(12 + 10 * i)})
        rows.append(ManifestRow(path=p.name, mos=90.0 - 15 * i, source=f"s{i}",
                                split="test" if i >= 2 else "train"))
    manifest = write_manifest(rows, root / "manifest.csv")
    import torch

    torch.manual_seed(0)
    ckpt = root / "work" / "runs" / "student-vit_tiny" / "best"
    save_checkpoint(ckpt, create_model("vit_tiny"), SPEC.to_dict(), DEFAULT_SCORE_SCALE,
                    {"manifest": str(manifest.resolve())}, {})
    return root / "work"


def _cmd(work: Path) -> list[str]:
    exe = Path(sys.executable).parent / "vqa-export"
    return [str(exe), "--student", "vit_tiny", "--int8", "--calib-clips", "4",
            "--parity-clips", "2", "--latency-runs", "0", "--no-progress",
            "--out", str(work / "bundles" / "vit_tiny")]


def _hashes(bundle: Path) -> dict[str, str]:
    return {g: hashlib.sha256((bundle / g).read_bytes()).hexdigest() for g in GRAPHS}


def test_vqa_export_killed_then_rerun(tmp_path):
    work = _setup(tmp_path)
    env = {**os.environ, "INTERNVQA_WORK": str(work)}
    bundles = work / "bundles"
    proc = subprocess.Popen(_cmd(work), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 180
    # kill once the export has started writing graphs into its temp folder
    while not any(bundles.glob(".vit_tiny.*.tmp/model.onnx")) if bundles.exists() else True:
        assert proc.poll() is None, proc.stderr.read().decode()[-800:]
        assert time.monotonic() < deadline, "export made no progress"
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL
    assert not (bundles / "vit_tiny").exists(), "a killed export must not leave a bundle"
    assert list(bundles.glob(".vit_tiny.*.tmp")), "the temp folder should be there to sweep"
    assert list(bundles.glob(".vit_tiny.*.work-*.tmp")), "the scratch folder belongs beside the bundle"

    rerun = subprocess.run(_cmd(work), env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-800:]
    assert not list(bundles.glob(".vit_tiny.*.tmp")), "the killed run's temp folder was left"
    meta = json.loads((bundles / "vit_tiny" / "bundle.json").read_text())
    assert set(GRAPHS) <= set(meta["files"])

    # an uninterrupted export in another work dir gives the same graphs, byte for byte
    other = _setup(tmp_path / "clean")
    ok = subprocess.run(_cmd(other), env={**os.environ, "INTERNVQA_WORK": str(other)},
                        capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0, ok.stderr[-800:]
    assert _hashes(bundles / "vit_tiny") == _hashes(other / "bundles" / "vit_tiny")
