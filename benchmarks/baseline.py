"""The peer baseline: hand-crafted compression features + ridge regression (numpy + OpenCV).

Why it exists: a learned model's SRCC means little without a classical reference measured
on the same clips. This is the kind of no-reference compression metric that predates deep
VQA: a few features that respond to coding artefacts, pooled per video, fitted to MOS with
ridge regression. It lives in the bench layer (it fits and saves a model, which the
runtime never does) and stays numpy/cv2 only, no torch, so `vqa-bench` puts it in every
table, torch-free, and the suite needs no extra process.

Frames. It samples exactly the frames the model sees: the clip spec's windows
(`iter_windows`, same frame indices), but each frame at its *native* resolution (the
spec's resize is dropped), because the 8x8 coding grid and fine texture that the features
measure would be smeared by resampling. Features are computed on luma (BT.601 weights).

Per-frame features (luma in [0, 255]):
- ``sharpness``: log(1 + variance of the Laplacian); blur and quantisation lower it.
- ``blockiness``: mean |horizontal/vertical gradient| across 8x8 block boundaries divided
  by the mean inside blocks; block-transform coding at low rate raises it above 1.
- ``edge_density``: share of pixels that are Canny edges (50/150); smoothing lowers it.
- ``hf_energy``: share of spectral energy above a quarter of the sampling frequency
  (radially, on the mean-removed frame with a Hann window); compression strips it.
- ``flat_blocks``: share of 8x8 blocks with variance below 2 (flattened by quantisation).
- ``contrast``: standard deviation of luma (content, lets the fit normalise the others).
Per-window feature: ``temporal_diff``: mean |difference| of consecutive sampled frames.

Pooling: the mean of each feature over the video's frames (windows for temporal_diff).
Fitting: features standardised with the training mean/std; ridge regression in closed
form; the ridge strength is chosen from a small grid by leave-one-source-out
cross-validation on the training split (sources never straddle folds). The model is a
small JSON file (`save` / `load`).
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from internvqa.runtime.atomic import atomic_write_json
from internvqa.runtime.clipspec import ClipSpec
from internvqa.runtime.errors import InternVQAError, UsageError
from internvqa.runtime.manifest import ManifestRow

FORMAT = "internvqa-baseline"
FORMAT_VERSION = 1
FRAME_FEATURES = ("sharpness", "blockiness", "edge_density", "hf_energy", "flat_blocks",
                  "contrast")
FEATURES = (*FRAME_FEATURES, "temporal_diff")
LAMBDAS = (0.01, 0.1, 1.0, 10.0, 100.0)
BLOCK = 8


# ---- features --------------------------------------------------------------------------
def luma(rgb: np.ndarray) -> np.ndarray:
    """uint8 RGB (H, W, 3) -> float32 luma (BT.601 weights, 0-255)."""
    r, g, b = (rgb[..., i].astype(np.float32) for i in range(3))
    return 0.299 * r + 0.587 * g + 0.114 * b


def blockiness(y: np.ndarray, block: int = BLOCK) -> float:
    """Gradient across block boundaries / gradient inside blocks (1.0 = no block grid)."""
    def ratio(d: np.ndarray) -> tuple[float, float]:
        cols = np.arange(d.shape[1])
        edge = (cols % block) == block - 1  # difference between column k and k+1 straddles
        if not edge.any() or edge.all():
            return float("nan"), float("nan")
        return float(d[:, edge].mean()), float(d[:, ~edge].mean())

    bh, ih = ratio(np.abs(np.diff(y, axis=1)))
    bv, iv = ratio(np.abs(np.diff(y, axis=0)).T)
    b = np.nanmean([bh, bv])
    i = np.nanmean([ih, iv])
    return float((b + 1e-3) / (i + 1e-3))


def hf_energy(y: np.ndarray, cutoff: float = 0.25) -> float:
    """Share of spectral energy at radial frequency above `cutoff` cycles/pixel."""
    h, w = y.shape
    win = np.outer(np.hanning(h), np.hanning(w)).astype(np.float32)
    spec = np.abs(np.fft.rfft2((y - y.mean()) * win)) ** 2
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    radius = np.sqrt(fx**2 + fy**2)
    total = float(spec.sum())
    return float(spec[radius > cutoff].sum() / total) if total > 0 else 0.0


def flat_blocks(y: np.ndarray, block: int = BLOCK, threshold: float = 2.0) -> float:
    """Share of whole 8x8 blocks whose variance is below `threshold`."""
    h, w = (y.shape[0] // block) * block, (y.shape[1] // block) * block
    if h == 0 or w == 0:
        return 0.0
    b = y[:h, :w].reshape(h // block, block, w // block, block)
    return float((b.var(axis=(1, 3)) < threshold).mean())


def frame_features(y: np.ndarray) -> np.ndarray:
    """The FRAME_FEATURES of one luma frame."""
    y = np.asarray(y, dtype=np.float32)
    lap = cv2.Laplacian(y, cv2.CV_32F, ksize=3)
    edges = cv2.Canny(np.clip(y + 0.5, 0, 255).astype(np.uint8), 50, 150)
    return np.array([
        math.log1p(float(lap.var())),
        blockiness(y),
        float((edges > 0).mean()),
        hf_energy(y),
        flat_blocks(y),
        float(y.std()),
    ], dtype=np.float64)


def temporal_diff(frames: Sequence[np.ndarray]) -> float:
    if len(frames) < 2:
        return 0.0
    return float(np.mean([np.abs(b - a).mean() for a, b in zip(frames, frames[1:], strict=False)]))


def native_spec(spec: ClipSpec) -> ClipSpec:
    """The same frame sampling at native resolution (no resize; crop size irrelevant)."""
    return spec.replace(resize_short=None, size=1, crop="center")


def video_features(path: str | os.PathLike, spec: ClipSpec) -> np.ndarray:
    """FEATURES pooled over the clip spec's windows of one video (native resolution)."""
    from internvqa.runtime.video import iter_windows, open_video

    per_frame: dict[int, np.ndarray] = {}
    tdiffs: list[float] = []
    with open_video(path) as src:
        for w in iter_windows(src, native_spec(spec)):
            ys = [luma(f) for f in w.clip]
            for idx, y in zip(w.frame_indices, ys, strict=True):
                if idx not in per_frame:
                    per_frame[idx] = frame_features(y)
            distinct = [y for k, y in enumerate(ys) if k == 0 or w.frame_indices[k] != w.frame_indices[k - 1]]
            tdiffs.append(temporal_diff(distinct))
    if not per_frame:
        raise InternVQAError(f"{path}: no frames to compute features on")
    pooled = np.nanmean(np.stack(list(per_frame.values())), axis=0)
    return np.append(pooled, float(np.mean(tdiffs)))


