"""Hostile inputs: every bad video, raw file or in-memory frame ends in a typed error or a
flagged result, within a time bound and without unbounded memory.

Seeds are tiny real files (mp4/mkv H.264, webm VP9, y4m) written once per module; the
fuzzing (hypothesis) cuts, overwrites and flips their bytes. Each case runs in a worker
thread joined with a timeout, so a hang fails the test instead of stalling the suite.
"""

from __future__ import annotations

import csv
import itertools
import resource
import threading
from pathlib import Path

import av
import numpy as np
import psutil
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from videos import moving_frames, write_raw_yuv420, write_video

from internvqa.runtime import InternVQAError, Scorer, ScoreStream
from internvqa.runtime.cli_common import run_command
from internvqa.runtime.errors import UsageError, VideoError
from internvqa.runtime.score_cli import score
from internvqa.runtime.scorelog import ScoreResult
from internvqa.runtime.video import YUVPlanes, open_video

CASE_TIMEOUT_S = 20.0  # one tiny file; anything near this is a hang
MAX_RSS_GROWTH = 256 << 20  # the cap allows one 8192x8192 frame; nothing may exceed that
FUZZ = settings(max_examples=50, deadline=10_000, database=None,
                suppress_health_check=[HealthCheck.too_slow])

_names = itertools.count()


@pytest.fixture(scope="module")
def seeds(tmp_path_factory) -> dict[str, bytes]:
    """The bytes of one tiny real file per container."""
    d = tmp_path_factory.mktemp("seeds")
    frames = moving_frames(12, 64, 48)
    files = {
        "mp4": write_video(d / "s.mp4", frames),
        "mkv": write_video(d / "s.mkv", frames),
        "webm": write_video(d / "s.webm", frames, codec="libvpx-vp9", options={"cpu-used": "8"}),
        "y4m": write_video(d / "s.y4m", frames, codec="rawvideo"),
    }
    return {k: p.read_bytes() for k, p in files.items()}


@pytest.fixture(scope="module")
def scorer(runtime_bundle) -> Scorer:
    return Scorer(runtime_bundle, threads=1)


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def bounded(fn, timeout: float = CASE_TIMEOUT_S):
    """Run `fn` in a thread: its result, or its InternVQAError; anything else fails.

    Fails on a hang (no answer within `timeout`) and on RSS growth above MAX_RSS_GROWTH.
    """
    box: dict = {}

    def target():
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - judged below, in the test thread
            box["error"] = exc

    rss0 = psutil.Process().memory_info().rss
    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(timeout)
    assert not t.is_alive(), f"no answer within {timeout} s (hang)"
    grown = psutil.Process().memory_info().rss - rss0
    assert grown < MAX_RSS_GROWTH, f"RSS grew by {grown >> 20} MiB"
    err = box.get("error")
    if err is not None and not isinstance(err, InternVQAError):
        raise AssertionError(f"untyped {type(err).__name__}: {err}") from err
    return err if err is not None else box["value"]


def check_outcome(out) -> None:
    """A typed error with a one-line message, or a result whose scores are finite."""
    if isinstance(out, InternVQAError):
        assert str(out) and "\n" not in str(out).strip()
        return
    assert isinstance(out, ScoreResult)
    scored = [w.score for w in out.windows if w.score is not None]
    assert scored and np.all(np.isfinite(scored))
    assert all(w.score is not None or "nonfinite" in w.flags for w in out.windows)


def _score_bytes(scorer: Scorer, work: Path, kind: str, data: bytes):
    path = work / f"case{next(_names)}.{kind}"
    path.write_bytes(data)
    try:
        return bounded(lambda: scorer.score_file(path))
    finally:
        path.unlink()


KINDS = st.sampled_from(["mp4", "mkv", "webm", "y4m"])


@pytest.mark.parametrize("kind", ["mp4", "mkv", "webm", "y4m"])
def test_unmodified_seeds_score_cleanly(scorer, seeds, work, kind):
    """The control for the fuzzing below: the seed files themselves score, every window,
    with no decode errors, so a check that 'accepts any typed error' cannot hide a
    reader that rejects valid files."""
    out = _score_bytes(scorer, work, kind, seeds[kind])
    assert isinstance(out, ScoreResult), out
    assert out.frames == 12 and all(w.score is not None for w in out.windows)
    assert "decode_errors" not in out.flags and "truncated" not in out.flags


@FUZZ
@given(kind=KINDS, frac=st.floats(0.0, 1.0))
def test_truncated_files(scorer, seeds, work, kind, frac):
    data = seeds[kind]
    cut = data[: int(len(data) * frac)]
    out = _score_bytes(scorer, work, kind, cut)
    check_outcome(out)
    if len(cut) < 16:  # not even a container header: must be refused, never "scored"
        assert isinstance(out, InternVQAError), (kind, len(cut))
    if cut == data:
        assert isinstance(out, ScoreResult), out


