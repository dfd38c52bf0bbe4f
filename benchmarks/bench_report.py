"""Presentation of `vqa-bench` results: the terminal table and the PNG report.

Kept apart from `bench.py` so measuring never depends on formatting or plotting.
matplotlib is imported only inside `write_report` (Agg backend, no display needed).
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from internvqa.bench.bench import LATENCY_KEYS

_ACC_COLUMNS = (("SRCC", "srcc"), ("KRCC", "krcc"), ("PLCC-lin", "plcc_linear"),
                ("PLCC-log", "plcc_logistic"), ("RMSE-log", "rmse_logistic"),
                ("RMSE", "rmse"), ("RD-order", "rd_order_accuracy"),
                ("SRCC-src", "within_source_srcc"))


def _f(v: Any, digits: int = 4) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(header)]
    line = "  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(header, widths, strict=True)))
    out = [line, "-" * len(line)]
    for r in rows:
        out.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                             for i, (c, w) in enumerate(zip(r, widths, strict=True))))
    return "\n".join(out)


def format_table(result: dict[str, Any]) -> str:
    """Latency, accuracy (measured and recorded side by side), baseline, peers and teacher."""
    parts: list[str] = []
    engines = result.get("engines", [])
    rows = []
    for e in engines:
        for t in e.get("timing", []):
            lat = t["latency_ms"]
            rows.append([e["label"], e["precision"], e["backend"], str(t["batch"]),
                         *(_f(lat[k], 2) for k in LATENCY_KEYS),
                         _f(t["clips_per_s"], 1), _f(t["frames_per_s"], 1),
                         _f(e["memory"]["peak_rss_mb"], 0),
                         _f(e["memory"].get("peak_device_mb"), 0)])
    if rows:
        parts.append("Latency per engine call (ms), throughput, peak memory (MB)")
        parts.append(_table(["engine", "prec", "backend", "batch", *LATENCY_KEYS, "clips/s",
                             "frames/s", "RSS", "GPU"], rows))
    for e in engines:
        for s in e.get("skipped_batches", []):
            parts.append(f"  {e['label']}: batch {s['batch']} skipped: {s['reason']}")
        if e.get("note"):
            parts.append(f"  {e['label']}: {e['note']}")

    acc_rows = []
    teacher_rows: set[str] = set()
    for e in engines:
        if "accuracy" not in e:
            continue
        a = e["accuracy"]
        acc_rows.append([e["label"], "measured", *(_f(a.get(k)) for _, k in _ACC_COLUMNS),
                         _f(a.get("n")), _f(e.get("e2e_s_per_video"), 3)])
        rec = e.get("recorded_accuracy")
        where = f"bundle.json ({rec['split']})" if rec and rec.get("split") else "bundle.json"
        acc_rows.append([e["label"], where if rec else "bundle.json: none",
                         *(_f((rec or {}).get(k)) for _, k in _ACC_COLUMNS),
                         _f((rec or {}).get("n")), ""])
        ta = (e.get("teacher_agreement") or {}).get("teacher_vs_mos")
        key = json.dumps(ta, sort_keys=True)  # same figures: the same teacher on the same videos
        if ta and "srcc" in ta and key not in teacher_rows:  # once, not under every engine
            teacher_rows.add(key)
            acc_rows.append(["teacher (same videos)", "predictions csv",
                             *(_f(ta.get(k)) for _, k in _ACC_COLUMNS), _f(ta.get("n")), ""])
    base = result.get("baseline")
    if base and "accuracy" in base:
        a = base["accuracy"]
        acc_rows.append(["baseline: features+ridge", "measured",
                         *(_f(a.get(k)) for _, k in _ACC_COLUMNS), _f(a.get("n")),
                         _f(base.get("e2e_s_per_video"), 3)])
    peers = result.get("peers") or []
    for pr in peers:
        a = pr.get("accuracy") or {}
        acc_rows.append([f"peer: {pr['label']}", "measured" if "srcc" in a else "not scored",
                         *(_f(a.get(k)) for _, k in _ACC_COLUMNS), _f(a.get("n")),
                         _f(pr.get("e2e_s_per_video"), 3)])
    if acc_rows:
        split = result.get("data", {}).get("split", "")
        parts.append("")
        parts.append(f"Accuracy vs MOS on split {split!r} (pooled mean of windows, as vqa-score)")
        parts.append(_table(["model", "figures", *(c for c, _ in _ACC_COLUMNS), "n",
                             "s/video"], acc_rows))
        parts.append("  s/video: decode + preprocess + inference per video with the engine on "
                     "every core or --threads (vqa-score splits the cores between decoder and engine)")
    elif base and base.get("note"):
        parts.append(f"baseline: {base['note']}")
    if base and base.get("note") and acc_rows:
        parts.append(f"  baseline: {base['note']}")
    for pr in peers:
        speed = (f"{pr['ms_per_frame']:.1f} ms per frame (metric alone), {pr['frames']} frames"
                 if pr.get("ms_per_frame") is not None else "no frame scored")
        sign = f"; {pr['sign']}" if pr.get("sign") else ""
        parts.append(f"  peer {pr['name']}: {speed}; {pr['source']}{sign}")
        if pr.get("note"):
            parts.append(f"  peer {pr['name']}: {pr['note']}")
        for f in pr.get("failures", [])[:5]:
            parts.append(f"  peer {pr['name']}: failed {f['path']}: {f['error']}")

    agree = [[e["label"], _f(t.get("srcc")), _f(t.get("plcc")), _f(t.get("mae"), 3),
              _f(t.get("n")), t.get("source", "")]
             for e in engines if (t := e.get("teacher_agreement"))]
    if agree:
        parts.append("")
        parts.append("Agreement with the teacher (scores on 0-100)")
        parts.append(_table(["engine", "SRCC", "PLCC", "MAE", "n", "teacher predictions"], agree))
    for e in engines:
        if e.get("teacher_note"):
            parts.append(f"  {e['label']}: {e['teacher_note']}")
        for f in e.get("failures", [])[:5]:
            parts.append(f"  {e['label']}: failed {f['path']}: {f['error']}")
    return "\n".join(parts)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "engine"


def write_report(result: dict[str, Any], out_dir: str | Path) -> list[Path]:
    """PNG plots: predicted vs MOS per engine (baseline, peers); speed vs accuracy frontier."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    series = [(e["label"], e.get("scores", []), e.get("accuracy", {}))
              for e in result.get("engines", []) if e.get("scores")]
    base = result.get("baseline") or {}
    if base.get("scores"):
        series.append(("baseline", base["scores"], base.get("accuracy", {})))
    peers = [(f"peer {p['name']}", p) for p in result.get("peers") or []]
    series += [(label, p["scores"], p.get("accuracy", {})) for label, p in peers
               if p.get("scores")]
    for label, scores, acc in series:
        pts = [(s["mos"], s["pred"]) for s in scores
               if s.get("pred") is not None and s.get("mos") is not None]
        if not pts:
            continue
        fig, ax = plt.subplots(figsize=(4.5, 4.5), dpi=100)
        ax.scatter([p[0] for p in pts], [p[1] for p in pts], s=14, alpha=0.75)
        lo = min(min(p) for p in pts)
        hi = max(max(p) for p in pts)
        ax.plot([lo, hi], [lo, hi], color="grey", lw=0.8, ls="--")
        ax.set_xlabel("MOS")
        ax.set_ylabel("predicted")
        ax.set_title(f"{label}\nSRCC {_f(acc.get('srcc'), 3)}  PLCC {_f(acc.get('plcc'), 3)}",
                     fontsize=9)
        fig.tight_layout()
        path = out / f"scatter_{_slug(label)}.png"
        fig.savefig(path)
        plt.close(fig)
        written.append(path)
    points = [(e["label"], e.get("e2e_s_per_video"), e.get("accuracy", {}).get("srcc"))
              for e in result.get("engines", [])]
    points += [(label, p.get("e2e_s_per_video"), p.get("accuracy", {}).get("srcc"))
               for label, p in peers]
    if len(points) >= 2:
        points.append(("baseline", base.get("e2e_s_per_video"),
                       base.get("accuracy", {}).get("srcc")))
        points = [p for p in points if p[1] and p[2] is not None and math.isfinite(p[2])]
        if len(points) >= 2:
            fig, ax = plt.subplots(figsize=(6, 4.5), dpi=100)
            for label, x, y in points:
                ax.scatter([x * 1000], [y], s=30)
                ax.annotate(label, (x * 1000, y), fontsize=7, xytext=(4, 3),
                            textcoords="offset points")
            ax.set_xscale("log")
            ax.set_xlabel("end-to-end ms per video (decode + preprocess + inference)")
            ax.set_ylabel("SRCC vs MOS")
            ax.set_title("speed vs accuracy", fontsize=9)
            ax.grid(alpha=0.3)
            fig.tight_layout()
            path = out / "frontier.png"
            fig.savefig(path)
            plt.close(fig)
            written.append(path)
    return written
