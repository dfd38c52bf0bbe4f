"""PSNR/SSIM against scikit-image; MS-SSIM properties."""

from __future__ import annotations

import numpy as np
import pytest
from skimage import data
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from internvqa.distill.corpus import fr_metrics as F


@pytest.fixture(scope="module")
def pair():
    ref = data.camera()[::2, ::2].copy()  # 256x256 uint8
    rng = np.random.default_rng(0)
    dist = np.clip(ref.astype(np.int16) + rng.normal(0, 8, ref.shape).round(), 0, 255).astype(np.uint8)
    return ref, dist


def test_psnr_matches_skimage(pair):
    ref, dist = pair
    assert F.psnr(ref, dist) == pytest.approx(peak_signal_noise_ratio(ref, dist, data_range=255), abs=1e-9)
    assert F.psnr(ref, ref) == 100.0


@pytest.mark.parametrize("shape", [(256, 256), (128, 224), (37, 61)])
def test_ssim_matches_skimage(pair, shape):
    ref, dist = pair
    ref, dist = ref[: shape[0], : shape[1]], dist[: shape[0], : shape[1]]
    want = structural_similarity(
        ref, dist, data_range=255, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
    )
    assert F.ssim(ref, dist) == pytest.approx(want, abs=1e-6)


def test_ssim_blur_matches_skimage():
    import cv2

    ref = data.astronaut()[..., 1][:200, :300].copy()
    dist = cv2.GaussianBlur(ref, (0, 0), 2.0)
    want = structural_similarity(ref, dist, data_range=255, gaussian_weights=True, sigma=1.5,
                                 use_sample_covariance=False)
    assert F.ssim(ref, dist) == pytest.approx(want, abs=1e-6)
    assert F.ssim(ref, ref) == pytest.approx(1.0)


def test_ms_ssim_properties(pair):
    ref, dist = pair
    assert F.ms_ssim_scales(ref.shape) == 5
    assert F.ms_ssim_scales((128, 224)) == 4
    assert F.ms_ssim_scales((21, 30)) == 1 and F.ms_ssim_scales((22, 30)) == 2
    assert F.ms_ssim(ref, ref) == pytest.approx(1.0)
    rng = np.random.default_rng(1)
    values = []
    for sigma in (2, 8, 25):
        d = np.clip(ref + rng.normal(0, sigma, ref.shape), 0, 255)
        values.append(F.ms_ssim(ref, d))
    assert values[0] > values[1] > values[2] > 0
    # MS-SSIM weights coarse scales, which ignore pixel noise: it exceeds single-scale SSIM.
    assert F.ms_ssim(ref, dist) > F.ssim(ref, dist)
    # One scale is exactly SSIM.
    small_r, small_d = ref[:20, :20], dist[:20, :20]
    assert F.ms_ssim(small_r, small_d) == pytest.approx(F.ssim(small_r, small_d), abs=1e-12)


def test_clip_metrics_and_errors(pair):
    ref, dist = pair
    m = F.clip_fr_metrics([ref, ref], [dist, ref])
    assert m["psnr_y"] == pytest.approx((F.psnr(ref, dist) + 100.0) / 2)
    assert m["ssim"] == pytest.approx((F.ssim(ref, dist) + 1.0) / 2)
    with pytest.raises(ValueError):
        F.ssim(ref, dist[:10])
    with pytest.raises(ValueError):
        F.clip_fr_metrics([ref], [])
