"""The engine interface the scorer talks to, and the choice of engine for a bundle.

A backend turns a normalised float32 batch (B, 3, T, S, S) into `score` (B,) and
`feature` (B, 768). Two exist: `OrtBackend` (ONNX Runtime; CPU, or CUDA when
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

    def run(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(B, 3, T, S, S) float32 -> (score (B,) float32, feature (B, D) float32)."""
        ...


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
