"""The suite's precision table: FP32 vs FP16 vs INT8 of the default model on ONNX Runtime CPU.

For each graph of the bundle (`model.onnx`, `model.fp16.onnx`, `model.int8.onnx`):

- **engine latency** at batch 1 and at every batch of `--precision-batches` (crops per
  engine call), the engine alone on every core (`bench.open_backend`, as `vqa-bench` times
  it), real model inputs from the first test videos (`bench.sample_clips`); the best batch
  is the one with the most clips/s. The ONNX Runtime session options are recorded.
- **accuracy** of the hybrid model on the first `--precision-videos` test videos
  (`bench.score_rows` + `bench.accuracy`), scored through `Scorer(bundle, precision=...)`
  with its defaults; FP32's predictions are the accuracy table's when that ran in FP32.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

PRECISIONS = {"fp32": "model.onnx", "fp16": "model.fp16.onnx", "int8": "model.int8.onnx"}


def session_settings(backend) -> dict[str, Any]:
    """What ONNX Runtime was told: threads, execution mode, graph optimisation, providers."""
    sess = getattr(backend, "session", None)
    if sess is None:
        return {}
    o = sess.get_session_options()
    return {"intra_op_num_threads": o.intra_op_num_threads,
            "inter_op_num_threads": o.inter_op_num_threads,
            "execution_mode": str(o.execution_mode).split(".")[-1],
            "graph_optimization_level": str(o.graph_optimization_level).split(".")[-1],
            "providers": list(sess.get_providers())}


def run(bundle: Path, rows: Sequence, batches: Sequence[int], videos: int,
        reuse_fp32: tuple[list, list] | None = None, duration: float = 1.5,
        log: Callable[[str], None] = print, progress: bool = False) -> dict[str, Any]:
    from internvqa.bench.bench import (
        EngineRef,
        accuracy,
        open_backend,
        sample_clips,
        score_rows,
        time_backend,
    )
    from internvqa.runtime.bundle import load_bundle
    from internvqa.runtime.errors import InternVQAError
    from internvqa.runtime.scorer import Scorer, available_cores

    meta = load_bundle(bundle).meta
    have = meta.get("files", {})
    rows = list(rows)
    sub = rows[:videos]
    out: dict[str, Any] = {"bundle": str(bundle), "videos": len(sub), "batches": list(batches),
                           "cores": available_cores(), "default_precision":
                           meta.get("default_precision") or meta.get("precision"),
                           "precisions": []}
    pool = None
    for prec, fname in PRECISIONS.items():
        if fname not in have:
            out["precisions"].append({"precision": prec, "note": f"bundle has no {fname}"})
            continue
        try:
            backend, b = open_backend(EngineRef(Path(bundle), prec), "cpu")
        except InternVQAError as exc:
            out["precisions"].append({"precision": prec, "note": " ".join(str(exc).split())})
            continue
        if pool is None:
            pool = sample_clips(b.clip_spec, sub, want=max(batches))
        timing = [time_backend(backend, pool, n, b.clip_spec.num_frames, warmup=1, min_iters=3,
                               duration=duration) for n in batches]
        best = max(timing, key=lambda t: t["clips_per_s"])
        b1 = next((t for t in timing if t["batch"] == 1), None)
        rec: dict[str, Any] = {
            "precision": prec, "file": fname,
            "size_mb": (Path(bundle) / fname).stat().st_size / 1e6,
            "ort": session_settings(backend),
            "b1_median_ms": b1["latency_ms"]["median"] if b1 else None,
            "b1_p99_ms": b1["latency_ms"]["p99"] if b1 else None,
            "b1_clips_per_s": b1["clips_per_s"] if b1 else None,
            "best_batch": best["batch"], "best_clips_per_s": best["clips_per_s"],
            "best_ms_per_clip": 1000.0 / best["clips_per_s"], "timing": timing}
        del backend
        if prec == "fp32" and reuse_fp32 is not None:
            preds, secs = reuse_fp32
            preds, secs = preds[: len(sub)], secs[: len(sub)]
            rec["accuracy_from"] = "the accuracy table's FP32 predictions (same engine)"
        else:
            scorer = Scorer(bundle, prec)
            rec["ort_scorer"] = session_settings(scorer.backend)
            t0 = time.perf_counter()
            preds, secs, fails = score_rows(scorer, sub, progress, f"precision {prec}")
            rec["failures"] = fails
            rec["score_seconds"] = time.perf_counter() - t0
        rec["s_per_video"] = float(np.mean(secs)) if len(secs) else None
        rec["preds"] = list(preds)
        m = accuracy(preds, sub)
        rec["accuracy"] = {k: m.get(k) for k in ("n", "srcc", "plcc_logistic", "rmse_logistic",
                                                  "rd_order_accuracy", "within_source_srcc")}
        out["precisions"].append(rec)
        log(f"precision {prec}: b1 {rec['b1_median_ms']:.1f} ms, best {best['clips_per_s']:.1f} "
            f"clips/s (batch {best['batch']}), SRCC {rec['accuracy'].get('srcc')}")
    fp32 = next((p for p in out["precisions"] if p["precision"] == "fp32" and "preds" in p), None)
    if fp32:
        from internvqa.runtime.metrics import srcc

        for p in out["precisions"]:
            if "preds" in p and p is not fp32:
                both = [(a, c) for a, c in zip(p["preds"], fp32["preds"], strict=True)
                        if a is not None and c is not None]
                if both:
                    a, c = np.array(both).T
                    p["vs_fp32"] = {"max_abs_diff": float(np.max(np.abs(a - c))),
                                    "mean_abs_diff": float(np.mean(np.abs(a - c))),
                                    "srcc": srcc(a, c)}
    for p in out["precisions"]:
        p.pop("preds", None)
    return out


def _f(v: Any, d: int = 3) -> str:
    return "-" if v is None else (f"{v:.{d}f}" if isinstance(v, float) else str(v))


def render(prec: dict[str, Any]) -> list[str]:
    lines = ["| graph | MB | b1 median ms | b1 p99 ms | b1 clips/s | best batch | best clips/s "
             f"| s/video e2e | SRCC ({prec['videos']} test videos) | PLCC-log | RD-order "
             "| within-source SRCC | score vs FP32: max / mean abs diff |",
             "|" + "---|" * 13]
    for p in prec["precisions"]:
        if "b1_median_ms" not in p:
            lines.append(f"| {p['precision']} | {p.get('note', '')} |" + " |" * 11)
            continue
        a, v = p["accuracy"], p.get("vs_fp32")
        lines.append(
            f"| {p['precision']} (`{p['file']}`) | {p['size_mb']:.1f} | {_f(p['b1_median_ms'], 1)} | "
            f"{_f(p['b1_p99_ms'], 1)} | {_f(p['b1_clips_per_s'], 1)} | {p['best_batch']} | "
            f"{_f(p['best_clips_per_s'], 1)} | {_f(p['s_per_video'])} | {_f(a.get('srcc'))} | "
            f"{_f(a.get('plcc_logistic'))} | {_f(a.get('rd_order_accuracy'))} | "
            f"{_f(a.get('within_source_srcc'))} | "
            + (f"{v['max_abs_diff']:.3f} / {v['mean_abs_diff']:.3f}" if v else "-") + " |")
    ort = next((p["ort"] for p in prec["precisions"] if p.get("ort")), {})
    sc = next((p["ort_scorer"] for p in prec["precisions"] if p.get("ort_scorer")), {})
    if ort:
        lines += ["", f"ONNX Runtime settings: latency columns with the engine alone "
                      f"(`bench.open_backend`): intra-op threads {ort['intra_op_num_threads']}, "
                      f"inter-op {ort['inter_op_num_threads']}, {ort['execution_mode']}, "
                      f"graph optimisation {ort['graph_optimization_level']}, "
                      f"{', '.join(ort['providers'])}; s/video and accuracy through "
                      f"`Scorer(bundle, precision=...)` with its defaults (intra-op threads "
                      f"{sc.get('intra_op_num_threads', '-')}, the rest of the cores to the "
                      "decoder). A clip is one crop of one window (3 crops per window); "
                      f"batches tried: {', '.join(map(str, prec['batches']))}."]
    return lines