@FUZZ
@given(kind=KINDS, header=st.integers(4, 512), tail=st.binary(max_size=4096))
def test_random_bytes_behind_a_real_header(scorer, seeds, work, kind, header, tail):
    check_outcome(_score_bytes(scorer, work, kind, seeds[kind][:header] + tail))


@FUZZ
@given(kind=KINDS, flips=st.lists(st.tuples(st.floats(0.0, 1.0, exclude_max=True),
                                            st.integers(0, 7)), min_size=1, max_size=24))
def test_flipped_bits(scorer, seeds, work, kind, flips):
    data = bytearray(seeds[kind])
    for where, bit in flips:
        data[int(where * len(data))] ^= 1 << bit
    check_outcome(_score_bytes(scorer, work, kind, bytes(data)))


def test_unknown_codec_tag_is_a_video_error(scorer, seeds, work):
    """Regression: a stream whose codec FFmpeg cannot name has no codec context."""
    data = bytearray(seeds["mp4"])
    entry = data.find(b"avc1", data.find(b"stsd"))
    data[entry : entry + 4] = b"zzzz"
    out = _score_bytes(scorer, work, "mp4", bytes(data))
    assert isinstance(out, VideoError) and "unknown or unsupported codec" in str(out)


@pytest.mark.parametrize("kind,codec", [("mp4", "libx264"), ("mkv", "libx264"),
                                        ("webm", "libvpx-vp9"), ("y4m", "rawvideo")])
def test_zero_frame_files(scorer, work, kind, codec):
    """A container with a video stream but not a single frame."""
    path = work / f"zero.{kind}"
    with av.open(str(path), "w") as c:
        s = c.add_stream(codec, rate=25)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        c.mux(s.encode(None))
    out = bounded(lambda: scorer.score_file(path))
    assert isinstance(out, VideoError), out


# ---- raw YUV geometry ------------------------------------------------------------------
@pytest.fixture(scope="module")
def raw_file(work) -> Path:
    return write_raw_yuv420(work / "r.yuv", moving_frames(10, 64, 48))


def _maxrss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


@pytest.mark.parametrize("size,ok", [
    ((64, 48), True), ((0, 0), False), ((99999, 99999), False), ((16385, 2), False),
    ((8192, 8193), False), ((63, 47), False), ((64, 47), False), ((5, 3), False),
    ((3, 3), False), ((1, 1), False), ((2, 2), True),  # 2x2 divides 46080 bytes
])
def test_raw_sizes(scorer, raw_file, size, ok):
    peak = _maxrss()
    out = bounded(lambda: scorer.score_file(raw_file, size=size))
    check_outcome(out)
    assert isinstance(out, ScoreResult) is ok, out
    assert _maxrss() - peak < 64 << 20  # no allocation of the claimed geometry


@FUZZ
@given(w=st.integers(-3, 100_000), h=st.integers(-3, 100_000),
       fmt=st.sampled_from(["yuv420p", "yuv420p10le", "nv12", "yuv422p", "yuv444p"]))
def test_raw_any_geometry(scorer, raw_file, w, h, fmt):
    check_outcome(bounded(lambda: scorer.score_file(raw_file, size=(w, h), pix_fmt=fmt)))


def test_raw_absurd_sizes_on_the_cli(runtime_bundle, raw_file, capsys):
    """`--size 0x0` / `99999x99999` / a size that doesn't divide the file: one line, exit 2."""
    for size in ("0x0", "99999x99999", "63x47", "x", "-64x48"):
        capsys.readouterr()
        rc = run_command(score, ["--bundle", str(runtime_bundle), "--size", size, "--no-progress",
                                 str(raw_file)])
        err = capsys.readouterr().err
        assert rc == 2 and err.startswith("error: ") and err.count("\n") == 1, (size, err)


def test_huge_raw_stdin_geometry_is_refused_before_reading():
    """Pipe mode: the claimed frame size is checked before a single byte is buffered."""
    with pytest.raises(VideoError, match="exceeds the supported maximum"):
        open_video("-", size=(99999, 99999))


# ---- in-memory frames through the Python API ----------------------------------------------
DTYPES = st.sampled_from([np.uint8, np.uint16, np.int8, np.float16, np.float32, np.float64,
                          np.bool_, np.complex64, object])
SPECIAL = st.sampled_from([0.0, 255.0, np.nan, np.inf, -np.inf, -1.0, 1e30])