# ---- model -----------------------------------------------------------------------------
def ridge_fit(x: np.ndarray, y: np.ndarray, lam: float) -> tuple[np.ndarray, float]:
    """Closed-form ridge on standardised x: w = (X'X + lam I)^-1 X'(y - mean y)."""
    ym = float(y.mean())
    a = x.T @ x + lam * np.eye(x.shape[1])
    w = np.linalg.solve(a, x.T @ (y - ym))
    return w, ym


def _loso_rmse(x: np.ndarray, y: np.ndarray, groups: Sequence[str], lam: float) -> float:
    errs = []
    for g in sorted(set(groups)):
        test = np.array([gg == g for gg in groups])
        if test.all():
            return float("nan")
        mu, sd = x[~test].mean(0), x[~test].std(0) + 1e-12
        w, b = ridge_fit((x[~test] - mu) / sd, y[~test], lam)
        errs.append(((x[test] - mu) / sd @ w + b - y[test]) ** 2)
    return float(np.sqrt(np.mean(np.concatenate(errs))))


@dataclass
class BaselineModel:
    """Standardisation + ridge weights over FEATURES; predicts on the MOS scale."""

    mean: np.ndarray
    std: np.ndarray
    weights: np.ndarray
    intercept: float
    ridge_lambda: float
    clip_spec: ClipSpec
    features: tuple[str, ...] = FEATURES
    train: dict[str, Any] = field(default_factory=dict)

    def predict_features(self, feats: np.ndarray) -> np.ndarray:
        f = np.atleast_2d(np.asarray(feats, dtype=np.float64))
        return ((f - self.mean) / self.std) @ self.weights + self.intercept

    def predict(self, path: str | os.PathLike) -> float:
        return float(self.predict_features(video_features(path, self.clip_spec))[0])

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "format_version": FORMAT_VERSION,
                "features": list(self.features), "mean": self.mean.tolist(),
                "std": self.std.tolist(), "weights": self.weights.tolist(),
                "intercept": self.intercept, "ridge_lambda": self.ridge_lambda,
                "clip_spec": self.clip_spec.to_dict(), "train": self.train}

    def save(self, path: str | os.PathLike) -> Path:
        return atomic_write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike) -> BaselineModel:
        try:
            d = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise UsageError(f"cannot read baseline model {path}: {exc}") from None
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise UsageError(f"{path}: not an {FORMAT} model")
        if tuple(d.get("features", ())) != FEATURES:
            raise UsageError(f"{path}: made with other features {d.get('features')}; refit it")
        return cls(np.array(d["mean"]), np.array(d["std"]), np.array(d["weights"]),
                   float(d["intercept"]), float(d["ridge_lambda"]),
                   ClipSpec.from_dict(d["clip_spec"]), FEATURES, d.get("train", {}))


