"""Parity and accuracy of exported graphs, measured on real clips through the clip spec.

Parity compares two implementations clip by clip (PyTorch vs ONNX FP32, ONNX FP32 vs FP16
or INT8): the largest score difference and the smallest feature cosine. Accuracy scores
held-out videos with each precision and reports SRCC/PLCC against MOS, the drop of INT8
against FP32, and the mean absolute INT8-vs-FP32 score difference, on the bundle's scale.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numpy as np

from internvqa.runtime.clipspec import ClipSpec
from internvqa.runtime.manifest import ManifestRow
from internvqa.runtime.metrics import evaluate

from .calibration import Feeds, only

Runner = Callable[[Feeds], tuple[np.ndarray, np.ndarray]]  # feeds -> (score, feature)

# Bounds the export is held to, on the model's raw 0-1 output (x100 = the score scale).
# FP16: 0.5 points of 100; the pretrained EfficientNet-Lite0 (BatchNorm folded into convs)
# differs by up to 0.26 points in FP16, the ViTs by ~0.02.
BOUNDS = {"fp32": {"score_abs": 1e-4, "feature_cos": 0.9999}, "fp16": {"score_abs": 5e-3}}


def ort_runner(path: str, threads: int | None = None, opt_level: str = "all") -> Runner:
    """An ONNX Runtime CPU session as `x -> (score, feature)`."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }[opt_level]
    if threads:
        opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    session = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]

    def run(feeds: Feeds) -> tuple[np.ndarray, np.ndarray]:
        score, feature = session.run(["score", "feature"], only(feeds, names))
        return score.astype(np.float32), feature.astype(np.float32)

    return run


def torch_runner(model) -> Runner:
    """The PyTorch model as `feeds -> (score, feature)` (the registry returns feature first)."""
    import torch

    from .onnx_export import side_dim_of

    hybrid = side_dim_of(model) > 0

    def run(feeds: Feeds) -> tuple[np.ndarray, np.ndarray]:
        args = [torch.from_numpy(feeds["video"])]
        if hybrid:
            args.append(torch.from_numpy(feeds["side"]))
        with torch.no_grad():
            feature, score = model(*args)
        return score.float().numpy(), feature.float().numpy()

    return run


def compare(ref: Runner, runners: dict[str, Runner], clips: Iterable[Feeds]) -> dict:
    """Worst-case score difference and feature cosine of each runner against `ref`."""
    stats = {k: {"score_abs_max": 0.0, "score_abs_mean": 0.0, "feature_cos_min": 1.0}
             for k in runners}
    n = 0
    for x in clips:
        s0, f0 = ref(x)
        n += len(x["video"])
        for name, run in runners.items():
            s, f = run(x)
            d = np.abs(s.astype(np.float64) - s0)
            cos = _cosine(f, f0)
            st = stats[name]
            st["score_abs_max"] = max(st["score_abs_max"], float(d.max()))
            st["score_abs_mean"] += float(d.sum())
            st["feature_cos_min"] = min(st["feature_cos_min"], float(cos.min()))
    for st in stats.values():
        st["score_abs_mean"] = st["score_abs_mean"] / max(n, 1)
        st["clips"] = n
    return stats


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    den = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return (a * b).sum(1) / np.maximum(den, 1e-30)


def video_scores(
    rows: Sequence[ManifestRow], spec: ClipSpec, graphs: dict[str, str], scale: dict,
    progress: Callable[[int], None] | None = None, threads: int | None = None,
) -> dict[str, np.ndarray]:
    """Per-video score of each ONNX graph, computed by the runtime itself: a `Scorer` over
    the runtime's ONNX Runtime backend (`vqa-score`'s path: windows, side input, crop mean,
    `scale_score`, pooled mean), so the accuracy bundle.json records is what users get.
    Each graph decodes the video itself: ~0.05 s per held-out video and graph, the price of
    scoring exactly as `vqa-score` does."""
    from pathlib import Path

    from internvqa.runtime.backend_ort import OrtBackend
    from internvqa.runtime.bundle import Bundle
    from internvqa.runtime.scorer import Scorer

    scorers = {}
    for name, path in graphs.items():
        bundle = Bundle(Path(path).parent, {"model": {"name": f"export:{name}"}}, spec,
                        dict(scale), name)
        scorers[name] = Scorer(bundle, backend=OrtBackend(path, threads=threads), batch_size=1)
    out: dict[str, list[float]] = {k: [] for k in graphs}
    for row in rows:
        for name, scorer in scorers.items():
            out[name].append(float(scorer.score_file(row.abspath).score))
        if progress is not None:
            progress(1)
    return {k: np.asarray(v) for k, v in out.items()}


def accuracy_report(
    scores: dict[str, np.ndarray], mos: np.ndarray, split: str, ref: str = "fp32"
) -> dict:
    """SRCC/PLCC of each precision vs MOS, their drop vs `ref`, and score MAE vs `ref`."""
    report: dict = {"split": split, "videos": int(len(mos)), "pooling": "mean of windows"}
    base = evaluate(scores[ref], mos)
    for name, s in scores.items():
        m = evaluate(s, mos)
        entry = {"srcc": m["srcc"], "plcc": m["plcc"], "plcc_linear": m["plcc_linear"]}
        if name != ref:
            entry["srcc_drop"] = base["srcc"] - m["srcc"]
            entry["plcc_drop"] = base["plcc"] - m["plcc"]
            entry[f"score_mae_vs_{ref}"] = float(np.mean(np.abs(s - scores[ref])))
        report[name] = entry
    return report
