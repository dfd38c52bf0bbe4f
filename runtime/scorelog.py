"""Score results and their logs: per-window scores, pooled metrics, VMAF-shaped JSON, CSV.

Scores are on the bundle's documented scale (by default a 0-100 MOS-like score, higher is
better). A *window* is one clip of T sampled frames (see `ClipSpec`); it plays the role of
a VMAF frame, so the JSON log has one `frames` entry per window with `frameNum` = the
window's first frame, plus the window's span in frames and seconds.

Pooling (over windows with a finite score):
- mean, min, max;
- harmonic_mean as libvmaf computes it, 1 / mean(1 / (s + 1)) - 1 (defined at s = 0);
- p5, the 5th percentile (linear interpolation), a "worst moments" figure.

Flags, on windows and on the result: ``short`` (video shorter than one window, padded by
repeating its last frame), ``partial`` (a trailing window padded likewise), ``nonfinite``
(the model returned NaN/inf: that window has no score and is left out of pooling),
``decode_errors`` (the decoder skipped corrupt packets), ``truncated`` (raw input ended
mid-frame).
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

POOLED = ("min", "max", "mean", "harmonic_mean", "p5")
METRIC = "internvqa"
LOG_VERSION = "internvqa-scorelog-1"
CSV_COLUMNS = (
    "path", "status", "score_mean", "score_min", "score_harmonic_mean", "score_p5",
    "windows", "frames", "flags", "error", "elapsed_s",
)


@dataclass
class WindowScore:
    """The score of one window; `score` is None when the model output was not finite."""

    index: int
    start_frame: int
    end_frame: int
    start_time: float
    end_time: float
    score: float | None
    flags: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "frameNum": self.start_frame,
            "window": self.index,
            "start_frame": self.start_frame,
            "end_frame": self.end_frame,
            "start_time": round(self.start_time, 6),
            "end_time": round(self.end_time, 6),
            "metrics": {METRIC: _num(self.score)},
            "flags": list(self.flags),
        }


def pool(scores: list[float]) -> dict[str, float | None]:
    """Pooled metrics of finite window scores (all None when there are none)."""
    s = np.asarray([v for v in scores if v is not None and math.isfinite(v)], dtype=np.float64)
    if s.size == 0:
        return dict.fromkeys(POOLED)
    hm = 1.0 / float(np.mean(1.0 / (s + 1.0))) - 1.0 if np.all(s > -1.0) else float("nan")
    return {
        "min": float(s.min()),
        "max": float(s.max()),
        "mean": float(s.mean()),
        "harmonic_mean": hm,
        "p5": float(np.percentile(s, 5)),
    }


@dataclass
class ScoreResult:
    """All window scores of one input plus what it was scored with."""

    windows: list[WindowScore]
    frames: int
    input: dict[str, Any] = field(default_factory=dict)  # name, width, height, fps, ...
    model: dict[str, Any] = field(default_factory=dict)  # name, precision, backend, scale
    flags: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0

    @property
    def pooled(self) -> dict[str, float | None]:
        return pool([w.score for w in self.windows])

    @property
    def score(self) -> float | None:
        """The headline score: the mean over windows."""
        return self.pooled["mean"]

    def score_at(self, index: int) -> WindowScore:
        for w in self.windows:
            if w.index == index:
                return w
        raise IndexError(f"no window {index} (have {len(self.windows)})")

    def to_vmaf_json(self) -> dict[str, Any]:
        """A libvmaf-shaped log: `frames` (one per window) and `pooled_metrics`."""
        return {
            "version": LOG_VERSION,
            "model": self.model,
            "input": {**self.input, "frames": self.frames},
            "frames": [w.to_dict() for w in self.windows],
            "pooled_metrics": {METRIC: {k: _num(v) for k, v in self.pooled.items()}},
            "flags": list(self.flags),
            "elapsed_s": round(self.elapsed_s, 4),
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_vmaf_json(), indent=indent, allow_nan=False)


def _num(v: float | None) -> float | None:
    """JSON has no NaN: write null. Round to what a score means (1e-6)."""
    if v is None or not math.isfinite(v):
        return None
    return round(float(v), 6)


def _fmt(v: float | None) -> str:
    return "" if v is None or not math.isfinite(v) else f"{v:.4f}"


def csv_header() -> str:
    return ",".join(CSV_COLUMNS)


def csv_row(
    path: str,
    result: ScoreResult | None = None,
    error: str = "",
    elapsed_s: float = 0.0,
) -> str:
    """One batch CSV line (no newline): status ok with scores, or error with its message."""
    if result is not None:
        p = result.pooled
        values = [path, "ok", _fmt(p["mean"]), _fmt(p["min"]), _fmt(p["harmonic_mean"]),
                  _fmt(p["p5"]), str(len(result.windows)), str(result.frames),
                  ";".join(result.flags), "", f"{elapsed_s:.3f}"]
    else:
        one_line = " ".join(error.split())
        values = [path, "error", "", "", "", "", "", "", "", one_line, f"{elapsed_s:.3f}"]
    buf = io.StringIO()
    csv.writer(buf, lineterminator="").writerow(values)
    return buf.getvalue()


def parse_csv_rows(lines: list[str]) -> list[dict[str, str]]:
    """Rows of a batch CSV (header line included in `lines`), as dicts."""
    if not lines:
        return []
    return list(csv.DictReader(io.StringIO("\n".join(lines) + "\n")))
