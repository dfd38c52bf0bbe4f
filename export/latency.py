"""ONNX Runtime CPU latency of the exported graphs at batch 1 (what `vqa-export` reports).

The precisions are timed interleaved in one process (fp32, int8, fp32, int8 ...) so a
neighbour's load on a shared machine hits both alike and the ratio stays meaningful even
when the absolute numbers move. Each graph runs in the runtime's `OrtBackend` (CPU), the
engine `vqa-score` uses, so the time includes exactly its per-call work.
"""

from __future__ import annotations

import time

import numpy as np

from internvqa.runtime.backend_ort import OrtBackend


def ort_latency(
    paths: dict[str, str],
    clip_shape: tuple[int, ...],
    runs: int = 20,
    warmup: int = 3,
    threads: int | None = None,
    opt_level: str = "all",
) -> dict:
    """Median / p90 / mean milliseconds per batch-1 clip for each ONNX file, interleaved."""
    from internvqa.runtime.bitstream import SIDE_DIM, side_vector

    video = np.random.default_rng(0).standard_normal((1, *clip_shape)).astype(np.float32)
    # A typical hybrid feed (ignored by pixel-only graphs): 0.05 bpp H.264 at 640x360.
    side = side_vector(0.05 * 640 * 360 * 19, 19, 640, 360, "h264")[None]
    assert side.shape == (1, SIDE_DIM)
    engines = {k: OrtBackend(p, threads=threads, graph_optimization=opt_level)
               for k, p in paths.items()}
    for _ in range(warmup):
        for engine in engines.values():
            engine.run(video, side)
    times: dict[str, list[float]] = {k: [] for k in engines}
    for _ in range(runs):
        for name, engine in engines.items():
            t0 = time.perf_counter()
            engine.run(video, side)
            times[name].append((time.perf_counter() - t0) * 1e3)
    out: dict = {"batch": 1, "runs": runs, "threads": threads or "ort default",
                 "graph_optimization": opt_level}
    for name, t in times.items():
        a = np.asarray(t)
        out[name] = {"median_ms": float(np.median(a)), "p90_ms": float(np.percentile(a, 90)),
                     "mean_ms": float(a.mean())}
    if "fp32" in out and "int8" in out:
        out["int8_speedup_vs_fp32"] = out["fp32"]["median_ms"] / out["int8"]["median_ms"]
    return out
