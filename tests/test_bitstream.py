"""Bitstream side information: packet sizes while demuxing, per-window bits, the side vector,
and a hybrid model's second graph input through export, the backend and the scorer."""

from __future__ import annotations

import av
import numpy as np
import pytest
from videos import moving_frames, write_raw_yuv420, write_video

from internvqa.runtime.bitstream import SIDE_DIM, codec_family, describe, side_vector
from internvqa.runtime.clipspec import ClipSpec
from internvqa.runtime.errors import UsageError
from internvqa.runtime.video import ArraySource, iter_windows, open_video

SPEC = ClipSpec(num_frames=2, frame_stride=2, window_stride=4, size=32, resize_short=None)


def _packet_bits(path) -> int:
    with av.open(str(path)) as c:
        return 8 * sum(p.size or 0 for p in c.demux(c.streams.video[0]))


@pytest.mark.parametrize("codec,suffix,opts", [
    ("libx264", ".mp4", {"crf": "28", "bf": "3"}),  # B-frames: decode order != display order
    ("libvpx-vp9", ".webm", {"crf": "40", "b": "0"}),
])
def test_every_frame_carries_its_packet_size(tmp_path, codec, suffix, opts) -> None:
    path = write_video(tmp_path / f"v{suffix}", moving_frames(16, 64, 48), codec=codec,
                       options=opts)
    with open_video(path) as src:
        bits = [f.bits for f in src.frames()]
    assert None not in bits and len(bits) == 16
    assert sum(bits) == _packet_bits(path)
    assert bits[0] == max(bits)  # the key frame costs most


def test_window_bits_sum_its_span_and_raw_input_has_none(tmp_path) -> None:
    frames = moving_frames(12, 64, 48)
    path = write_video(tmp_path / "v.mp4", frames, options={"crf": "30"})
    with open_video(path) as src:
        per_frame = [f.bits for f in src.frames()]
    with open_video(path) as src:
        windows = list(iter_windows(src, SPEC, crop_only=True))
    assert len(windows) == 3
    for w in windows:
        lo, hi = min(w.frame_indices), max(w.frame_indices)
        assert w.span_frames == hi - lo + 1
        assert w.bits == sum(per_frame[lo : hi + 1])
    raw = write_raw_yuv420(tmp_path / "v.yuv", frames)
    with open_video(raw, size=(64, 48)) as src:
        assert all(w.bits is None for w in iter_windows(src, SPEC))
    assert all(w.bits is None for w in iter_windows(ArraySource(frames), SPEC))


def test_side_vector() -> None:
    zero = side_vector(None, 10, 640, 360, "h264")
    assert zero.shape == (SIDE_DIM,) and not zero.any()
    assert not side_vector(0.0, 10, 640, 360, "h264").any()
    lo = side_vector(1e4, 10, 640, 360, "h264")
    hi = side_vector(1e6, 10, 640, 360, "h264")
    assert lo[0] == hi[0] == 1.0 and hi[1] > lo[1]
    assert hi[2] == 1.0 and hi[3:6].sum() == 0.0  # one-hot h264
    assert side_vector(1e5, 10, 640, 360, "libdav1d")[5] == 1.0
    assert not side_vector(1e5, 10, 640, 360, "ffv1").any()  # lossless: pixel-only
    assert not side_vector(1e5, 10, 640, 360, "mpeg4").any()  # never trained on
    assert side_vector(1e5, 10, 1280, 720, "h264")[6] == 0.0  # watched at its own size
    assert side_vector(1e5, 10, 320, 180, "h264", display=(640, 360))[6] == pytest.approx(-1.0)
    assert codec_family("libx265") == "hevc" and codec_family("vp9") == "vp9"
    assert describe(np.stack([hi, hi])) == "pixels+bitstream"
    assert describe(np.stack([hi, zero])) == "mixed" and describe(zero[None]) == "pixels"


