"""The research harness's fragment sampler and per-crop label (benchmarks/teacher_probe.py).

RESULTS.md reports figures from these two functions, so they get the same checks as
product code: fragments come from their own grid cell, the reference is cut at the same
places, and the crop label is the corpus formula (100 for a perfect copy, lower with damage).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from internvqa.distill.corpus.sources import bt601_luma

pytest.importorskip("scipy")
_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "teacher_probe.py"
_spec = importlib.util.spec_from_file_location("teacher_probe", _PATH)
probe = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(probe)


def _frame_with_cell_ids(h: int, w: int, g: int) -> np.ndarray:
    """(2, h, w, 3) uint8 whose red channel is the index of the g x g grid cell of each pixel
    (cell i spans floor(i * h / g) <= y < floor((i + 1) * h / g))."""
    ys = np.searchsorted([(i * h) // g for i in range(1, g)], np.arange(h), side="right")
    xs = np.searchsorted([(j * w) // g for j in range(1, g)], np.arange(w), side="right")
    ids = (ys[:, None] * g + xs[None, :]).astype(np.uint8)
    clip = np.zeros((2, h, w, 3), np.uint8)
    clip[..., 0] = ids
    clip[..., 1] = np.arange(w, dtype=np.uint8)[None, :]  # column index, to compare positions
    return clip


@pytest.mark.parametrize("rng", [None, np.random.default_rng(3)])
def test_each_fragment_comes_from_its_own_cell(rng):
    size, frag = 56, 8
    g = size // frag
    clip = _frame_with_cell_ids(128, 224, g)
    ref = clip[..., 1].astype(np.float32)
    out, ref_out = probe.fragments(clip, size, frag, rng, ref)
    assert out.shape == (2, size, size, 3) and ref_out.shape == (2, size, size)
    for i in range(g):
        for j in range(g):
            cell = out[:, i * frag:(i + 1) * frag, j * frag:(j + 1) * frag, 0]
            assert np.all(cell == i * g + j)
    np.testing.assert_array_equal(ref_out, out[..., 1].astype(np.float32))


def test_centre_fragments_are_deterministic_and_random_ones_vary():
    clip = np.random.default_rng(0).integers(0, 256, (4, 128, 224, 3), dtype=np.uint8)
    a, _ = probe.fragments(clip, 56, 8, None)
    b, _ = probe.fragments(clip, 56, 8, None)
    c, _ = probe.fragments(clip, 56, 8, np.random.default_rng(1))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_crop_label_is_the_corpus_formula_and_falls_with_damage():
    rng = np.random.default_rng(0)
    rgb = rng.integers(30, 220, (4, 56, 56, 3)).astype(np.uint8)
    ref_y = bt601_luma(rgb)
    perfect = probe._crop_label(ref_y, rgb)
    noisy = np.clip(rgb.astype(int) + rng.integers(-6, 7, rgb.shape), 0, 255).astype(np.uint8)
    worse = np.clip(rgb.astype(int) + rng.integers(-40, 41, rgb.shape), 0, 255).astype(np.uint8)
    assert perfect == pytest.approx(1.0, abs=1e-3)
    assert perfect > probe._crop_label(ref_y, noisy) > probe._crop_label(ref_y, worse) >= 0.0
