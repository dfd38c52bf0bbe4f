"""The default model shipped inside the package, and the tool that ships a bundle."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from videos import moving_frames, write_video

from internvqa.export.ship import CARD_NAME, ship
from internvqa.runtime.bundle import default_bundle, load_bundle, sha256_file
from internvqa.runtime.errors import BundleError
from internvqa.runtime.scorer import Scorer

CARD = {"title": "test model", "summary": "a tiny test model", "training": {"corpus": "none"},
        "heldout_accuracy": {"srcc": 0.5}, "licences": ["test"]}


def test_ship_rewrites_a_bundle_with_its_card(runtime_bundle, tmp_path):
    out = ship(runtime_bundle, CARD, tmp_path / "shipped")
    b = load_bundle(out)
    assert b.meta["model_card"] == CARD
    assert (out / CARD_NAME).read_text().startswith("# test model")
    src = json.loads((runtime_bundle / "bundle.json").read_text())
    assert b.meta["files"]["model.onnx"]["sha256"] == src["files"]["model.onnx"]["sha256"]
    # the card is covered by the bundle's meta hash: editing it is caught
    meta = json.loads((out / "bundle.json").read_text())
    meta["model_card"]["heldout_accuracy"]["srcc"] = 0.99
    (out / "bundle.json").write_text(json.dumps(meta))
    with pytest.raises(BundleError):
        load_bundle(out)


SHIPPED = default_bundle()
needs_shipped = pytest.mark.skipif(SHIPPED is None, reason="no default model in runtime/default_bundle")


@needs_shipped
def test_shipped_bundle_verifies_and_has_a_model_card() -> None:
    b = load_bundle(SHIPPED)
    card = b.meta["model_card"]
    for key in ("summary", "training", "heldout_accuracy", "speed", "licences", "commands"):
        assert card.get(key), key
    for name, entry in b.meta["files"].items():
        assert sha256_file(SHIPPED / name) == entry["sha256"]
        assert name.endswith(".onnx")
    total = sum((SHIPPED / n).stat().st_size for n in b.meta["files"])
    assert total < 120e6
    assert b.score_scale["name"].startswith("VMAF")
    assert (SHIPPED / CARD_NAME).is_file()


@needs_shipped
def test_shipped_model_scores_a_video_and_prefers_the_better_encode(tmp_path) -> None:
    frames = moving_frames(24, 320, 240, seed=3)
    good = write_video(tmp_path / "good.mp4", frames, options={"crf": "18"})
    bad = write_video(tmp_path / "bad.mp4", frames, options={"crf": "51"})
    scorer = Scorer(SHIPPED)
    s_good, s_bad = scorer.score_file(good).score, scorer.score_file(bad).score
    assert 0.0 <= s_bad < s_good <= 100.0


@needs_shipped
def test_vqa_score_without_bundle_uses_the_shipped_model(tmp_path) -> None:
    """A plain `vqa-score video.mp4` (no --bundle, no environment) scores with it."""
    video = write_video(tmp_path / "v.mp4", moving_frames(24, 256, 256, seed=1))
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "internvqa.runtime.score_cli", str(video),
                           "--no-progress"], capture_output=True, text=True, env=env, cwd=tmp_path,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines[0].startswith("path,status,score_mean")
    assert lines[1].split(",")[1] == "ok" and 0 <= float(lines[1].split(",")[2]) <= 100
    explain = subprocess.run([sys.executable, "-m", "internvqa.runtime.score_cli", "--explain"],
                             capture_output=True, text=True, env=env, cwd=tmp_path, check=False)
    assert explain.returncode == 0 and "VMAF" in explain.stdout and Path(SHIPPED).name in explain.stdout


@needs_shipped
def test_shipped_model_reads_the_bitstream_and_says_so(tmp_path) -> None:
    """The shipped default is the hybrid: a file's bits reach its graph (same pixels, more
    bits -> a different score), raw frames are scored pixel-only and flagged."""
    b = load_bundle(SHIPPED)
    side = [i for i in b.meta["inputs"] if i["name"] == "side"]
    assert side and side[0]["features"][0] == "has_bits"
    assert "bitstream" in b.meta["model_card"]["inputs"]
    frames = moving_frames(24, 320, 240, seed=5)
    video = write_video(tmp_path / "v.mp4", frames, options={"crf": "30"})
    scorer = Scorer(SHIPPED)
    hybrid = scorer.score_file(video)
    assert hybrid.model["inputs"] == ["pixels", "bitstream"]
    pixels = Scorer(SHIPPED, bitstream=False).score_file(video)
    assert pixels.model["inputs"] == ["pixels"] and pixels.score != hybrid.score
    raw = scorer.score_frames(frames, fps=25)
    assert all("pixels_only" in w.flags for w in raw.windows)


def test_half_checkpoint_loads_back_as_fp32(tmp_path) -> None:
    torch = pytest.importorskip("torch")
    from internvqa.distill.checkpoint import load_checkpoint, save_checkpoint, save_half_checkpoint
    from internvqa.distill.models.timm_student import create_timm_student

    model = create_timm_student("mobilenetv3_small_050", img_size=32, num_frames=2).eval()
    full = save_checkpoint(tmp_path / "full", model, {"num_frames": 2}, {"multiplier": 100.0})
    config = json.loads((full / "config.json").read_text())
    half = save_half_checkpoint(tmp_path / "half", model, config)
    assert (half / "model.safetensors").stat().st_size < 0.6 * (full / "model.safetensors").stat().st_size
    loaded, cfg = load_checkpoint(half)
    assert cfg["storage_dtype"] == "float16" and next(loaded.parameters()).dtype == torch.float32
    x = torch.randn(2, 3, 2, 32, 32)
    with torch.no_grad():
        assert torch.allclose(model(x)[0], loaded(x)[0], atol=1e-2)


SHIPPED_TEACHER = None
try:  # the training side may be absent from a runtime-only install
    from internvqa.distill.checkpoint import default_teacher

    SHIPPED_TEACHER = default_teacher()
except ImportError:  # pragma: no cover
    pass


@pytest.mark.skipif(SHIPPED_TEACHER is None or SHIPPED is None, reason="no shipped teacher")
def test_shipped_teacher_is_the_shipped_model(tmp_path) -> None:
    """The checkpoint users distil from scores like the shipped graph (FP16 storage)."""
    pytest.importorskip("torch")
    from internvqa.distill.torch_backend import load_torch_backend

    video = write_video(tmp_path / "v.mp4", moving_frames(24, 320, 240, seed=2),
                        options={"crf": "30"})
    backend, bundle = load_torch_backend(SHIPPED_TEACHER, device="cpu", threads=2)
    torch_score = Scorer(bundle, backend=backend).score_file(video).score
    onnx_score = Scorer(SHIPPED).score_file(video).score
    assert abs(torch_score - onnx_score) < 0.5
