"""Quality-assessment metrics: rank and linear correlations, VQEG logistic fit, RD order.

numpy only, so the torch-free runtime, the benchmarks and training all report the same
numbers from the same code. Conventions (REFERENCE section 4):

- ``plcc``: raw Pearson correlation of predictions and MOS.
- ``plcc_linear`` / ``rmse_linear``: the InternVQA authors' convention. Predictions are
  linearly rescaled to the ground truth's mean and std, then compared. The Pearson value
  is unchanged by a positive linear map, so ``plcc_linear == plcc``; the RMSE is the one
  that changes (it is measured in MOS units after rescaling).
- ``plcc_logistic`` / ``rmse_logistic``: the VQEG convention, after fitting a 4-parameter
  logistic ``f(x) = (b1 - b2) / (1 + exp(-(x - b3) / |b4|)) + b2`` from predictions to MOS.
  The fit is a damped Gauss-Newton (Levenberg-Marquardt) in numpy. When it does not
  converge it falls back to a least-squares linear map, and the result says so
  (``Logistic4Fit.method == "linear"``, ``note`` explains).
- ``rmse``: raw RMSE of predictions against MOS (meaningful only on the MOS scale).

Degenerate inputs: NaN/inf values, empty input or a length mismatch raise ValueError.
Constant predictions or constant MOS have no defined correlation: the correlations are
``nan`` (never a crash, never a warning).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from internvqa.runtime.manifest import ManifestRow

__all__ = [
    "Logistic4Fit",
    "evaluate",
    "fit_logistic4",
    "krcc",
    "logistic4",
    "plcc",
    "plcc_linear_rescaled",
    "plcc_logistic",
    "rank_average",
    "rd_order_accuracy",
    "rd_order_pairs",
    "rmse",
    "rmse_logistic",
    "srcc",
]


def _pair(pred, mos) -> tuple[np.ndarray, np.ndarray]:
    """Validate and convert a (prediction, ground truth) pair to 1-D float64 arrays."""
    a = np.asarray(pred, dtype=np.float64).reshape(-1)
    b = np.asarray(mos, dtype=np.float64).reshape(-1)
    if a.shape != b.shape:
        raise ValueError(f"length mismatch: {a.size} predictions vs {b.size} labels")
    if a.size == 0:
        raise ValueError("no values to evaluate")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise ValueError("predictions and labels must be finite (found NaN or inf)")
    return a, b


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    da = a - a.mean()
    db = b - b.mean()
    den = math.sqrt(float(np.dot(da, da)) * float(np.dot(db, db)))
    if a.size < 2 or den == 0.0:
        return float("nan")
    return float(np.clip(np.dot(da, db) / den, -1.0, 1.0))


def rank_average(x: np.ndarray) -> np.ndarray:
    """1-based ranks with ties given the average of the ranks they span."""
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    # Boundaries of runs of equal values in sorted order.
    starts = np.flatnonzero(np.r_[True, xs[1:] != xs[:-1]])
    ends = np.r_[starts[1:], xs.size]
    avg = (starts + ends + 1) / 2.0  # mean of ranks starts+1 .. ends
    ranks = np.empty(x.size, dtype=np.float64)
    ranks[order] = np.repeat(avg, ends - starts)
    return ranks


def srcc(pred, mos) -> float:
    """Spearman rank correlation (Pearson of average ranks, so ties are handled)."""
    a, b = _pair(pred, mos)
    return _pearson(rank_average(a), rank_average(b))


def krcc(pred, mos, chunk: int = 2048) -> float:
    """Kendall tau-b: (concordant - discordant) / sqrt(untied-x pairs * untied-y pairs).

    Computed exactly over all pairs in row chunks, so memory stays O(chunk * n).
    """
    a, b = _pair(pred, mos)
    n = a.size
    s = 0.0
    tx = 0.0
    ty = 0.0
    for lo in range(0, n, chunk):
        hi = min(n, lo + chunk)
        sx = np.sign(a[lo:hi, None] - a[None, :])
        sy = np.sign(b[lo:hi, None] - b[None, :])
        s += float(np.sum(sx * sy))
        tx += float(np.sum(sx * sx))
        ty += float(np.sum(sy * sy))
    # Every unordered pair was counted twice; the ratio is unaffected.
    den = math.sqrt(tx * ty)
    if den == 0.0:
        return float("nan")
    return float(np.clip(s / den, -1.0, 1.0))


def plcc(pred, mos) -> float:
    """Raw Pearson linear correlation."""
    a, b = _pair(pred, mos)
    return _pearson(a, b)


def rmse(pred, mos) -> float:
    """Root-mean-square error of raw predictions (both on the MOS scale)."""
    a, b = _pair(pred, mos)
    return float(np.sqrt(np.mean((a - b) ** 2)))


def plcc_linear_rescaled(pred, mos) -> tuple[float, float]:
    """(PLCC, RMSE) after rescaling predictions to the MOS mean and std (authors' way).

    Constant predictions rescale to the MOS mean: PLCC is nan, RMSE is the MOS std.
    """
    a, b = _pair(pred, mos)
    sd = a.std()
    if sd > 0:
        scaled = (a - a.mean()) / sd * b.std() + b.mean()
    else:
        scaled = np.full_like(b, b.mean())
    return _pearson(scaled, b), float(np.sqrt(np.mean((scaled - b) ** 2)))


def logistic4(x, b1: float, b2: float, b3: float, b4: float) -> np.ndarray:
    """VQEG 4-parameter logistic: (b1 - b2) / (1 + exp(-(x - b3) / |b4|)) + b2."""
    x = np.asarray(x, dtype=np.float64)
    z = np.clip(-(x - b3) / max(abs(b4), 1e-12), -500.0, 500.0)
    return (b1 - b2) / (1.0 + np.exp(z)) + b2


@dataclass(frozen=True)
class Logistic4Fit:
    """A fitted prediction -> MOS mapping.

    ``method`` is "logistic4" when the LM fit converged, else "linear" (a least-squares
    line used as the fallback) and ``note`` says why.
    """

    params: tuple[float, float, float, float]
    method: str
    converged: bool
    iterations: int
    note: str = ""

    def predict(self, x) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if self.method == "logistic4":
            return logistic4(x, *self.params)
        slope, intercept = self.params[0], self.params[1]
        return slope * x + intercept


def _linear_fit(a: np.ndarray, b: np.ndarray, note: str, iterations: int) -> Logistic4Fit:
    if a.std() > 0:
        slope, intercept = np.polyfit(a, b, 1)
    else:
        slope, intercept = 0.0, float(b.mean())
    return Logistic4Fit((float(slope), float(intercept), 0.0, 0.0), "linear", False, iterations, note)


def _jacobian(x: np.ndarray, p: np.ndarray) -> np.ndarray:
    b1, b2, b3, b4 = p
    s = max(abs(b4), 1e-12)
    sig = 1.0 / (1.0 + np.exp(np.clip(-(x - b3) / s, -500.0, 500.0)))
    dsig = sig * (1.0 - sig)
    sign = 1.0 if b4 >= 0 else -1.0
    return np.stack(
        [
            sig,
            1.0 - sig,
            (b1 - b2) * dsig * (-1.0 / s),
            (b1 - b2) * dsig * (-(x - b3) / (s * s)) * sign,
        ],
        axis=1,
    )


def fit_logistic4(pred, mos, max_iter: int = 200, tol: float = 1e-10) -> Logistic4Fit:
    """Fit the VQEG logistic from predictions to MOS with Levenberg-Marquardt.

    Predictions are standardised internally for conditioning; the returned parameters are
    in the original prediction units. Initialisation: plateaus at the MOS extremes (in the
    order of the correlation's sign), midpoint at the prediction median, slope from the
    prediction spread. Falls back to a linear fit when the data are too few or constant,
    when LM does not converge, or when the logistic fits worse than a line.
    """
    a, b = _pair(pred, mos)
    if a.size < 5:
        return _linear_fit(a, b, "fewer than 5 points: linear fit used", 0)
    if a.std() == 0 or b.std() == 0:
        return _linear_fit(a, b, "constant predictions or labels: linear fit used", 0)
    mu, sd = float(a.mean()), float(a.std())
    x = (a - mu) / sd
    r = _pearson(a, b)
    hi, lo = float(b.max()), float(b.min())
    p = np.array([hi, lo, float(np.median(x)), 1.0] if r >= 0 else [lo, hi, float(np.median(x)), 1.0])

    def sse(q: np.ndarray) -> float:
        res = b - logistic4(x, *q)
        return float(np.dot(res, res))

    cost = sse(p)
    lam = 1e-3
    converged = False
    it = 0
    rel = 1.0
    step = np.zeros(4)
    for it in range(1, max_iter + 1):  # noqa: B007 - `it` is reported
        res = b - logistic4(x, *p)
        J = _jacobian(x, p)
        JTJ = J.T @ J
        g = J.T @ res
        improved = False
        for _ in range(30):
            A = JTJ + lam * np.diag(np.diag(JTJ) + 1e-12)
            try:
                step = np.linalg.solve(A, g)
            except np.linalg.LinAlgError:
                lam *= 10.0
                continue
            cand = p + step
            c = sse(cand)
            if np.isfinite(c) and c <= cost:
                rel = (cost - c) / max(cost, 1e-300)
                p, cost = cand, c
                lam = max(lam / 10.0, 1e-12)
                improved = True
                break
            lam *= 10.0
        # No damped step lowers the cost (a minimum), or the gain became negligible.
        if not improved or rel < tol or np.max(np.abs(step)) < 1e-10 * (1 + np.max(np.abs(p))):
            converged = True
            break

    if not np.all(np.isfinite(p)):
        return _linear_fit(a, b, "logistic fit diverged: linear fit used", it)
    if not converged:
        return _linear_fit(a, b, f"logistic fit did not converge in {max_iter} iterations: linear fit used", it)
    lin = _linear_fit(a, b, "", it)
    lin_sse = float(np.sum((b - lin.predict(a)) ** 2))
    if cost > lin_sse * (1 + 1e-9):
        return _linear_fit(a, b, "logistic fit worse than a line: linear fit used", it)
    b1, b2, b3, b4 = (float(v) for v in p)
    # Undo the standardisation: (x_z - b3)/b4 == (a - (mu + sd*b3)) / (sd*b4).
    return Logistic4Fit((b1, b2, mu + sd * b3, sd * abs(b4)), "logistic4", True, it)


def plcc_logistic(pred, mos, fit: Logistic4Fit | None = None) -> float:
    """PLCC after the VQEG 4-parameter logistic mapping (or its linear fallback)."""
    a, b = _pair(pred, mos)
    fit = fit or fit_logistic4(a, b)
    return _pearson(fit.predict(a), b)


def rmse_logistic(pred, mos, fit: Logistic4Fit | None = None) -> float:
    """RMSE in MOS units after the VQEG 4-parameter logistic mapping."""
    a, b = _pair(pred, mos)
    fit = fit or fit_logistic4(a, b)
    return float(np.sqrt(np.mean((fit.predict(a) - b) ** 2)))


def rd_order_pairs(pred, groups: Sequence[Hashable], levels) -> tuple[int, int]:
    """(correct, total) adjacent ladder pairs; see `rd_order_accuracy`."""
    p = np.asarray(pred, dtype=np.float64).reshape(-1)
    lv = np.asarray(levels, dtype=np.float64).reshape(-1)
    if not (p.size == lv.size == len(groups)):
        raise ValueError(f"length mismatch: {p.size} predictions, {len(groups)} groups, {lv.size} levels")
    if not (np.all(np.isfinite(p)) and np.all(np.isfinite(lv))):
        raise ValueError("predictions and levels must be finite (found NaN or inf)")
    by_group: dict[Hashable, list[int]] = {}
    for i, g in enumerate(groups):
        by_group.setdefault(g, []).append(i)
    correct = total = 0
    for idx in by_group.values():
        idx_sorted = sorted(idx, key=lambda i: lv[i])
        for i, j in zip(idx_sorted, idx_sorted[1:], strict=False):
            if lv[j] == lv[i]:
                continue  # same rung twice: not a step of the ladder
            total += 1
            correct += int(p[i] > p[j])
    return correct, total


def rd_order_accuracy(pred, groups: Sequence[Hashable], levels) -> float:
    """Share of adjacent rate-distortion ladder pairs whose predicted quality falls.

    `groups` holds one hashable key per clip (e.g. ``(source, codec, resolution)``) and
    `levels` its CRF/QP. Within each group clips are sorted by level; every adjacent pair
    with distinct levels counts, and it is correct when the prediction for the lower CRF
    is strictly higher (ties count as wrong). nan when there is no pair.
    """
    correct, total = rd_order_pairs(pred, groups, levels)
    return correct / total if total else float("nan")


def evaluate(
    pred,
    mos,
    groups: Sequence[Hashable] | None = None,
    levels=None,
) -> dict:
    """Every metric under an explicit name.

    Keys: ``srcc, krcc, plcc, plcc_linear, rmse_linear, plcc_logistic, rmse_logistic,
    rmse, n, logistic_method, logistic_note`` and, when `groups` and `levels` are given,
    ``rd_order_accuracy, rd_order_pairs``.
    """
    a, b = _pair(pred, mos)
    fit = fit_logistic4(a, b)
    pl, rl = plcc_linear_rescaled(a, b)
    out: dict = {
        "srcc": srcc(a, b),
        "krcc": krcc(a, b),
        "plcc": plcc(a, b),
        "plcc_linear": pl,
        "rmse_linear": rl,
        "plcc_logistic": plcc_logistic(a, b, fit),
        "rmse_logistic": rmse_logistic(a, b, fit),
        "rmse": rmse(a, b),
        "n": int(a.size),
        "logistic_method": fit.method,
        "logistic_note": fit.note,
    }
    if groups is not None and levels is not None:
        correct, total = rd_order_pairs(a, groups, levels)
        out["rd_order_accuracy"] = correct / total if total else float("nan")
        out["rd_order_pairs"] = total
    return out


# ---- video-level evaluation over manifest rows -------------------------------------
def ladder_key(row: ManifestRow) -> tuple[str, str, str, str]:
    """The rate-distortion ladder a row is a rung of: one source, codec and coded size *at
    one display size* (a 1280x720 clip's half-resolution rung is coded at 640x360 like the
    full-size rungs of the 640x360 clip of the same source, but it is another ladder)."""
    res = row.resolution or (f"{row.width}x{row.height}" if row.width and row.height else "")
    display = f"{row.width}x{row.height}" if row.width and row.height else ""
    return (row.source, row.codec, res, display)


def within_source_srcc(preds: Sequence[float], rows: Sequence[ManifestRow]) -> float:
    """Mean over sources (>= 3 videos) of the SRCC between prediction and MOS: how well an
    engine orders the encodes of one content, whatever it thinks of the content itself."""
    by: dict[str, list[int]] = {}
    for i, r in enumerate(rows):
        by.setdefault(r.source, []).append(i)
    vals = [srcc([preds[i] for i in idx], [rows[i].mos for i in idx])
            for idx in by.values() if len(idx) >= 3]
    vals = [v for v in vals if math.isfinite(v)]
    return float(np.mean(vals)) if vals else float("nan")


def video_accuracy(preds: Sequence[float | None], rows: Sequence[ManifestRow]) -> dict[str, Any]:
    """The video-level figures of one engine on some manifest rows: `evaluate` vs MOS (both
    on the MOS scale), RD-order over (source, codec, coded resolution) ladders and the mean
    within-source SRCC. The one evaluation: training reports, `vqa-export`'s accuracy,
    `vqa-bench`, its peers and the benchmark scripts all report through it. Videos without
    a finite prediction or a MOS are left out; fewer than two left gives only `n` and a note."""
    pairs = [(p, r) for p, r in zip(preds, rows, strict=True)
             if p is not None and math.isfinite(p) and r.mos is not None]
    if len(pairs) < 2:
        return {"n": len(pairs), "note": "fewer than two scored videos with MOS"}
    laddered = [(p, r) for p, r in pairs if r.crf is not None]
    out = evaluate([p for p, _ in pairs], [r.mos for _, r in pairs])
    out["within_source_srcc"] = within_source_srcc([p for p, _ in pairs], [r for _, r in pairs])
    if laddered:
        correct, total = rd_order_pairs([p for p, _ in laddered],
                                        [ladder_key(r) for _, r in laddered],
                                        [r.crf for _, r in laddered])
        out["rd_order_accuracy"] = correct / total if total else float("nan")
        out["rd_order_pairs"] = total
    return out