# --------------------------------------------------------------------- hybrid graph
@pytest.fixture(scope="module")
def hybrid_bundle(tmp_path_factory):
    """A tiny hybrid timm student (random weights, non-zero fusion) exported to a bundle."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx")
    from conftest import make_runtime_bundle

    from internvqa.distill.models.timm_student import create_timm_student
    from internvqa.export.onnx_export import export_onnx

    torch.manual_seed(0)
    model = create_timm_student("mobilenetv3_small_050", img_size=32, num_frames=2,
                                side_dim=SIDE_DIM, side_hidden=8).eval()
    with torch.no_grad():
        for p in model.fuse.parameters():
            p.normal_(0, 0.5)
    folder = tmp_path_factory.mktemp("hybrid")
    onnx_path = export_onnx(model, (3, 2, 32, 32), folder / "model.onnx", max_batch=8)
    # An unbounded scale: random weights give outputs anywhere, a 0-100 scale would clip them.
    scale = {"name": "raw", "multiplier": 1.0, "offset": 0.0, "higher_is_better": True}
    bundle = make_runtime_bundle(folder / "bundle", files={"model.onnx": onnx_path},
                                 clip_spec=SPEC.to_dict(), score_scale=scale)
    return model, bundle


def test_hybrid_graph_reads_side_and_matches_torch(hybrid_bundle) -> None:
    import onnx
    import torch

    from internvqa.runtime.backend_ort import OrtBackend

    model, bundle = hybrid_bundle
    names = [i.name for i in onnx.load(str(bundle / "model.onnx")).graph.input]
    assert names == ["video", "side"]
    backend = OrtBackend(bundle / "model.onnx")
    assert backend.side_dim == SIDE_DIM
    x = np.random.default_rng(0).standard_normal((3, 3, 2, 32, 32)).astype(np.float32)
    side = np.stack([side_vector(b, 4, 640, 360, "h264") for b in (2e4, 2e5, 2e6)])
    got, _ = backend.run(x, side)
    with torch.no_grad():
        ref, _ = model(torch.from_numpy(x), torch.from_numpy(side))
    assert np.abs(got - ref.numpy()).max() < 1e-4
    pixels, _ = backend.run(x)  # no side: pixel-only mode (zeros)
    zeros, _ = backend.run(x, np.zeros_like(side))
    assert np.array_equal(pixels, zeros) and not np.allclose(pixels, got)
    with pytest.raises(ValueError, match="side input"):
        backend.run(x, side[:2])


def test_scorer_feeds_bits_from_the_file_and_from_a_stream(hybrid_bundle, tmp_path) -> None:
    from internvqa.runtime.scorer import Scorer, ScoreStream

    _, bundle = hybrid_bundle
    frames = moving_frames(12, 64, 48)
    scorer = Scorer(bundle, verify=False)
    assert scorer.uses_bitstream
    results = {}
    for crf in (18, 45):
        path = write_video(tmp_path / f"c{crf}.mp4", frames, options={"crf": str(crf)})
        results[crf] = scorer.score_file(path)
        assert results[crf].model["inputs"] == ["pixels", "bitstream"]
        assert not any("pixels_only" in w.flags for w in results[crf].windows)
    raw = scorer.score_frames(frames)
    assert all("pixels_only" in w.flags for w in raw.windows)
    # Same pixels, different bits -> different scores: the side input reaches the graph.
    stream = ScoreStream(scorer, fps=25, codec="h264")
    with open_video(tmp_path / "c18.mp4") as src:
        for f in src.frames():
            stream.push(f.to_rgb(SPEC), bits=f.bits)
    streamed = stream.flush()
    assert [w.score for w in streamed.windows] == pytest.approx(
        [w.score for w in results[18].windows], abs=1e-3)
    assert [w.score for w in raw.windows] != pytest.approx([w.score for w in streamed.windows])
    bad = ScoreStream(scorer, fps=25)
    with pytest.raises(UsageError, match="bits must be a positive number"):
        bad.push(frames[0], bits=-5)


def test_display_upscales_frames_and_keeps_coded_bits(tmp_path) -> None:
    import cv2

    frames = moving_frames(8, 64, 48)
    path = write_video(tmp_path / "low.mp4", frames, options={"crf": "30"})
    with open_video(path) as src:
        coded = [(f.bits, f.upscaled(128, 96)) for f in src.frames()]
    with open_video(path, display=(128, 96)) as src:
        assert (src.info.width, src.info.height, src.info.coded_size) == (128, 96, (64, 48))
        got = list(src.frames())
    assert [f.size for f in got] == [(128, 96)] * 8
    assert [f.bits for f in got] == [b for b, _ in coded]
    # Planes are upscaled bicubically, plane by plane, as the corpus stores ladder rungs.
    with open_video(path) as src:
        first = next(iter(src.frames()))
    y = np.asarray(first._av.to_ndarray(format="yuv420p"))[:48]
    assert np.array_equal(got[0]._planes[0], cv2.resize(y, (128, 96), interpolation=cv2.INTER_CUBIC))
    windows = list(iter_windows(open_video(path, display=(128, 96)), SPEC))
    side = side_vector(windows[0].bits, windows[0].span_frames, 64, 48, "h264", (128, 96))
    assert side[6] == pytest.approx(-1.0)


# --------------------------------------------------------------------- hybrid training
@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory):
    """A pixel teacher, the frozen-feature hybrid head on it, and a jointly trained hybrid."""
    pytest.importorskip("torch")
    from click.testing import CliRunner
    from distill_corpus import TINY_SPEC, build_tiny_corpus

    from internvqa.distill.cli import main

    root = tmp_path_factory.mktemp("hybrid-train")
    manifest = build_tiny_corpus(root / "corpus")
    env = {"INTERNVQA_WORK": str(root / "work")}
    common = ["--manifest", str(manifest), "--model", "timm:mobilenetv3_small_050",
              "--clip-spec", TINY_SPEC.to_json(), "--epochs", "1", "--batch-size", "4",
              "--threads", "1", "--no-progress"]
    runner = CliRunner()
    runs = {}
    for name, extra in (("pixel", []), ("joint", ["--side"])):
        res = runner.invoke(main, ["teacher", *common, "--out", str(root / name), *extra], env=env)
        assert res.exit_code == 0, res.output
        runs[name] = root / name
    res = runner.invoke(main, ["hybrid", "--from", str(root / "pixel" / "best"), "--manifest",
                               str(manifest), "--out", str(root / "head"), "--epochs", "3",
                               "--threads", "1"], env=env)
    assert res.exit_code == 0, res.output
    runs["head"], runs["output"] = root / "head", res.output
    return runs


def test_hybrid_runs_write_hybrid_checkpoints_with_both_modes(tiny_runs) -> None:
    import json

    from internvqa.distill.checkpoint import load_checkpoint

    for name in ("joint", "head"):
        model, cfg = load_checkpoint(tiny_runs[name] / "best")
        assert cfg["model"]["config"]["side_dim"] == SIDE_DIM and model.fuse is not None
    pixel, _ = load_checkpoint(tiny_runs["pixel"] / "best")
    assert pixel.fuse is None
    report = json.loads((tiny_runs["head"] / "report.json").read_text())
    assert set(report["metrics"]["test"]) == {"hybrid", "pixels"}
    assert report["provenance"]["pixel_checkpoint"].endswith("best")
    assert "val SRCC hybrid" in tiny_runs["output"]


def test_training_windows_carry_the_runtime_side_input(tmp_path) -> None:
    pytest.importorskip("torch")
    from distill_corpus import TINY_SPEC, build_tiny_corpus

    from internvqa.distill.data import EvalWindows, TrainWindows, build_window_cache
    from internvqa.runtime.manifest import read_manifest

    manifest = build_tiny_corpus(tmp_path / "c")
    rows = read_manifest(manifest)
    cache = build_window_cache(rows, TINY_SPEC, root=tmp_path / "w")
    item = TrainWindows(cache, rows, [0, 1])[0]
    side = item["side"].numpy()
    w = cache.windows[item["window"]]
    want = side_vector(w.bits, w.span, 64, 40, "h264")
    assert np.array_equal(side, want) and side[0] == 1.0
    with open_video(rows[0].abspath) as src:  # the runtime's own numbers for that window
        runtime = list(iter_windows(src, TINY_SPEC))
    assert any(rw.bits == w.bits and rw.span_frames == w.span for rw in runtime)
    assert EvalWindows(cache, rows, [2])[0]["side"].shape == (SIDE_DIM,)
