"""ONNX Runtime backend: CPU by default, CUDA / TensorRT execution providers on request.

`device="cuda"` (or `providers=[...]`) uses onnxruntime-gpu's providers when the installed
onnxruntime offers them; `device="auto"` takes CUDA when available, else the CPU.
`InferenceSession.run` is thread-safe, so one backend serves many threads.
`graph_optimization` is ORT's graph optimisation level ("all" by default, as `vqa-score`
runs; export's latency check can time a graph at a lower level).
"""

from __future__ import annotations

import os

import numpy as np

from internvqa.runtime.backend import SIDE_INPUT, check_outputs, side_input
from internvqa.runtime.errors import BundleError, UsageError

GRAPH_OPTIMIZATION = ("disable", "basic", "extended", "all")


class OrtBackend:
    """One ONNX Runtime session with named `video` -> `score`, `feature`."""

    def __init__(
        self,
        model_path: str | os.PathLike,
        threads: int | None = None,
        providers: list[str] | None = None,
        device: str = "cpu",
        graph_optimization: str = "all",
    ):
        import onnxruntime as ort

        if graph_optimization not in GRAPH_OPTIMIZATION:
            raise UsageError(f"graph_optimization must be one of {GRAPH_OPTIMIZATION}, "
                             f"got {graph_optimization!r}")

        available = ort.get_available_providers()
        if providers is None:
            gpu = [p for p in ("CUDAExecutionProvider",) if p in available]
            if device == "cuda" and not gpu:
                raise UsageError(
                    "device cuda needs onnxruntime-gpu with the CUDA provider "
                    f"(installed onnxruntime offers: {', '.join(available)})"
                )
            providers = [*gpu, "CPUExecutionProvider"] if device in ("cuda", "auto") else []
            providers = providers or ["CPUExecutionProvider"]
        missing = [p for p in providers if p not in available]
        if missing:
            raise UsageError(f"onnxruntime here lacks provider(s) {', '.join(missing)}")
        opts = ort.SessionOptions()
        opts.graph_optimization_level = {
            "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        }[graph_optimization]
        if threads:
            if threads < 1:
                raise UsageError("threads must be >= 1")
            opts.intra_op_num_threads = int(threads)
        opts.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(str(model_path), opts, providers=providers)
        except Exception as exc:  # noqa: BLE001 - ORT raises its own untyped errors
            line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise BundleError(f"{model_path}: onnxruntime cannot load it ({line[:300]})") from None
        self.name = "onnxruntime"
        self.providers = self.session.get_providers()
        inputs = self.session.get_inputs()
        outputs = [o.name for o in self.session.get_outputs()]
        self._input = next((i.name for i in inputs if i.name == "video"), inputs[0].name)
        side = next((i for i in inputs if i.name == SIDE_INPUT), None)
        self.side_dim = None if side is None else int(side.shape[1])
        if "score" in outputs and "feature" in outputs:
            self._outputs = ["score", "feature"]
        elif len(outputs) >= 2:
            self._outputs = outputs[:2]
        else:
            raise BundleError(f"{model_path}: expected outputs score and feature, got {outputs}")
        batch = inputs[0].shape[0]
        self.max_batch = batch if isinstance(batch, int) and batch > 0 else None

    def run(self, x: np.ndarray, side: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        x = np.ascontiguousarray(x, dtype=np.float32)
        feeds = {self._input: x}
        if self.side_dim is not None:
            feeds[SIDE_INPUT] = side_input(side, x.shape[0], self.side_dim)
        score, feature = self.session.run(self._outputs, feeds)
        return check_outputs(score, feature, x.shape[0])