def fit(feats: np.ndarray, mos: np.ndarray, groups: Sequence[str], spec: ClipSpec,
        lambdas: Sequence[float] = LAMBDAS, train_info: dict | None = None) -> BaselineModel:
    """Choose lambda by leave-one-source-out CV (when >= 2 sources), then fit on all."""
    x = np.asarray(feats, dtype=np.float64)
    y = np.asarray(mos, dtype=np.float64)
    if x.shape[0] < 2:
        raise UsageError("the baseline needs at least two training videos with MOS")
    cv = {lam: _loso_rmse(x, y, groups, lam) for lam in lambdas} if len(set(groups)) > 1 else {}
    finite = {k: v for k, v in cv.items() if math.isfinite(v)}
    lam = min(finite, key=finite.get) if finite else 1.0
    mu, sd = x.mean(0), x.std(0)
    sd = np.where(sd > 1e-12, sd, 1.0)
    w, b = ridge_fit((x - mu) / sd, y, lam)
    info = {**(train_info or {}), "n": int(x.shape[0]), "sources": len(set(groups)),
            "cv_rmse": {str(k): v for k, v in cv.items()}}
    return BaselineModel(mu, sd, w, b, float(lam), spec, FEATURES, info)


def features_for_rows(rows: Sequence[ManifestRow], spec: ClipSpec, progress: bool = True,
                      desc: str = "baseline features") -> tuple[np.ndarray, list[float], list[dict]]:
    """(features (n, F) with NaN rows for failures, seconds per video, failures)."""
    from tqdm import tqdm

    out = np.full((len(rows), len(FEATURES)), np.nan)
    secs: list[float] = []
    failures: list[dict] = []
    for i, row in enumerate(tqdm(rows, desc=desc, unit="video", disable=not progress, leave=False)):
        t0 = time.perf_counter()
        try:
            out[i] = video_features(row.abspath, spec)
        except InternVQAError as exc:
            failures.append({"path": row.path, "error": " ".join(str(exc).split())})
        secs.append(time.perf_counter() - t0)
    return out, secs, failures


def fit_rows(rows: Sequence[ManifestRow], spec: ClipSpec, progress: bool = True,
             manifest: str = "") -> BaselineModel:
    """Extract features of the training rows (with MOS) and fit."""
    rows = [r for r in rows if r.mos is not None]
    feats, _, _ = features_for_rows(rows, spec, progress, "baseline fit")
    ok = np.all(np.isfinite(feats), axis=1)
    if ok.sum() < 2:
        raise UsageError("the baseline needs at least two readable training videos with MOS")
    return fit(feats[ok], np.array([r.mos for r in rows])[ok],
               [r.source for r, k in zip(rows, ok, strict=True) if k], spec,
               train_info={"manifest": manifest, "split": sorted({r.split for r in rows})})


def evaluate_baseline(model_path: str | os.PathLike | None, all_rows: Sequence[ManifestRow],
                      rows: Sequence[ManifestRow], spec: ClipSpec, manifest: str = "",
                      progress: bool = True) -> dict[str, Any]:
    """The baseline's block of a bench result: load or fit (train split), score `rows`.

    `model_path`: loaded if the file exists, else the fitted model is saved there.
    """
    from internvqa.bench.bench import accuracy

    path = Path(model_path) if model_path else None
    if path is not None and path.is_file():
        model = BaselineModel.load(path)
        note = f"loaded {path}"
        if model.clip_spec != spec:
            note += " (fitted with another clip spec than the engine's)"
    else:
        train = [r for r in all_rows if r.split == "train" and r.mos is not None]
        if len(train) < 2:
            return {"note": "not fitted: the manifest has fewer than two train videos with MOS"}
        model = fit_rows(train, spec, progress, manifest=manifest)
        note = f"fitted on {model.train['n']} train videos, ridge lambda {model.ridge_lambda:g}"
        if path is not None:
            model.save(path)
            note += f", saved to {path}"
    t0 = time.perf_counter()
    feats, secs, failures = features_for_rows(rows, model.clip_spec, progress, "baseline")
    ok = np.all(np.isfinite(feats), axis=1)
    preds = [float(model.predict_features(f)[0]) if k else None
             for f, k in zip(feats, ok, strict=True)]
    return {
        "name": "features+ridge",
        "note": note,
        "model": model.to_dict(),
        "accuracy": accuracy(preds, rows),
        "e2e_s_per_video": float(np.mean(secs)) if secs else None,
        "score_s": time.perf_counter() - t0,
        "scores": [{"path": r.path, "mos": r.mos, "pred": p} for r, p in zip(rows, preds, strict=True)],
        "failures": failures,
    }
