"""The feature baseline: features move the right way; on a real ladder, scores fall with CRF."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from bench_corpus import make_ladder
from videos import moving_frames

from internvqa.bench import baseline as bl
from internvqa.runtime.clipspec import ClipSpec
from internvqa.runtime.errors import UsageError
from internvqa.runtime.manifest import read_manifest

SPEC = ClipSpec(num_frames=4, frame_stride=2, size=32, resize_short=48, crop="three")


@pytest.fixture(scope="module")
def frame() -> np.ndarray:
    return bl.luma(moving_frames(1, 128, 96, seed=3)[0])


@pytest.fixture(scope="module")
def gridless() -> np.ndarray:
    """Smoothed noise: texture with no 8x8 structure at all."""
    rng = np.random.default_rng(5)
    noise = rng.uniform(0, 255, (96, 128)).astype(np.float32)
    return cv2.GaussianBlur(noise, (0, 0), 1.2)


def _feat(y: np.ndarray, name: str) -> float:
    return float(bl.frame_features(y)[bl.FRAME_FEATURES.index(name)])


def test_blur_lowers_sharpness_edges_and_high_frequencies(frame):
    blurred = cv2.GaussianBlur(frame, (0, 0), 2.0)
    for name in ("sharpness", "edge_density", "hf_energy"):
        assert _feat(blurred, name) < _feat(frame, name), name


def test_block_averaging_raises_blockiness_and_flat_blocks(gridless):
    frame = gridless
    h, w = frame.shape
    blocks = frame.reshape(h // 8, 8, w // 8, 8).mean(axis=(1, 3), keepdims=True)
    blocky = np.broadcast_to(blocks, (h // 8, 8, w // 8, 8)).reshape(h, w).astype(np.float32)
    assert bl.blockiness(frame) == pytest.approx(1.0, abs=0.1)  # no grid in the source
    assert bl.blockiness(blocky) > 3 * bl.blockiness(frame)
    assert bl.flat_blocks(blocky) == 1.0
    assert bl.flat_blocks(frame) < 0.5


def test_blockiness_follows_the_grid_not_any_edge(frame):
    """A block pattern shifted off the 8x8 grid is not 'blocky' at grid positions."""
    h, w = frame.shape
    blocks = frame.reshape(h // 8, 8, w // 8, 8).mean(axis=(1, 3), keepdims=True)
    blocky = np.broadcast_to(blocks, (h // 8, 8, w // 8, 8)).reshape(h, w).astype(np.float32)
    shifted = np.roll(blocky, (4, 4), axis=(0, 1))
    assert bl.blockiness(shifted) < 1.0 < bl.blockiness(blocky)


def test_temporal_difference_is_zero_for_a_still_and_grows_with_motion():
    f = moving_frames(5, 64, 48, seed=1)
    still = [bl.luma(f[0])] * 3
    moving = [bl.luma(x) for x in f[:3]]
    assert bl.temporal_diff(still) == 0.0
    assert bl.temporal_diff(moving) > 1.0


def test_features_sample_the_clip_spec_windows():
    native = bl.native_spec(SPEC)
    for n in (5, 16, 33):
        assert [p.frame_indices for p in native.plan_windows(n)] == \
               [p.frame_indices for p in SPEC.plan_windows(n)]
    assert native.resized_size(96, 64) == (96, 64)  # native resolution: grid preserved


def test_ridge_closed_form_matches_least_squares_at_zero_lambda():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 3))
    x -= x.mean(0)  # the model standardises features, so they are centred
    y = x @ np.array([1.5, -2.0, 0.5]) + 3.0 + 0.1 * rng.standard_normal(40)
    w, b = bl.ridge_fit(x, y, 0.0)
    ref = np.linalg.lstsq(np.c_[x, np.ones(40)], y, rcond=None)[0]
    np.testing.assert_allclose(np.append(w, b), ref, atol=1e-9)
    w_big, _ = bl.ridge_fit(x, y, 1e6)
    assert np.linalg.norm(w_big) < 0.01 * np.linalg.norm(w)  # a strong ridge shrinks


def test_scores_fall_as_crf_rises_on_a_held_out_source(tmp_path):
    sources = {"a": "train", "b": "train", "c": "train", "d": "test"}
    manifest = make_ladder(tmp_path / "ladder", sources, crfs=(18, 26, 35, 43, 51))
    rows = read_manifest(manifest)
    train = [r for r in rows if r.split == "train"]
    model = bl.fit_rows(train, SPEC, progress=False)
    assert model.ridge_lambda in bl.LAMBDAS and model.train["sources"] == 3
    test = sorted((r for r in rows if r.split == "test" and r.crf in (18, 35, 51)),
                  key=lambda r: r.crf)
    preds = [model.predict(r.abspath) for r in test]
    assert preds[0] > preds[1] > preds[2], preds
    # The saved JSON model reproduces the predictions exactly.
    loaded = bl.BaselineModel.load(model.save(tmp_path / "baseline.json"))
    assert [loaded.predict(r.abspath) for r in test] == pytest.approx(preds, rel=1e-12)


def test_load_rejects_other_files(tmp_path):
    p = tmp_path / "x.json"
    p.write_text('{"format": "something-else"}')
    with pytest.raises(UsageError):
        bl.BaselineModel.load(p)
