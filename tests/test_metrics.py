"""Metrics against scipy.stats and against hand-checked cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from scipy.optimize import curve_fit

from internvqa.runtime import metrics as M


@pytest.fixture
def noisy_pair():
    rng = np.random.default_rng(0)
    mos = rng.uniform(0, 100, 200)
    # A monotone but non-linear predictor, with noise: what a real model gives.
    pred = 1 / (1 + np.exp(-(mos - 50) / 15)) + rng.normal(0, 0.05, mos.size)
    return pred, mos


def test_srcc_krcc_plcc_match_scipy(noisy_pair):
    pred, mos = noisy_pair
    assert M.srcc(pred, mos) == pytest.approx(stats.spearmanr(pred, mos).statistic, abs=1e-12)
    assert M.krcc(pred, mos) == pytest.approx(stats.kendalltau(pred, mos).statistic, abs=1e-12)
    assert M.plcc(pred, mos) == pytest.approx(stats.pearsonr(pred, mos).statistic, abs=1e-12)


def test_ties_match_scipy_tau_b():
    rng = np.random.default_rng(1)
    pred = rng.integers(0, 5, 300).astype(float)
    mos = pred + rng.integers(0, 3, 300)
    assert M.krcc(pred, mos) == pytest.approx(stats.kendalltau(pred, mos, variant="b").statistic, abs=1e-12)
    assert M.srcc(pred, mos) == pytest.approx(stats.spearmanr(pred, mos).statistic, abs=1e-12)


def test_krcc_chunking_is_exact():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=130), rng.normal(size=130)
    assert M.krcc(a, b, chunk=7) == pytest.approx(M.krcc(a, b), abs=1e-14)


def test_rank_average():
    np.testing.assert_array_equal(M.rank_average(np.array([3.0, 1.0, 3.0, 2.0])), [3.5, 1, 3.5, 2])


def test_linear_rescaled_is_authors_convention(noisy_pair):
    pred, mos = noisy_pair
    p, r = M.plcc_linear_rescaled(pred, mos)
    scaled = (pred - pred.mean()) / pred.std() * mos.std() + mos.mean()
    assert p == pytest.approx(stats.pearsonr(scaled, mos).statistic, abs=1e-12)
    assert r == pytest.approx(math.sqrt(np.mean((scaled - mos) ** 2)), rel=1e-12)
    assert M.rmse(pred, mos) > r  # raw predictions are on another scale


def test_logistic_fit_recovers_parameters():
    rng = np.random.default_rng(3)
    x = rng.uniform(0, 10, 400)
    y = M.logistic4(x, 90.0, 10.0, 5.0, 1.2) + rng.normal(0, 0.5, x.size)
    fit = M.fit_logistic4(x, y)
    assert fit.method == "logistic4" and fit.converged
    np.testing.assert_allclose(fit.params, [90, 10, 5, 1.2], rtol=0.05)


def test_logistic_matches_scipy_curve_fit():
    rng = np.random.default_rng(4)
    pred = rng.uniform(-3, 3, 300)
    # MOS saturates at both ends of the predictor: the case the VQEG logistic is for.
    mos = 80 / (1 + np.exp(-pred * 1.5)) + 10 + rng.normal(0, 3, pred.size)
    fit = M.fit_logistic4(pred, mos)
    assert fit.method == "logistic4"
    p0 = [mos.max(), mos.min(), np.median(pred), pred.std()]
    popt, _ = curve_fit(M.logistic4, pred, mos, p0=p0, maxfev=20000)
    ref = stats.pearsonr(M.logistic4(pred, *popt), mos).statistic
    ref_rmse = math.sqrt(np.mean((M.logistic4(pred, *popt) - mos) ** 2))
    assert M.plcc_logistic(pred, mos) == pytest.approx(ref, abs=1e-4)
    assert M.rmse_logistic(pred, mos) == pytest.approx(ref_rmse, rel=1e-3)
    # The logistic absorbs the non-linearity: better than the linear rescaling.
    assert M.plcc_logistic(pred, mos) > M.plcc(pred, mos)


def test_logistic_negative_correlation():
    x = np.linspace(0, 10, 100)
    y = M.logistic4(x, 10.0, 90.0, 4.0, 1.0)
    fit = M.fit_logistic4(x, y)
    assert fit.method == "logistic4"
    assert M.plcc_logistic(x, y) == pytest.approx(1.0, abs=1e-6)


def test_logistic_falls_back_and_says_so(noisy_pair):
    # The best logistic for this convex relation lies at infinite plateaus: LM crawls.
    pred, mos = noisy_pair
    fit = M.fit_logistic4(pred, mos, max_iter=50)
    assert fit.method == "linear" and not fit.converged and "did not converge" in fit.note
    assert M.plcc_logistic(pred, mos, fit) == pytest.approx(M.plcc(pred, mos), abs=1e-12)
    fit = M.fit_logistic4([1, 2, 3], [3, 2, 1])
    assert fit.method == "linear" and not fit.converged and "fewer than 5" in fit.note
    fit = M.fit_logistic4(np.ones(10), np.arange(10.0))
    assert fit.method == "linear" and "constant" in fit.note
    np.testing.assert_allclose(fit.predict(np.ones(3)), 4.5)


def test_constant_inputs_give_nan_not_crash():
    r = M.evaluate(np.ones(10), np.arange(10.0))
    for k in ("srcc", "krcc", "plcc", "plcc_linear", "plcc_logistic"):
        assert math.isnan(r[k]), k
    assert r["rmse_linear"] == pytest.approx(np.arange(10.0).std())
    assert math.isnan(M.srcc([1.0], [2.0]))


@pytest.mark.parametrize(
    "pred,mos",
    [([1.0, 2.0], [1.0]), ([1.0, float("nan")], [1.0, 2.0]), ([1.0, 2.0], [float("inf"), 1.0]), ([], [])],
)
def test_rejects_bad_input(pred, mos):
    with pytest.raises(ValueError):
        M.evaluate(pred, mos)


def test_rd_order_accuracy():
    groups = [("a", "x264")] * 4 + [("b", "x264")] * 3
    levels = [22, 27, 32, 37, 40, 30, 35]
    pred = [90, 80, 85, 60, 10, 50, 40]
    # group a: 90>80 ok, 80>85 wrong, 85>60 ok; group b sorted 30,35,40: 50>40 ok, 40>10 ok
    assert M.rd_order_accuracy(pred, groups, levels) == pytest.approx(4 / 5)
    assert M.rd_order_pairs(pred, groups, levels) == (4, 5)
    # ties in prediction are wrong; equal levels are skipped
    assert M.rd_order_pairs([5, 5, 1], ["g"] * 3, [1, 2, 2]) == (0, 1)
    assert math.isnan(M.rd_order_accuracy([1.0], ["g"], [1]))
    with pytest.raises(ValueError):
        M.rd_order_accuracy([1.0, 2.0], ["g"], [1, 2])


def test_evaluate_keys(noisy_pair):
    pred, mos = noisy_pair
    r = M.evaluate(pred, mos, groups=["s"] * pred.size, levels=-mos)
    for k in ("srcc", "krcc", "plcc", "plcc_linear", "rmse_linear", "plcc_logistic", "rmse_logistic", "rmse", "n"):
        assert k in r
    assert r["n"] == 200
    assert 0.0 <= r["rd_order_accuracy"] <= 1.0 and r["rd_order_pairs"] == 199
    assert r["plcc_linear"] == pytest.approx(r["plcc"], abs=1e-12)


def test_metrics_module_is_torch_free():
    import subprocess
    import sys

    code = "import sys, internvqa.runtime.metrics; bad = {'torch', 'scipy', 'onnx'} & set(sys.modules); assert not bad, bad"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_ladder_key_keeps_display_sizes_apart():
    """A 1280x720 clip's half-size rung is coded at 640x360, as the 640x360 clip's own
    ladder is; mixing the two ladders made labels look out of order (seen: 0.972)."""
    from internvqa.runtime.manifest import ManifestRow

    def row(crf, mos, w, res):
        return ManifestRow(path="x", mos=mos, source="s", codec="libx264", crf=crf,
                           width=w, height=w * 9 // 16, resolution=res)

    rows = [row(22, 99, 640, "640x360"), row(32, 90, 640, "640x360"),  # the 360p clip
            row(26, 80, 1280, "640x360"), row(38, 60, 1280, "640x360")]  # 720p clip's rung
    keys = [M.ladder_key(r) for r in rows]
    assert keys[0] == keys[1] and keys[2] == keys[3] and keys[0] != keys[2]
    assert M.rd_order_pairs([r.mos for r in rows], keys, [r.crf for r in rows]) == (2, 2)
