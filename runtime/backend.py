"""The engine interface the scorer talks to, and the choice of engine for a bundle.

A backend turns a normalised float32 batch (B, 3, T, S, S) into `score` (B,) and
`feature` (B, 768). A hybrid model's graph has a second input, `side` (B, SIDE_DIM): the
bitstream side information of each row (`internvqa.runtime.bitstream`); `side_dim` says
whether the engine takes it (None: pixel-only graph, `side` is ignored), and a missing
`side` means pixel-only mode (zeros). Two exist: `OrtBackend` (ONNX Runtime; CPU, or CUDA when
onnxruntime-gpu is installed) and `TensorRTBackend` (a serialized TensorRT plan; GPU
hosts only). Both are imported lazily so `import internvqa.runtime` stays light.

Thread-safety: `OrtBackend.run` may be called from several threads at once (ONNX Runtime's
`InferenceSession.run` is thread-safe). `TensorRTBackend.run` owns one CUDA stream and one
set of buffers and serialises its callers with a lock.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from internvqa.runtime.bundle import Bundle
from internvqa.runtime.errors import UsageError

DEVICES = ("auto", "cpu", "cuda")


class Backend(Protocol):
    name: str
    providers: list[str]
    max_batch: int | None  # largest batch the engine accepts (None: unbounded)
    side_dim: int | None  # width of the graph's `side` input (None: no such input)

    def run(self, x: np.ndarray, side: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(B, 3, T, S, S) float32 [+ side (B, K)] -> (score (B,), feature (B, D)) float32."""
        ...


SIDE_INPUT = "side"


def side_input(side: np.ndarray | None, batch: int, dim: int) -> np.ndarray:
    """The graph's `side` feed: zeros (pixel-only) when None, else checked (batch, dim)."""
    if side is None:
        return np.zeros((batch, dim), dtype=np.float32)
    side = np.ascontiguousarray(side, dtype=np.float32)
    if side.shape != (batch, dim):
        raise ValueError(f"side input {side.shape} does not match ({batch}, {dim})")
    return side


def create_backend(bundle: Bundle, device: str = "auto", threads: int | None = None) -> Backend:
    """The engine for the bundle's selected precision: TensorRT for `plan`, else ORT."""
    if device not in DEVICES:
        raise UsageError(f"device must be one of {DEVICES}, got {device!r}")
    path = bundle.model_file()
    if bundle.precision == "plan":
        if device == "cpu":
            raise UsageError("a TensorRT plan runs on a GPU only; pick an ONNX precision for cpu")
        from internvqa.runtime.backend_trt import TensorRTBackend

        return TensorRTBackend(path)
    from internvqa.runtime.backend_ort import OrtBackend

    return OrtBackend(path, threads=threads, device=device)


def check_outputs(score: np.ndarray, feature: np.ndarray, batch: int) -> tuple[np.ndarray, np.ndarray]:
    """Shape the raw outputs as (B,) and (B, D) float32, whatever trailing 1s the graph kept."""
    score = np.asarray(score, dtype=np.float32).reshape(batch, -1)
    if score.shape[1] != 1:
        raise ValueError(f"model 'score' output has {score.shape[1]} values per clip, expected 1")
    feature = np.asarray(feature, dtype=np.float32).reshape(batch, -1)
    return score[:, 0], feature
