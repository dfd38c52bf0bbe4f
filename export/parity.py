"""Parity and accuracy of exported graphs, measured on real clips through the clip spec.

Parity compares two engines clip by clip (PyTorch vs ONNX FP32, ONNX FP32 vs FP16 or INT8):
the largest score difference and the smallest feature cosine. Every engine is a runtime
`Backend` (`run(x, side=None) -> (score, feature)`): the ONNX graphs run in the runtime's
`OrtBackend`, the PyTorch model in `internvqa.distill.torch_backend.TorchBackend` (the
adapter `vqa-bench` runs checkpoints with), so no second runner exists here. Accuracy scores
held-out videos with each precision through a runtime `Scorer` per graph and the shared row
loop (`internvqa.distill.row_scoring`, what `vqa-bench` runs), and reports SRCC/PLCC
against MOS, the drop of INT8 against FP32, and the mean absolute INT8-vs-FP32 score
difference, on the bundle's scale.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np

from internvqa.runtime.backend import Backend
from internvqa.runtime.bundle import Bundle
from internvqa.runtime.clipspec import ClipSpec
from internvqa.runtime.manifest import ManifestRow
from internvqa.runtime.metrics import evaluate

from .calibration import Feeds

# Bounds the export is held to, on the model's raw 0-1 output (x100 = the score scale).
# FP16: 0.5 points of 100; the pretrained EfficientNet-Lite0 (BatchNorm folded into convs)
# differs by up to 0.26 points in FP16, the ViTs by ~0.02.
BOUNDS = {"fp32": {"score_abs": 1e-4, "feature_cos": 0.9999}, "fp16": {"score_abs": 5e-3}}


def compare(ref: Backend, engines: dict[str, Backend], clips: Iterable[Feeds]) -> dict:
    """Worst-case score difference and feature cosine of each engine against `ref`.

    Each clip batch feeds `video` and its `side` (a pixel-only engine ignores `side`)."""
    stats = {k: {"score_abs_max": 0.0, "score_abs_mean": 0.0, "feature_cos_min": 1.0}
             for k in engines}
    n = 0
    for x in clips:
        s0, f0 = ref.run(x["video"], x.get("side"))
        n += len(x["video"])
        for name, engine in engines.items():
            s, f = engine.run(x["video"], x.get("side"))
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


def graph_bundle(path: str | Path, precision: str, spec: ClipSpec, scale: dict) -> Bundle:
    """An exported graph, before bundle.json exists, as the runtime's `Bundle` with that one
    precision: what `load_bundle` gives `vqa-score` for the finished bundle (clip spec, score
    scale, model file), so a `Scorer` over it builds its engine as `vqa-score` does."""
    path = Path(path)
    return Bundle(path.parent, {"model": {"name": f"export:{precision}"}}, spec, dict(scale),
                  precision, _files={precision: path.name})


def video_scores(
    rows: Sequence[ManifestRow], spec: ClipSpec, graphs: dict[str, str], scale: dict,
    progress: Callable[[int], None] | None = None, threads: int | None = None,
) -> dict[str, np.ndarray]:
    """Per-video score of each ONNX graph, computed by the runtime itself: a `Scorer` per
    graph (`vqa-score --device cpu`'s engine: the runtime's ONNX Runtime backend; windows,
    side input, crop mean, `scale_score`, pooled mean), each video scored by
    `row_scoring.score_row` (the call `vqa-bench` makes), so the accuracy bundle.json
    records is what users and the bench get. `threads`: the engine's threads (default:
    every core, the engine running alone). Each graph decodes the video itself: ~0.05 s per
    held-out video and graph, the price of scoring exactly as `vqa-score` does."""
    from internvqa.distill.row_scoring import score_row
    from internvqa.runtime.scorer import Scorer, available_cores

    scorers = {name: Scorer(graph_bundle(path, name, spec, scale), backend="cpu",
                            threads=threads or available_cores())
               for name, path in graphs.items()}
    out: dict[str, list[float]] = {k: [] for k in graphs}
    for row in rows:
        for name, scorer in scorers.items():
            out[name].append(float(score_row(scorer, row).score))
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
