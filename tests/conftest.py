"""Shared pytest fixtures. Each block belongs to one area; keep blocks independent."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

# Keep the 2-core CI machine responsive: one BLAS/torch thread per test process.
os.environ.setdefault("OMP_NUM_THREADS", "2")

sys.path.insert(0, str(Path(__file__).parent))

from videos import moving_frames, write_video  # noqa: E402


# --- video fixtures ---
@pytest.fixture(scope="session")
def small_video(tmp_path_factory) -> Path:
    """40 frames of 128x72 H.264: moving texture, 25 fps."""
    d = tmp_path_factory.mktemp("videos")
    return write_video(d / "small.mp4", moving_frames(40, 128, 72))


# --- runtime bundle fixture ---
RUNTIME_TEST_SPEC = {"num_frames": 4, "frame_stride": 2, "size": 32, "resize_short": 48,
                     "crop": "three"}


def build_tiny_onnx(path: Path, spec, nan_score: bool = False) -> Path:
    """A tiny real video model (Conv3d + pooling + two heads) exported to ONNX opset 17.

    `nan_score=True` makes a model whose score is NaN (sqrt of a negative number)."""
    import torch

    class TinyVQA(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = torch.nn.Conv3d(3, 16, kernel_size=(2, 4, 4), stride=(1, 4, 4))
            self.pool = torch.nn.AdaptiveAvgPool3d(1)
            self.feature = torch.nn.Linear(16, 768)
            self.head = torch.nn.Linear(768, 1)

        def forward(self, video):
            x = torch.nn.functional.gelu(self.stem(video))
            feat = self.feature(self.pool(x).flatten(1))
            score = torch.sigmoid(self.head(feat)).squeeze(1)
            if nan_score:
                score = torch.sqrt(score - 2.0)
            return score, feat

    torch.manual_seed(0)
    model = TinyVQA().eval()
    x = torch.randn(2, 3, spec.num_frames, spec.size, spec.size)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter
        _export(torch, model, x, path)
    return path


def _export(torch, model, x, path: Path) -> None:
    torch.onnx.export(
        model, (x,), str(path), dynamo=False, opset_version=17, input_names=["video"],
        output_names=["score", "feature"],
        dynamic_axes={"video": {0: "batch"}, "score": {0: "batch"}, "feature": {0: "batch"}},
    )


@pytest.fixture(scope="session")
def runtime_bundle(tmp_path_factory) -> Path:
    """A real fp32 bundle of a tiny model, written with `write_bundle` (read-only: copy it
    before tampering)."""
    from internvqa.runtime.bundle import write_bundle
    from internvqa.runtime.clipspec import ClipSpec

    spec = ClipSpec(**RUNTIME_TEST_SPEC)
    d = tmp_path_factory.mktemp("bundle")
    onnx_path = build_tiny_onnx(d / "tiny.onnx", spec)
    meta = {
        "model": {"name": "tiny-test", "config": {"note": "test model, random weights"}},
        "clip_spec": spec.to_dict(),
        "versions": {"opset": 17, "tensorrt": None},
        "parity": {}, "accuracy": {}, "source_checkpoint": "none (test fixture)",
    }
    return write_bundle(d / "tiny-bundle", {"model.onnx": onnx_path}, meta)


def make_runtime_bundle(dirpath: Path, files: dict | None = None, **meta_changes) -> Path:
    """Another bundle of the tiny model (e.g. with a plan entry or other versions)."""
    from internvqa.runtime.bundle import write_bundle
    from internvqa.runtime.clipspec import ClipSpec

    spec = ClipSpec(**RUNTIME_TEST_SPEC)
    if files is None:
        files = {"model.onnx": build_tiny_onnx(dirpath.parent / f"{dirpath.name}.onnx", spec)}
    meta = {"model": {"name": "tiny-test", "config": {}}, "clip_spec": spec.to_dict(),
            "versions": {"opset": 17, "tensorrt": None}}
    meta.update(meta_changes)
    return write_bundle(dirpath, files, meta)
