"""The clip spec: sampling rule, colour conversion, crops, normalisation, serialisation."""

from __future__ import annotations

import av
import numpy as np
import pytest

from internvqa.runtime.clipspec import (
    PRESETS,
    ClipSpec,
    WindowPlanner,
    crop_clip,
    normalize,
    rgb_to_yuv,
    windows_to_input,
    yuv_to_rgb,
)


def test_json_round_trip_and_validation():
    spec = ClipSpec(num_frames=4, frame_stride=2, size=112, resize_short=None, crop="three")
    assert ClipSpec.from_json(spec.to_json()) == spec
    assert ClipSpec.from_dict(PRESETS["paper"].to_dict()) == ClipSpec()
    with pytest.raises(ValueError, match="sampling"):
        ClipSpec(sampling="random")
    with pytest.raises(ValueError, match="resize_short"):
        ClipSpec(size=224, resize_short=128)
    with pytest.raises(ValueError, match="unknown clip spec fields"):
        ClipSpec.from_dict({"num_frames": 8, "bogus": 1})


def test_windows_tile_the_video_like_the_paper_recipe():
    spec = ClipSpec()  # 8 frames, 8 apart, windows every 64 frames
    plans = spec.plan_windows(300)
    assert [p.frame_indices[0] for p in plans] == [0, 64, 128, 192, 256]
    assert plans[0].frame_indices == tuple(range(0, 57, 8))
    assert plans[-1].flags == ("partial",)
    assert plans[-1].frame_indices[-1] == 299  # repeats the last real frame
    assert all(p.flags == () for p in plans[:-1])


def test_short_video_gives_one_flagged_window_and_tiny_tail_is_dropped():
    spec = ClipSpec(num_frames=4, frame_stride=4)
    (only,) = spec.plan_windows(6)
    assert only.flags == ("short",) and only.frame_indices == (0, 4, 5, 5)
    # 16 frames fill one window exactly; one extra frame is not worth a mostly-repeated window
    assert len(spec.plan_windows(17)) == 1
    assert len(spec.plan_windows(16 + 8)) == 2


def test_streaming_planner_matches_offline_plan_and_needed_frames():
    spec = ClipSpec(num_frames=3, frame_stride=2, window_stride=4)  # overlapping windows
    n = 23
    offline = spec.plan_windows(n)
    planner = WindowPlanner(spec)
    online, needed = [], set()
    for i in range(n):
        if planner.needed(i):
            needed.add(i)
        online += planner.frame_arrived(i)
    online += planner.finish()
    assert online == offline
    used = {i for p in offline for i in p.frame_indices if i < n - 1}
    assert used <= needed
    assert len(needed) < n  # some frames are never converted


def test_uniform_sampling_spreads_frames_over_segments():
    spec = ClipSpec(sampling="uniform", num_frames=4, num_segments=2)
    a, b = spec.plan_windows(80)
    assert a.frame_indices == (5, 15, 25, 35) and b.frame_indices == (45, 55, 65, 75)


@pytest.mark.parametrize("matrix", ["bt601", "bt709"])
@pytest.mark.parametrize("rng", ["limited", "full"])
@pytest.mark.parametrize("depth", [8, 10])
def test_yuv_rgb_round_trip(matrix, rng, depth):
    rgb = np.random.default_rng(1).integers(0, 256, size=(16, 20, 3), dtype=np.uint8)
    y, u, v = rgb_to_yuv(rgb, matrix=matrix, color_range=rng, bit_depth=depth)
    back = yuv_to_rgb(y, u, v, bit_depth=depth, matrix=matrix, color_range=rng)
    assert np.abs(back.astype(int) - rgb).max() <= (2 if depth == 8 else 1)


def test_wrong_matrix_is_visibly_different():
    rgb = np.zeros((8, 8, 3), np.uint8)
    rgb[..., 0] = 200
    y, u, v = rgb_to_yuv(rgb, matrix="bt709")
    wrong = yuv_to_rgb(y, u, v, matrix="bt601")
    assert np.abs(wrong.astype(int) - rgb).max() > 10


def test_conversion_matches_ffmpeg_for_bt601_limited():
    """Our YUV->RGB agrees with swscale's (FFmpeg's default BT.601 limited) conversion."""
    rgb = np.random.default_rng(2).integers(0, 256, size=(32, 32, 3), dtype=np.uint8)
    rgb = np.repeat(np.repeat(rgb[::2, ::2], 2, 0), 2, 1)  # flat 2x2 blocks: no chroma loss
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv444p")
    y, u, v = (np.frombuffer(p, np.uint8).reshape(-1, p.line_size)[:32, :32] for p in frame.planes)
    ours = yuv_to_rgb(y, u, v, matrix="bt601", color_range="limited")
    theirs = frame.to_ndarray(format="rgb24")
    assert np.abs(ours.astype(int) - theirs).max() <= 3


def test_resize_happens_on_planes_and_keeps_aspect():
    spec = ClipSpec(size=112, resize_short=112)
    assert spec.resized_size(1920, 1080) == (199, 112)
    assert spec.resized_size(720, 1280) == (112, 199)
    native = ClipSpec(size=112, resize_short=None)
    assert native.resized_size(224, 128) == (224, 128)
    assert native.resized_size(100, 60) == (187, 112)  # upscaled only when smaller than crop


def test_crops_and_normalize_shape_and_values():
    spec = ClipSpec(num_frames=2, size=4, resize_short=None, crop="three")
    clip = np.zeros((2, 4, 10, 3), np.uint8)
    clip[..., 0] = np.arange(10)[None, None, :]
    crops = crop_clip(spec, clip)
    assert crops.shape == (3, 2, 4, 4, 3)
    assert [int(c[0, 0, 0, 0]) for c in crops] == [0, 3, 6]
    x = normalize(spec, np.full((1, 2, 4, 4, 3), 255, np.uint8))
    assert x.shape == (1, 3, 2, 4, 4) and x.dtype == np.float32
    expected = (1 - np.array(spec.mean)) / np.array(spec.std)
    np.testing.assert_allclose(x[0, :, 0, 0, 0], expected, rtol=1e-6)
    batch = windows_to_input(spec, [clip, clip])
    assert batch.shape == (6, 3, 2, 4, 4)
    with pytest.raises(ValueError):
        normalize(spec, np.zeros((1, 2, 4, 4, 3), np.float32))
