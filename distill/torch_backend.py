"""A PyTorch model behind the runtime's `Backend` interface: the one torch engine.

`Backend.run(x, side=None) -> (score (B,), feature (B, D))` is what the runtime's `Scorer`
drives; `TorchBackend` gives a registry model (or a loaded checkpoint) that shape, so the
code that compares engines needs no second runner. Its users:

- `vqa-export` checks the FP32 graph against the PyTorch model it came from
  (`export.parity.compare(TorchBackend(model), {"fp32": OrtBackend(graph)}, clips)`);
- `vqa-bench --engine CKPT_DIR` and `--teacher CKPT` time and score a checkpoint through
  `load_torch_backend` (the bench factory `bench.open_backend` imports this module only in
  that branch, so benchmarking an ONNX bundle loads no torch).

It lives in `distill` (models and checkpoint IO) because both export and bench import
distill, and neither may be imported by the other; the runtime itself has ONNX Runtime and
TensorRT backends only. Models return `(score, feature)`, the graph's order
(`internvqa.distill.models`), so nothing here reorders outputs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from internvqa.runtime.backend import side_input
from internvqa.runtime.bundle import Bundle
from internvqa.runtime.clipspec import ClipSpec
from internvqa.runtime.errors import UsageError

from .checkpoint import load_checkpoint


class TorchBackend:
    """A PyTorch model as a `Backend`: (B, 3, T, S, S) [+ side] -> (score, feature), no grad."""

    def __init__(self, model: Any, device: str = "cpu"):
        self.model, self.device = model, device
        self.name = "pytorch"
        self.providers = [f"torch {torch.__version__} {device}"]
        self.max_batch: int | None = None
        side = int(getattr(getattr(model, "cfg", None), "side_dim", 0) or 0)
        self.side_dim: int | None = side or None  # a hybrid model reads the bitstream

    def run(self, x: np.ndarray, side: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        with torch.inference_mode():
            t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(self.device)
            if self.side_dim:
                s = torch.from_numpy(side_input(side, x.shape[0], self.side_dim)).to(self.device)
                out = self.model(t, s)
            else:
                out = self.model(t)
            score, feature = out if isinstance(out, tuple) else (out, None)
            if self.device.startswith("cuda"):
                torch.cuda.synchronize()
            score = score.float().reshape(x.shape[0]).cpu().numpy()
            feature = (feature.float().reshape(x.shape[0], -1).cpu().numpy()
                       if feature is not None else np.zeros((x.shape[0], 0), np.float32))
        return score, feature


def load_torch_backend(checkpoint: str | os.PathLike, device: str = "auto",
                       threads: int | None = None) -> tuple[TorchBackend, Bundle]:
    """Load a project checkpoint with PyTorch as a backend + pseudo-bundle.

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