@st.composite
def frame_arrays(draw):
    shape = draw(st.lists(st.integers(0, 70), min_size=0, max_size=5))
    dtype = draw(DTYPES)
    arr = np.zeros(shape, dtype=dtype) if np.prod(shape) < 2_000_000 else np.zeros(0)
    if arr.size and arr.dtype.kind in "fc":
        with np.errstate(over="ignore", invalid="ignore"):  # 1e30 into float16 is inf
            arr.flat[draw(st.integers(0, arr.size - 1))] = draw(SPECIAL)
    return arr


@FUZZ
@given(frames=frame_arrays(), fps=st.sampled_from([25.0, 0.0, -1.0, np.nan, np.inf]))
def test_score_frames_any_array(scorer, frames, fps):
    out = bounded(lambda: scorer.score_frames(frames, fps=fps))
    check_outcome(out)
    if isinstance(out, ScoreResult):  # only a valid uint8 (N, H, W, 3) video may score
        assert frames.dtype == np.uint8 and frames.ndim == 4 and frames.shape[3] == 3
        assert np.isfinite(fps) and fps > 0


@FUZZ
@given(frames=st.lists(frame_arrays(), min_size=1, max_size=6))
def test_stream_push_any_array(scorer, frames):
    def run():
        s = ScoreStream(scorer, fps=25)
        s.push_many(frames)
        return s.flush()

    check_outcome(bounded(run))


@pytest.mark.parametrize("bad", [None, 5, "frames", b"\x00" * 12, 3.5])
def test_score_frames_not_frames(scorer, bad):
    assert isinstance(bounded(lambda: scorer.score_frames(bad)), VideoError)


@FUZZ
@given(cshape=st.tuples(st.integers(0, 60), st.integers(0, 80)),
       vsame=st.booleans(), depth=st.sampled_from([8, 10, 12, 7]),
       matrix=st.sampled_from(["auto", "bt709", "xyz"]),
       rng=st.sampled_from(["auto", "full", "nope"]))
def test_yuv_planes_any_geometry(scorer, cshape, vsame, depth, matrix, rng):
    dt = np.uint8 if depth == 8 else np.uint16
    y = np.full((48, 64), 100, dt)
    u = np.full(cshape, 128, dt)
    v = u if vsame else np.full((24, 32), 128, dt)
    planes = [YUVPlanes(y, u, v, bit_depth=depth, matrix=matrix, color_range=rng)] * 10
    out = bounded(lambda: scorer.score_frames(planes))
    check_outcome(out)
    if isinstance(out, ScoreResult):
        assert u.shape == v.shape and u.shape in ((24, 32), (48, 32), (48, 64))


def test_fps_is_validated_everywhere(scorer, raw_file):
    for fps in (0.0, -5.0, float("nan"), float("inf")):
        with pytest.raises(UsageError):
            ScoreStream(scorer, fps=fps)
        with pytest.raises(UsageError):
            scorer.score_file(raw_file, size=(64, 48), fps=fps)


# ---- per-input limits -------------------------------------------------------------------
@pytest.fixture(scope="module")
def long_clip(work) -> Path:
    """300 frames of 16x16 y4m: tiny, but more frames than a limit of 50 allows."""
    return write_video(work / "long.y4m", moving_frames(300, 16, 16), codec="rawvideo")


def test_max_frames_and_max_seconds_stop_an_input(runtime_bundle, long_clip):
    limited = Scorer(runtime_bundle, threads=1, max_frames=50)
    out = bounded(lambda: limited.score_file(long_clip))
    assert isinstance(out, VideoError) and "more than 50 frames" in str(out)
    slow = Scorer(runtime_bundle, threads=1, max_seconds=1e-6)
    out = bounded(lambda: slow.score_file(long_clip))
    assert isinstance(out, VideoError) and "gave up after" in str(out)
    unlimited = Scorer(runtime_bundle, threads=1, max_frames=300, max_seconds=60)
    assert bounded(lambda: unlimited.score_file(long_clip)).frames == 300
    for bad in ({"max_frames": 0}, {"max_seconds": 0}, {"max_seconds": float("nan")}):
        with pytest.raises(UsageError):
            Scorer(runtime_bundle, threads=1, **bad)


def test_cli_limit_records_the_input_and_the_batch_goes_on(runtime_bundle, long_clip, seeds,
                                                           work, capsys):
    good = work / "good.mp4"
    good.write_bytes(seeds["mp4"])
    out = work / "limited.csv"
    rc = run_command(score, ["--bundle", str(runtime_bundle), "--max-frames", "100",
                             "--csv", str(out), "--no-progress", str(long_clip), str(good)])
    with open(out, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert rc == 1 and [r["status"] for r in rows] == ["error", "ok"]
    assert "frame limit" in rows[0]["error"]
