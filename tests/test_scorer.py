"""Scorer and ScoreStream on a real tiny bundle and real (tiny) H.264 videos."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import av
import numpy as np
import pytest
from conftest import RUNTIME_TEST_SPEC, build_tiny_onnx, make_runtime_bundle
from videos import moving_frames, write_video

from internvqa.runtime import Scorer, ScoreStream
from internvqa.runtime.clipspec import ClipSpec
from internvqa.runtime.errors import VideoError
from internvqa.runtime.scorer import ModelOutputError
from internvqa.runtime.video import YUVPlanes

SPEC = ClipSpec(**RUNTIME_TEST_SPEC)


@pytest.fixture(scope="module")
def scorer(runtime_bundle) -> Scorer:
    return Scorer(runtime_bundle, threads=1)


def _decoded(path) -> tuple[list[YUVPlanes], list[np.ndarray]]:
    """The video's decoded yuv420p planes and FFmpeg's RGB of the same frames."""
    planes, rgb = [], []
    with av.open(str(path)) as c:
        for f in c.decode(video=0):
            w, h = f.width, f.height
            p = [np.frombuffer(pl, np.uint8).reshape(-1, pl.line_size) for pl in f.planes]
            planes.append(YUVPlanes(p[0][:h, :w].copy(), p[1][: h // 2, : w // 2].copy(),
                                    p[2][: h // 2, : w // 2].copy()))
            rgb.append(f.to_ndarray(format="rgb24"))
    return planes, rgb


def _scores(result) -> np.ndarray:
    return np.array([w.score for w in result.windows])


def test_file_raw_and_frames_agree(scorer, small_video, tmp_path):
    planes, rgb = _decoded(small_video)
    raw = tmp_path / "same.yuv"
    raw.write_bytes(b"".join(p.y.tobytes() + p.u.tobytes() + p.v.tobytes() for p in planes))
    from_file = scorer.score_file(small_video)
    from_raw = scorer.score_file(raw, size=(128, 72), pix_fmt="yuv420p", fps=25)
    from_planes = scorer.score_frames(planes, fps=25)
    from_rgb = scorer.score_frames(np.stack(rgb), fps=25)
    assert len(from_file.windows) == 5 and from_file.frames == 40
    assert [w.start_frame for w in from_file.windows] == [0, 8, 16, 24, 32]
    # identical YUV in: identical scores out
    np.testing.assert_allclose(_scores(from_raw), _scores(from_file), atol=1e-6)
    np.testing.assert_allclose(_scores(from_planes), _scores(from_file), atol=1e-6)
    # RGB converted by FFmpeg (its own chroma upsampling/siting) instead of the clip spec:
    # close, not equal, on this noise-textured clip
    np.testing.assert_allclose(_scores(from_rgb), _scores(from_file), atol=0.25)
    s = _scores(from_file)
    assert np.all((s > 0) & (s < 100)) and s.std() > 0
    p = from_file.pooled
    assert p["min"] <= p["p5"] <= p["harmonic_mean"] <= p["mean"] <= p["max"]
    log = from_file.to_vmaf_json()
    assert log["frames"][1]["frameNum"] == 8 and log["frames"][1]["metrics"]["internvqa"] > 0
    assert log["pooled_metrics"]["internvqa"]["mean"] == pytest.approx(p["mean"], abs=1e-5)
    assert log["model"]["precision"] == "fp32" and log["input"]["frames"] == 40


def test_stream_emits_each_window_on_its_last_frame(scorer, small_video):
    _, rgb = _decoded(small_video)
    rgb = rgb[:37]  # 4 full windows (last frames 6, 14, 22, 30) + a partial one
    stream = ScoreStream(scorer, fps=25)
    emitted_at = {}
    for pushes, frame in enumerate(rgb, start=1):
        for ws in stream.push(frame):
            emitted_at[ws.index] = pushes
    assert emitted_at == {k: k * SPEC.hop + SPEC.span for k in range(4)}
    result = stream.flush()
    assert [w.index for w in result.windows] == [0, 1, 2, 3, 4]
    assert result.windows[4].flags == ("partial",) and result.flags == ["partial"]
    batch = scorer.score_frames(np.stack(rgb), fps=25)
    np.testing.assert_allclose(_scores(result), _scores(batch), atol=1e-6)
    assert stream.score_at(2).score == result.windows[2].score


def test_short_video_is_flagged(scorer, tmp_path):
    path = write_video(tmp_path / "short.mp4", moving_frames(3, 96, 64))
    result = scorer.score_file(path)
    assert len(result.windows) == 1 and result.frames == 3
    assert result.windows[0].flags == ("short",) and "short" in result.flags
    assert result.score is not None and 0 < result.score < 100


def test_concurrent_threads_match_sequential(scorer, tmp_path):
    videos = [write_video(tmp_path / f"v{i}.mp4", moving_frames(24, 96, 64, seed=i)) for i in range(4)]
    sequential = [_scores(scorer.score_file(v)) for v in videos]
    with ThreadPoolExecutor(4) as pool:
        concurrent = list(pool.map(lambda v: _scores(scorer.score_file(v)), videos))
    for a, b in zip(sequential, concurrent, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.allclose(sequential[0], sequential[1])


def test_decoder_thread_error_reaches_caller(scorer):
    frames = [np.zeros((64, 96, 3), np.uint8)] * 10 + [np.zeros((72, 128, 3), np.uint8)] * 10
    with pytest.raises(VideoError, match="resolution changes"):
        scorer.score_frames(frames)


def test_nonfinite_model_output_is_rejected(tmp_path, small_video):
    onnx = build_tiny_onnx(tmp_path / "nan.onnx", SPEC, nan_score=True)
    bundle = make_runtime_bundle(tmp_path / "nan-bundle", {"model.onnx": onnx})
    stream = ScoreStream(Scorer(bundle), fps=25)
    windows = stream.push_many(np.zeros((7, 64, 96, 3), np.uint8))
    assert windows[0].score is None and windows[0].flags == ("nonfinite",)
    with pytest.raises(ModelOutputError, match="NaN/inf"):
        Scorer(bundle).score_file(small_video)


@pytest.mark.parametrize("cores,expected", [(1, (1, 1)), (2, (1, 1)), (4, (1, 3)),
                                            (8, (2, 6)), (16, (4, 12))])
def test_cores_are_split_between_decoder_and_engine(cores, expected):
    from internvqa.runtime.scorer import pipeline_threads

    assert pipeline_threads(cores) == expected


def test_decoder_threads_reach_ffmpeg(small_video):
    from internvqa.runtime.video import PyAVSource

    with PyAVSource(small_video, threads=1) as one, PyAVSource(small_video, threads=3) as three:
        assert one._stream.codec_context.thread_count == 1
        assert three._stream.codec_context.thread_count == 3
        assert len(list(one.frames())) == len(list(three.frames())) > 0


def test_cpu_scorer_defaults_to_one_window_batches_and_split_threads(runtime_bundle, small_video):
    from internvqa.runtime.scorer import DEFAULT_BATCH, available_cores, pipeline_threads

    s = Scorer(runtime_bundle, backend="cpu")
    assert s.batch_size == 1 < DEFAULT_BATCH
    assert s.decode_threads == pipeline_threads(available_cores())[0]
    assert Scorer(runtime_bundle, backend="cpu", batch_size=3, decode_threads=2).decode_threads == 2
    with pytest.raises(Exception, match="decode_threads"):
        Scorer(runtime_bundle, decode_threads=0)
    # same scores whatever the batch and thread split
    a = _scores(s.score_file(small_video))
    b = _scores(Scorer(runtime_bundle, backend="cpu", batch_size=4, threads=2,
                       decode_threads=2).score_file(small_video))
    assert np.allclose(a, b, atol=1e-5)


def test_ort_backend_graph_optimization_levels(runtime_bundle):
    """Export's latency check times graphs at a chosen ORT level through the same backend;
    every level computes the same outputs, and an unknown level is a usage error."""
    import onnxruntime as ort

    from internvqa.runtime.backend_ort import OrtBackend
    from internvqa.runtime.errors import UsageError

    x = np.random.default_rng(0).standard_normal((2, 3, 4, 32, 32)).astype(np.float32)
    ref = OrtBackend(runtime_bundle / "model.onnx").run(x)
    for level, want in (("disable", ort.GraphOptimizationLevel.ORT_DISABLE_ALL),
                        ("basic", ort.GraphOptimizationLevel.ORT_ENABLE_BASIC)):
        backend = OrtBackend(runtime_bundle / "model.onnx", graph_optimization=level)
        assert backend.session.get_session_options().graph_optimization_level == want
        for got, r in zip(backend.run(x), ref, strict=True):
            np.testing.assert_allclose(got, r, atol=1e-5)
    with pytest.raises(UsageError, match="graph_optimization"):
        OrtBackend(runtime_bundle / "model.onnx", graph_optimization="max")
