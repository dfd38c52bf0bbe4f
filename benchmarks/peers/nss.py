"""Natural-scene-statistics building blocks shared by BRISQUE and NIQE (numpy + OpenCV).

Both metrics (Mittal, Moorthy, Bovik) model the mean-subtracted contrast-normalised (MSCN)
luma of a natural image and the products of neighbouring MSCN coefficients with
generalised Gaussian distributions, and read distortion from the fitted shapes:

- luma: BT.601 weights on RGB, rounded to 8 bits (what BRISQUE's reference code scores).
- MSCN: (I - mu) / (sigma + 1), with mu and sigma the local mean and deviation under a
  7x7 Gaussian window (sigma 7/6), zero padding outside the image.
- Paired products: MSCN times its neighbour in four orientations (horizontal, vertical,
  two diagonals), the neighbour taken with a circular shift (`np.roll`) as the reference
  implementations do.
- GGD / AGGD fits by moment matching: the shape alpha is the grid value in 0.2:0.001:10
  whose moment ratio (Gamma-function expressions of alpha) is closest to the sample's,
  the grid and ratios of the published MATLAB code.
- The second scale: MATLAB's `imresize(I, 0.5)` (bicubic, Keys a = -0.5, antialiased
  kernel, symmetric borders).

References: A. Mittal, A. K. Moorthy, A. C. Bovik, "No-Reference Image Quality Assessment in
the Spatial Domain", IEEE TIP 21(12), 2012 (BRISQUE); A. Mittal, R. Soundararajan,
A. C. Bovik, "Making a 'Completely Blind' Image Quality Analyzer", IEEE SPL 20(3), 2013
(NIQE). Written here from the papers and the published algorithm; no code is copied.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

# ---- the shape grid and its moment ratios ----------------------------------------------
ALPHA_GRID = 0.2 + 0.001 * np.arange(9801)  # 0.2:0.001:10, as in the MATLAB code


def _lgamma(v: np.ndarray) -> np.ndarray:
    return np.array([math.lgamma(float(x)) for x in v])


_LG1, _LG2, _LG3 = (_lgamma(k / ALPHA_GRID) for k in (1.0, 2.0, 3.0))
#: sigma^2 / E|x|^2 of a GGD with shape alpha: Gamma(1/a) Gamma(3/a) / Gamma(2/a)^2
RHO_GGD = np.exp(_LG1 + _LG3 - 2.0 * _LG2)
#: E|x|^2 / E[x^2] of an AGGD (the r-hat of the papers): Gamma(2/a)^2 / (Gamma(1/a) Gamma(3/a))
RHO_AGGD = 1.0 / RHO_GGD
for _a in (ALPHA_GRID, RHO_GGD, RHO_AGGD):
    _a.flags.writeable = False


def alpha_of(ratio: np.ndarray | float, table: np.ndarray) -> np.ndarray:
    """Grid shape whose moment ratio in `table` is nearest `ratio` (element-wise)."""
    r = np.asarray(ratio, dtype=table.dtype)
    idx = np.abs(table[None, :] - r.reshape(-1, 1)).argmin(axis=1)
    return ALPHA_GRID[idx].reshape(r.shape)


# ---- luma and MSCN -------------------------------------------------------------------------
def luma_u8(rgb: np.ndarray) -> np.ndarray:
    """uint8 RGB (H, W, 3) -> uint8 luma: round(255 * (0.299 R + 0.587 G + 0.114 B) / 255)."""
    rgb = np.asarray(rgb)
    if rgb.ndim == 2:
        return rgb.astype(np.uint8)
    if rgb.ndim != 3 or rgb.shape[2] not in (3, 4):
        raise ValueError(f"expected an (H, W, 3) RGB frame, got shape {rgb.shape}")
    x = rgb[..., :3].astype(np.float32) / np.float32(255.0)
    y = x @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return np.clip(np.round(y * np.float32(255.0)), 0, 255).astype(np.uint8)


def _gauss_1d(size: int = 7, sigma: float = 7.0 / 6.0) -> np.ndarray:
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    k = np.exp(-(x * x) / (2.0 * sigma * sigma))
    return (k / k.sum()).astype(np.float32).astype(np.float64)  # the float32 taps of fspecial


GAUSS_7 = _gauss_1d()


def mscn(img: np.ndarray, eps: float = 0.0) -> np.ndarray:
    """MSCN coefficients (float64) of a 2-D luma image in [0, 255] (zero-padded window)."""
    x = np.asarray(img, dtype=np.float64)
    mu = cv2.sepFilter2D(x, cv2.CV_64F, GAUSS_7, GAUSS_7, borderType=cv2.BORDER_CONSTANT)
    mu_sq = cv2.sepFilter2D(x * x, cv2.CV_64F, GAUSS_7, GAUSS_7, borderType=cv2.BORDER_CONSTANT)
    sigma = np.sqrt(np.abs(mu_sq - mu * mu) + eps)
    return (x - mu) / (sigma + 1.0)


#: (dy, dx) circular shifts of the four neighbours: horizontal, vertical, main and
#: secondary diagonal
SHIFTS = ((0, 1), (1, 0), (1, 1), (1, -1))


def paired_products(m: np.ndarray) -> list[np.ndarray]:
    """MSCN times each neighbour (circular shift over the last two axes)."""
    return [m * np.roll(m, s, axis=(-2, -1)) for s in SHIFTS]


# ---- distribution fits ---------------------------------------------------------------------
def ggd_fit(x: np.ndarray, table: np.ndarray = RHO_GGD) -> tuple[float, float]:
    """(alpha, sigma^2) of a zero-mean generalised Gaussian by moment matching."""
    x = np.ravel(x)
    sigma_sq = float(np.mean(x * x))
    e = float(np.mean(np.abs(x)))
    return float(alpha_of(sigma_sq / (e * e), table)), sigma_sq


def aggd_fit(x: np.ndarray, zero_is_right: bool = False,
             table: np.ndarray = RHO_AGGD) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(alpha, left std, right std) of an asymmetric GGD, over the last axis (batched).

    Left/right are the root mean squares of the negative / positive samples;
    `zero_is_right` counts exact zeros among the right samples (scikit-video's NIQE
    convention; BRISQUE leaves them out of both sides). A side without samples has 0.
    """
    x = np.asarray(x, dtype=np.float64)
    sq = x * x
    neg = x < 0
    pos = x >= 0 if zero_is_right else x > 0
    n_l, n_r = neg.sum(-1), pos.sum(-1)
    s_l, s_r = np.where(neg, sq, 0.0).sum(-1), np.where(pos, sq, 0.0).sum(-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        left = np.sqrt(np.where(n_l > 0, s_l / np.maximum(n_l, 1), 0.0))
        right = np.sqrt(np.where(n_r > 0, s_r / np.maximum(n_r, 1), 0.0))
        r_hat = np.mean(np.abs(x), -1) ** 2 / np.mean(sq, -1)
        # r-hat corrected for the asymmetry gamma-hat = left / right, written in left and
        # right so that either may be zero
        norm = r_hat * (left**3 + right**3) * (left + right) / (left**2 + right**2) ** 2
    return alpha_of(norm, table), left, right


def gamma_ratios(alpha: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gamma(1/a), Gamma(2/a), Gamma(3/a) for an array of grid shapes."""
    a = np.asarray(alpha, dtype=np.float64)
    g = [np.exp(np.vectorize(math.lgamma)(k / a)) for k in (1.0, 2.0, 3.0)]
    return g[0], g[1], g[2]


# ---- the second scale ----------------------------------------------------------------------
def _cubic(x: np.ndarray) -> np.ndarray:
    a, ax = -0.5, np.abs(x)
    return np.where(ax <= 1, (a + 2) * ax**3 - (a + 3) * ax**2 + 1,
                    np.where(ax <= 2, a * ax**3 - 5 * a * ax**2 + 8 * a * ax - 4 * a, 0.0))


_TAPS = 10  # ceil(4 / 0.5) + 2: the antialiased cubic at scale 1/2
# Output pixel s sits at input position 2s + 0.5; its window starts at 2s - 4.
_HALF_W = _cubic(0.5 * (4.5 - np.arange(_TAPS)))
_HALF_W = (_HALF_W / _HALF_W.sum()).astype(np.float32)


def _half_index(n: int) -> np.ndarray:
    idx = 2 * np.arange((n + 1) // 2)[:, None] - 4 + np.arange(_TAPS)[None, :]
    idx = np.mod(idx, 2 * n)
    return np.where(idx < n, idx, 2 * n - 1 - idx)  # symmetric borders (edge repeated)


def downsample_half(img: np.ndarray) -> np.ndarray:
    """MATLAB `imresize(img, 0.5)` of a 2-D image (bicubic, antialiased), float32."""
    x = np.asarray(img, dtype=np.float32)
    rows = np.einsum("mkw,k->mw", x[_half_index(x.shape[0])], _HALF_W)
    return np.einsum("hmk,k->hm", rows[:, _half_index(x.shape[1])], _HALF_W)
