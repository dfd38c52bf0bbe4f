"""Full-reference metrics used to label the synthetic corpus: PSNR-Y, SSIM, MS-SSIM.

numpy + OpenCV only (no torch, no scikit-image), computed on the luma plane (Y, 8-bit,
data range 255) of the reference and the decoded clip.

- SSIM follows Wang et al. 2004: Gaussian window 11x11, sigma 1.5, K1 0.01, K2 0.03,
  population (not sample) covariances, and the mean taken over the "valid" region (5 px
  border dropped), which is what scikit-image's ``structural_similarity(...,
  gaussian_weights=True, sigma=1.5, use_sample_covariance=False)`` computes.
- MS-SSIM follows Wang et al. 2003: 5 scales with weights (0.0448, 0.2856, 0.3001,
  0.2363, 0.1333), 2x2 average-pool between scales, contrast-structure terms at the
  finer scales and full SSIM at the coarsest. Negative terms are clipped to 0 before the
  power (a common guard, as in most implementations). Small frames: every scale needs at
  least 11 px on the short side for the 11x11 window, so a frame whose short side is
  below 176 px uses the largest number of scales that fits (e.g. 4 for 128 px) with the
  first weights renormalised to sum to 1. `ms_ssim` reports nothing about this; the
  number used is `ms_ssim_scales(shape)`.
- PSNR of a clip is the mean of per-frame PSNR, each capped at 100 dB (identical frames).
"""

from __future__ import annotations

from collections.abc import Iterable

import cv2
import numpy as np

__all__ = ["MS_SSIM_WEIGHTS", "clip_fr_metrics", "ms_ssim", "ms_ssim_scales", "psnr", "ssim"]

MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
_WIN = 11
_SIGMA = 1.5
_PSNR_CAP = 100.0


def _as_float(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim != 2:
        raise ValueError(f"expected a 2-D luma plane, got shape {a.shape}")
    return a.astype(np.float64, copy=False)


def psnr(ref: np.ndarray, dist: np.ndarray, data_range: float = 255.0) -> float:
    """PSNR in dB, capped at 100 dB when the images are identical."""
    r = np.asarray(ref, dtype=np.float64)
    d = np.asarray(dist, dtype=np.float64)
    if r.shape != d.shape:
        raise ValueError(f"shape mismatch {r.shape} vs {d.shape}")
    mse = float(np.mean((r - d) ** 2))
    if mse == 0.0:
        return _PSNR_CAP
    return float(min(_PSNR_CAP, 10.0 * np.log10(data_range * data_range / mse)))


def _blur(x: np.ndarray) -> np.ndarray:
    return cv2.GaussianBlur(x, (_WIN, _WIN), _SIGMA, borderType=cv2.BORDER_REFLECT)


def _ssim_terms(x: np.ndarray, y: np.ndarray, data_range: float) -> tuple[float, float]:
    """(mean SSIM, mean contrast-structure) over the valid region."""
    if min(x.shape) < _WIN:
        raise ValueError(f"image {x.shape} smaller than the {_WIN}x{_WIN} SSIM window")
    c1 = (0.01 * data_range) ** 2
    c2 = (0.03 * data_range) ** 2
    mx, my = _blur(x), _blur(y)
    sxx = _blur(x * x) - mx * mx
    syy = _blur(y * y) - my * my
    sxy = _blur(x * y) - mx * my
    cs = (2 * sxy + c2) / (sxx + syy + c2)
    lum = (2 * mx * my + c1) / (mx * mx + my * my + c1)
    p = (_WIN - 1) // 2
    crop = (slice(p, -p), slice(p, -p))
    return float(np.mean((lum * cs)[crop])), float(np.mean(cs[crop]))


def ssim(ref: np.ndarray, dist: np.ndarray, data_range: float = 255.0) -> float:
    """Mean SSIM of two 2-D planes (Gaussian 11x11, sigma 1.5)."""
    x, y = _as_float(ref), _as_float(dist)
    if x.shape != y.shape:
        raise ValueError(f"shape mismatch {x.shape} vs {y.shape}")
    return _ssim_terms(x, y, data_range)[0]


def ms_ssim_scales(shape: tuple[int, ...]) -> int:
    """How many MS-SSIM scales fit a frame of this shape (1..5)."""
    short = min(shape[:2])
    n = 1
    while n < len(MS_SSIM_WEIGHTS) and short // (2**n) >= _WIN:
        n += 1
    return n


def _pool2(x: np.ndarray) -> np.ndarray:
    h, w = (x.shape[0] // 2) * 2, (x.shape[1] // 2) * 2
    x = x[:h, :w]
    return 0.25 * (x[0::2, 0::2] + x[1::2, 0::2] + x[0::2, 1::2] + x[1::2, 1::2])


def ms_ssim(ref: np.ndarray, dist: np.ndarray, data_range: float = 255.0) -> float:
    """Multi-scale SSIM; fewer than 5 scales on small frames (see module docstring)."""
    x, y = _as_float(ref), _as_float(dist)
    if x.shape != y.shape:
        raise ValueError(f"shape mismatch {x.shape} vs {y.shape}")
    n = ms_ssim_scales(x.shape)
    w = np.asarray(MS_SSIM_WEIGHTS[:n])
    w = w / w.sum()
    value = 1.0
    for i in range(n):
        s, cs = _ssim_terms(x, y, data_range)
        term = s if i == n - 1 else cs
        value *= max(term, 0.0) ** w[i]
        if i < n - 1:
            x, y = _pool2(x), _pool2(y)
    return float(value)


def clip_fr_metrics(ref_frames: Iterable[np.ndarray], dist_frames: Iterable[np.ndarray]) -> dict[str, float]:
    """Mean per-frame PSNR-Y, SSIM and MS-SSIM of two equally long sequences of Y planes."""
    ps, ss, ms = [], [], []
    for r, d in zip(ref_frames, dist_frames, strict=True):
        ps.append(psnr(r, d))
        ss.append(ssim(r, d))
        ms.append(ms_ssim(r, d))
    if not ps:
        raise ValueError("no frames to compare")
    return {"psnr_y": float(np.mean(ps)), "ssim": float(np.mean(ss)), "ms_ssim": float(np.mean(ms))}
