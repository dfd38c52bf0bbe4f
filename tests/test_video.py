"""Video IO: files, raw YUV, in-memory frames, all through the same windows; bad input."""

from __future__ import annotations

import io

import numpy as np
import pytest
from videos import moving_frames, write_raw_yuv420, write_video

from internvqa.runtime.clipspec import ClipSpec
from internvqa.runtime.errors import UsageError, VideoError
from internvqa.runtime.video import (
    ArraySource,
    RawYUVSource,
    WindowAssembler,
    YUVPlanes,
    frame_from_array,
    iter_windows,
    open_video,
    read_windows,
)

SPEC = ClipSpec(num_frames=4, frame_stride=4, size=64, resize_short=None)


def test_file_windows_shapes_and_flags(small_video):
    wins = read_windows(small_video, SPEC)
    assert [w.frame_indices for w in wins] == [(0, 4, 8, 12), (16, 20, 24, 28), (32, 36, 39, 39)]
    assert wins[-1].flags == ("partial",)
    assert all(w.clip.shape == (4, 72, 128, 3) and w.clip.dtype == np.uint8 for w in wins)
    assert wins[1].times[0] == pytest.approx(16 / 25, abs=1e-3)


@pytest.mark.parametrize(
    ("codec", "suffix", "pix_fmt"),
    [("libx265", ".mp4", "yuv420p10le"), ("libvpx-vp9", ".webm", "yuv420p"),
     ("libsvtav1", ".mkv", "yuv420p"), ("ffv1", ".mkv", "yuv444p")],
)
def test_codecs_and_bit_depths_decode_close_to_source(tmp_path, codec, suffix, pix_fmt):
    frames = moving_frames(9, 64, 64, seed=3)
    opts = {"crf": "10"} if codec != "ffv1" else {}
    if codec == "libx265":
        opts["x265-params"] = "log-level=error"
    path = write_video(tmp_path / f"v{suffix}", frames, codec=codec, pix_fmt=pix_fmt, options=opts)
    (w,) = read_windows(path, ClipSpec(num_frames=4, frame_stride=2, size=64, resize_short=None))
    err = np.abs(w.clip[0].astype(int) - frames[0]).mean()
    assert err < 12, f"{codec}: mean abs error {err}"


def test_raw_yuv_file_and_stream_match_container(tmp_path):
    import cv2

    # smooth content, so chroma upsampling filters (ours bilinear, swscale's replication)
    # do not dominate the comparison with FFmpeg below
    frames = np.stack([cv2.GaussianBlur(f, (0, 0), 3) for f in moving_frames(24, 96, 64, seed=1)])
    raw = write_raw_yuv420(tmp_path / "a.yuv", frames)
    a = read_windows(raw, SPEC, size=(96, 64))
    with open(raw, "rb") as fh:
        b = list(iter_windows(RawYUVSource(io.BytesIO(fh.read()), 96, 64), SPEC))
    assert len(a) == len(b) == 2
    for x, y in zip(a, b, strict=True):
        assert np.array_equal(x.clip, y.clip)
    # FFmpeg's own conversion of the same 4:2:0 frames agrees with ours (chroma
    # upsampling filters differ slightly, hence a mean rather than exact match)
    import av

    ref = av.VideoFrame.from_ndarray(frames[0], format="rgb24").reformat(format="yuv420p")
    theirs = ref.to_ndarray(format="rgb24")
    assert np.abs(a[0].clip[0].astype(int) - theirs).mean() < 5
    # in-memory RGB frames go through the same windows
    c = list(iter_windows(ArraySource(frames), SPEC))
    assert [w.frame_indices for w in c] == [w.frame_indices for w in a]
    assert np.array_equal(c[0].clip[0], frames[0])


def test_raw_wrong_size_is_a_clear_error(tmp_path):
    raw = write_raw_yuv420(tmp_path / "a.yuv", moving_frames(3, 96, 64))
    with pytest.raises(VideoError, match="not a whole number"):
        open_video(raw, size=(100, 64))
    with pytest.raises(UsageError, match="--size"):
        open_video(raw)
    with pytest.raises(UsageError, match="pixel format"):
        open_video(raw, size=(96, 64), pix_fmt="rgb48")


