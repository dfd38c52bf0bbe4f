"""Training data pipeline: window cache, augmentation, loaders (tiny real videos)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from distill_corpus import TINY_SPEC, build_tiny_corpus

import internvqa.distill.data as data
from internvqa.runtime.clipspec import IMAGENET_MEAN, IMAGENET_STD, windows_to_input
from internvqa.runtime.errors import VideoError
from internvqa.runtime.manifest import read_manifest
from internvqa.runtime.video import read_windows


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return build_tiny_corpus(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def rows(corpus):
    return read_manifest(corpus)


@pytest.fixture(scope="module")
def cache(rows, tmp_path_factory):
    return data.build_window_cache(rows, TINY_SPEC, tmp_path_factory.mktemp("work"))


def test_cache_holds_exactly_the_runtime_windows(cache, rows):
    assert cache.folder.parent.name == "clips" and (cache.folder / "clips.u8").is_file()
    k = 0
    for vid, row in enumerate(rows):
        for w in read_windows(row.abspath, TINY_SPEC):
            info = cache.windows[k]
            assert info.video == vid and info.frame_indices == w.frame_indices
            np.testing.assert_array_equal(cache.clip(k), w.clip)
            k += 1
    assert k == len(cache)


def test_cache_is_reused_and_keyed_by_spec(rows, cache, monkeypatch):
    def no_decode(*a, **k):
        raise AssertionError("decoded again")

    monkeypatch.setattr(data, "iter_windows", no_decode)
    again = data.build_window_cache(rows, TINY_SPEC, cache.folder.parents[2])
    assert again.folder == cache.folder
    assert data.cache_key(rows, TINY_SPEC.replace(size=32)) != data.cache_key(rows, TINY_SPEC)
    assert data.cache_key(rows[:-1], TINY_SPEC) != data.cache_key(rows, TINY_SPEC)


def test_failed_build_leaves_no_cache(rows, tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all")
    broken = [*rows[:2], type(rows[0])(path=str(bad), mos=50.0, source="x", split="train")]
    with pytest.raises(VideoError):
        data.build_window_cache(broken, TINY_SPEC, tmp_path / "work")
    assert not list((tmp_path / "work" / "cache" / "clips").glob("*/index.json"))


def test_eval_items_are_the_runtime_input(cache, rows):
    ds = data.EvalWindows(cache, rows, [0, 1])
    assert len(ds) == len(cache.windows_of([0, 1]))
    item = ds[1]
    wid = item["window"]
    expect = windows_to_input(TINY_SPEC, [np.asarray(cache.clip(wid))])[0]
    np.testing.assert_array_equal(item["x"].numpy(), expect)
    assert math.isclose(item["label"], rows[item["video"]].mos / 100.0)


def _denormalise(x: torch.Tensor) -> np.ndarray:
    mean = np.array(IMAGENET_MEAN, np.float32)[:, None, None, None]
    std = np.array(IMAGENET_STD, np.float32)[:, None, None, None]
    return np.rint((x.numpy() * std + mean) * 255.0).transpose(1, 2, 3, 0).astype(np.uint8)


def test_train_views_are_native_scale_crops_or_flips(cache, rows):
    ds = data.TrainWindows(cache, rows, [0, 1, 2], seed=3, per_video=4)
    flips = 0
    for i in range(len(ds)):
        item = ds[i]
        crop = _denormalise(item["x"])
        clip = np.asarray(cache.clip(item["window"]))
        s = TINY_SPEC.size
        found = None
        for flipped in (False, True):
            c = crop[:, :, ::-1] if flipped else crop
            for y in range(clip.shape[1] - s + 1):
                for x in range(clip.shape[2] - s + 1):
                    if np.abs(clip[:, y : y + s, x : x + s].astype(int) - c).max() <= 1:
                        found = flipped
        assert found is not None, "training view is not a crop of its window"
        flips += found
    assert 0 < flips < len(ds)


def test_augmentation_depends_only_on_seed_epoch_item(cache, rows):
    a = data.TrainWindows(cache, rows, [0, 1, 2], seed=1)
    b = data.TrainWindows(cache, rows, [0, 1, 2], seed=1)
    assert torch.equal(a[2]["x"], b[2]["x"])
    b.set_epoch(1)
    assert not torch.equal(a[2]["x"], b[2]["x"])
    fixed = data.TrainWindows(cache, rows, [0, 1, 2], seed=1, views=2)
    seen = {}
    for epoch in range(6):
        fixed.set_epoch(epoch)
        it = fixed[0]
        assert it["view"] in (0, 1)
        if it["view"] in seen:
            assert torch.equal(seen[it["view"]], it["x"])
        seen[it["view"]] = it["x"]


def test_loader_order_is_seeded_and_worker_independent(cache, rows):
    ds = data.TrainWindows(cache, rows, list(range(6)), seed=0)

    def batches(workers, epoch, seed=0):
        loader = data.train_loader(ds, 4, seed, epoch, workers)
        return [(b["video"].tolist(), b["x"]) for b in loader]

    one, two = batches(0, 0), batches(2, 0)
    assert [v for v, _ in one] == [v for v, _ in two]
    assert all(torch.equal(x1, x2) for (_, x1), (_, x2) in zip(one, two, strict=True))
    assert [v for v, _ in batches(0, 1)] != [v for v, _ in one]
    shards = [data.train_loader(ds, 4, 0, 0, 0, rank=r, world=2) for r in (0, 1)]
    videos = [v for s in shards for b in s for v in b["video"].tolist()]
    assert sorted(videos) == list(range(6))


def test_label_free_rows_have_nan_labels(tmp_path):
    rows = read_manifest(build_tiny_corpus(tmp_path / "c", labelled=False))
    cache = data.build_window_cache(rows[:3], TINY_SPEC, tmp_path / "w")
    assert math.isnan(data.TrainWindows(cache, rows[:3], [0])[0]["label"])


def test_splits_and_heldout_choice(rows):
    splits = data.split_videos(rows)
    assert len(splits["train"]) == 6 and len(splits["val"]) == 3
    assert data.heldout_split(splits) == "val"
    assert data.heldout_split({"train": [0], "val": [], "test": [1]}) == "test"
