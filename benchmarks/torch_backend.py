"""A project checkpoint run with PyTorch behind the runtime's `Backend` interface.

`vqa-bench --engine CKPT_DIR` and `--teacher CKPT` compare engines with the PyTorch
model they came from. Only the bench layer runs a checkpoint as an engine, so the
backend lives here (the runtime has ONNX Runtime and TensorRT backends only);
`bench.open_backend` imports this module only in that branch, so benchmarking an ONNX
bundle loads no torch.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from internvqa.distill.checkpoint import load_checkpoint
from internvqa.runtime.bundle import Bundle
from internvqa.runtime.clipspec import ClipSpec
from internvqa.runtime.errors import UsageError


class TorchBackend:
    """A PyTorch model as a `Backend`: (B, 3, T, S, S) -> (score, feature), no grad."""

    def __init__(self, model: Any, device: str):
        self._torch, self.model, self.device = torch, model, device
        self.name = "pytorch"
        self.providers = [f"torch {torch.__version__} {device}"]
        self.max_batch: int | None = None
        side = int(getattr(getattr(model, "cfg", None), "side_dim", 0) or 0)
        self.side_dim: int | None = side or None  # a hybrid checkpoint reads the bitstream

    def run(self, x: np.ndarray, side: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        torch = self._torch
        with torch.inference_mode():
            t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(self.device)
            if self.side_dim:
                from internvqa.runtime.backend import side_input

                s = torch.from_numpy(side_input(side, x.shape[0], self.side_dim)).to(self.device)
                out = self.model(t, s)
            else:
                out = self.model(t)
            feature, score = out if isinstance(out, tuple) else (None, out)
            if self.device.startswith("cuda"):
                torch.cuda.synchronize()
            score = score.float().reshape(x.shape[0]).cpu().numpy()
            feature = (feature.float().reshape(x.shape[0], -1).cpu().numpy()
                       if feature is not None else np.zeros((x.shape[0], 0), np.float32))
        return score, feature


def load_torch_backend(checkpoint: str | os.PathLike, device: str = "auto",
                       threads: int | None = None) -> tuple[TorchBackend, Bundle]:
    """Load a project checkpoint with PyTorch (imported here only) as a backend + pseudo-bundle.

    The pseudo-bundle carries the checkpoint's clip spec and score scale, so a `Scorer` over
    it scores videos exactly as the exported bundle would.
    """
    if threads:
        torch.set_num_threads(int(threads))
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise UsageError("device cuda asked for, but torch sees no CUDA GPU")
    model, config = load_checkpoint(checkpoint, map_location=device)
    spec = ClipSpec.from_dict(config["clip_spec"])
    meta = {"model": config.get("model", {}), "source_checkpoint": str(checkpoint),
            "provenance": config.get("provenance", {}), "metrics": config.get("metrics", {})}
    name = str(config.get("model", {}).get("architecture", "checkpoint"))
    meta["model"] = {"name": name, **meta["model"]}
    bundle = Bundle(Path(checkpoint), meta, spec, config["score_scale"], "pytorch")
    return TorchBackend(model, device), bundle