def test_truncated_raw_stream_keeps_complete_frames():
    frames = moving_frames(5, 64, 64)
    buf = io.BytesIO()
    src_bytes = b"".join(
        np.concatenate([f[..., 0].ravel(), f[::2, ::2, 1].ravel(), f[::2, ::2, 2].ravel()]).tobytes()
        for f in frames
    )
    buf.write(src_bytes[:-100])
    buf.seek(0)
    src = RawYUVSource(buf, 64, 64)
    assert len(list(src.frames())) == 4 and src.truncated


def test_bad_files_raise_video_error(tmp_path, small_video):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 50)
    truncated = tmp_path / "trunc.mp4"
    truncated.write_bytes(small_video.read_bytes()[:600])
    for bad, msg in [(tmp_path / "missing.mp4", "no such file"), (empty, "empty"),
                     (text, "not a readable video"), (tmp_path, "directory")]:
        with pytest.raises(VideoError, match=msg):
            read_windows(bad, SPEC)
    with pytest.raises(VideoError):
        read_windows(truncated, SPEC)


def test_array_frames_validation():
    with pytest.raises(VideoError, match="uint8"):
        frame_from_array(0, np.zeros((8, 8, 3), np.float32))
    with pytest.raises(VideoError, match=r"\(H, W, 3\)"):
        frame_from_array(0, np.zeros((8, 8), np.uint8))
    with pytest.raises(VideoError, match="exceeds"):
        frame_from_array(0, np.broadcast_to(np.zeros((1, 1, 3), np.uint8), (20000, 8, 3)))
    with pytest.raises(VideoError, match="no frames"):
        ArraySource([])
    planes = YUVPlanes(np.full((8, 8), 128, np.uint8), np.full((4, 4), 128, np.uint8),
                       np.full((4, 4), 128, np.uint8))
    rgb = frame_from_array(0, planes).to_rgb(ClipSpec(size=8, resize_short=None))
    assert rgb.shape == (8, 8, 3) and abs(int(rgb[0, 0, 0]) - 130) <= 2


def test_resolution_change_mid_stream_is_refused():
    asm = WindowAssembler(ClipSpec(num_frames=2, frame_stride=1, size=8, resize_short=None))
    asm.push(frame_from_array(0, np.zeros((8, 8, 3), np.uint8)))
    with pytest.raises(VideoError, match="resolution"):
        asm.push(frame_from_array(1, np.zeros((16, 16, 3), np.uint8)))


def test_memory_is_bounded_by_open_windows():
    spec = ClipSpec(num_frames=4, frame_stride=4, size=8, resize_short=None)
    asm = WindowAssembler(spec)
    peak = 0
    for i in range(200):
        asm.push(frame_from_array(i, np.zeros((8, 8, 3), np.uint8)))
        peak = max(peak, len(asm._cache))
    assert peak <= spec.num_frames


def test_uniform_sampling_on_a_file(small_video):
    spec = ClipSpec(sampling="uniform", num_frames=4, size=64, resize_short=None)
    (w,) = read_windows(small_video, spec)
    assert w.frame_indices == (5, 15, 25, 35)


@pytest.mark.parametrize("crop", ["center", "three"])
@pytest.mark.parametrize(("pix_fmt", "codec", "size"), [
    ("yuv420p", "libx264", (200, 120)), ("yuv420p10le", "libx265", (120, 200)),
    ("yuv444p", "libx264", (150, 90)), ("yuv420p", "ffv1", (131, 77)),
])
def test_crop_only_conversion_gives_identical_model_input(tmp_path, crop, pix_fmt, codec, size):
    """Scoring converts only the cropped band; the model input must not change by a bit."""
    from internvqa.runtime.clipspec import windows_to_input

    w, h = size
    opts = {"crf": "20"} if codec != "ffv1" else {}
    if codec == "libx265":
        opts["x265-params"] = "log-level=error"
    path = write_video(tmp_path / "v.mkv", moving_frames(9, w, h, seed=5), codec=codec,
                       pix_fmt=pix_fmt, options=opts)
    spec = ClipSpec(num_frames=2, frame_stride=2, size=57, resize_short=None, crop=crop)
    with open_video(path) as src:
        full = list(iter_windows(src, spec))
    with open_video(path) as src:
        band = list(iter_windows(src, spec, crop_only=True))
    assert band[0].clip.shape[1:3] != full[0].clip.shape[1:3] or crop == "three"
    for a, b in zip(full, band, strict=True):
        np.testing.assert_array_equal(windows_to_input(spec, [a.clip]), windows_to_input(spec, [b.clip]))
