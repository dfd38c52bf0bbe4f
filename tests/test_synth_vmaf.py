"""Corpus builds with libvmaf labels and licensed media: a tiny `standard`-like preset.

The preset keeps the standard preset's machinery (media sources from a folder, libvmaf
labels, per-frame VMAF, split by scene, time limit) at 128x72 so a build takes seconds.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from internvqa.distill.corpus import synth
from internvqa.runtime.manifest import read_manifest

pytest.importorskip("imageio_ffmpeg", reason="imageio-ffmpeg (libvmaf) is not installed")

TINY = replace(
    synth.PRESETS["standard"], name="tiny-vmaf", width=128, height=72, frames=12, fps=12,
    sources=("plasma",), ladders={"libx264": (18, 40, 51)}, res_ladder=((2, "libx264", (30,)),),
    max_paths={"photo": 2}, hd=None,
)


@pytest.fixture(autouse=True)
def tiny_preset(monkeypatch):
    monkeypatch.setitem(synth.PRESETS, TINY.name, TINY)


def _photo_folder(root: Path) -> Path:
    """A user's folder: two lossless photos with real texture (PNG, 1x allowed)."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name in ("meadow", "harbour"):
        noise = rng.standard_normal((300, 1000, 3)).astype(np.float32)
        img = cv2.GaussianBlur(noise, (0, 0), 3.0) * 60 + 128
        cv2.imwrite(str(root / f"{name}.png"), np.clip(img, 0, 255).astype(np.uint8))
    return root


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("vmaf-corpus")
    photos = _photo_folder(root / "photos")
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(synth.PRESETS, TINY.name, TINY)
        res = synth.run_build(root / "corpus", preset=TINY.name, sources_dir=photos, workers=2)
    return res, root


def test_labels_are_libvmaf_and_fall_with_crf(built):
    res, _ = built
    rows = read_manifest(res.manifest)
    assert not res.partial and res.failures == []
    assert {r.source.split("~")[0] for r in rows} == {"plasma", "user_meadow", "user_harbour"}
    by_src: dict[str, dict[float, float]] = {}
    for r in rows:
        assert r.mos == pytest.approx(float(r.extra["vmaf"]))
        assert (res.manifest.parent / r.extra["reference"]).is_file()  # for vqa-bench --peer libvmaf
        frames = r.extra["mos_frames"].split()
        assert len(frames) == TINY.frames
        assert np.mean([float(v) for v in frames]) == pytest.approx(r.mos, abs=0.05)
        if r.resolution == f"{TINY.width}x{TINY.height}":
            by_src.setdefault(r.source, {})[r.crf] = r.mos
    for ladder in by_src.values():
        assert ladder[18] > ladder[40] > ladder[51]
    side = json.loads((res.manifest.parent / "manifest.json").read_text())
    assert side["labels"] == "vmaf" and side["libvmaf"]["vmaf_model"] == "vmaf_v0.6.1"
    assert {m["file"] for m in side["media"]} == {"meadow.png", "harbour.png"}


def test_every_path_of_a_photo_shares_its_split(built):
    res, _ = built
    rows = read_manifest(res.manifest)
    splits: dict[str, set[str]] = {}
    for r in rows:
        splits.setdefault(r.extra["scene"], set()).add(r.split)
    assert all(len(s) == 1 for s in splits.values())
    assert any("~p1" in r.source for r in rows)  # a 1000x300 photo holds two regions


def test_a_rerun_reuses_every_clip(built):
    res, root = built
    again = synth.run_build(root / "corpus", preset=TINY.name,
                            sources_dir=root / "photos", workers=1)
    assert again.encoded == 0 and again.reused == again.clips == res.clips


def test_time_limit_writes_a_partial_manifest_and_a_rerun_finishes(tmp_path):
    photos = _photo_folder(tmp_path / "photos")
    part = synth.run_build(tmp_path / "c", preset=TINY.name, sources_dir=photos, workers=1,
                           max_minutes=0.002)
    assert part.partial and 0 < part.clips < part.planned
    assert json.loads((tmp_path / "c" / "manifest.json").read_text())["partial"] is True
    assert len(read_manifest(part.manifest)) == part.clips
    full = synth.run_build(tmp_path / "c", preset=TINY.name, sources_dir=photos, workers=1)
    assert not full.partial and full.clips == part.planned and full.reused == part.clips


def test_missing_media_folder_builds_from_the_built_ins(tmp_path):
    notes: list[str] = []
    entries = synth.resolve_entries(TINY, tmp_path / "nowhere", notes.append)
    assert [e.name for e in entries] == ["plasma"]
    assert "no licensed media" in notes[0] and "vqa-data sources fetch" in notes[0]


def test_pseudo_labels_remain_an_option(tmp_path):
    res = synth.run_build(tmp_path / "c", preset=TINY.name, sources_dir=tmp_path / "none",
                          workers=1, labels="pseudo")
    rows = read_manifest(res.manifest)
    assert rows and all("vmaf" not in r.extra and "mos_frames" not in r.extra for r in rows)
    for r in rows:
        expect = synth.pseudo_mos(float(r.extra["psnr_y"]), 0.0, float(r.extra["ms_ssim"]))
        assert r.mos == pytest.approx(expect, abs=0.02)
    side = json.loads((res.manifest.parent / "manifest.json").read_text())
    assert side["labels"] == "pseudo" and side["mos_formula"] == synth.PSEUDO_MOS_FORMULA


def test_hd_tier_takes_only_sources_that_fill_the_larger_view(tmp_path):
    """A photo too small for the hd size is left out of that tier, not a build failure."""
    from internvqa.distill.corpus.media import user_catalog

    photos = _photo_folder(tmp_path / "photos")  # 1000x300: fills 128x72, not 640x360
    preset = replace(TINY, hd=(640, 360, 5))
    entries = synth.resolve_entries(preset, photos)
    jobs = synth.plan_jobs(preset, 0, entries)
    hd = {j.source for j in jobs if j.tier}
    assert hd == {"plasma"}  # the built-in renders at any size; the photos cannot
    assert {e.name for e in entries} > hd
    assert user_catalog(photos, on_event=lambda m: None)


def test_rungs_recreates_the_coded_ladder_files_bit_exactly(built):
    """`vqa-data rungs`: the coded file of each upscaled rung, equal in size to the build's
    encode (kbps), scored at display size by the bench layer (`coded_input`)."""
    from click.testing import CliRunner

    from internvqa.bench.bench import coded_input
    from internvqa.distill.data_cli import cli
    from internvqa.runtime.video import open_video

    res, _ = built
    manifest = Path(res.manifest)
    out = CliRunner().invoke(cli, ["rungs", str(manifest)])
    assert out.exit_code == 0, out.output
    assert "max relative difference 0.0000" in out.output
    rows = [r for r in read_manifest(manifest) if r.resolution != f"{r.width}x{r.height}"]
    assert rows
    for r in rows:
        path, display = coded_input(r)
        assert "/rungs/" in path and display == (r.width, r.height)
        with open_video(path) as src:
            assert f"{src.info.width}x{src.info.height}" == r.resolution
            assert src.info.codec == "h264"
        with open_video(path, display=display) as src:
            assert src.info.coded_size == tuple(int(v) for v in r.resolution.split("x"))


def test_libvmaf_peer_matches_the_labels_and_names_the_rung_upscaler(built, tmp_path):
    """The suite's libvmaf peer re-scores test videos: full-size encodes reproduce their
    labels exactly; resolution rungs (coded file, upscaled by ffmpeg) are reported apart."""
    from click.testing import CliRunner

    from internvqa.bench.suite_accuracy import Accuracy
    from internvqa.distill.data_cli import cli

    res, _ = built
    manifest = Path(res.manifest)
    assert CliRunner().invoke(cli, ["rungs", str(manifest)]).exit_code == 0
    rows = read_manifest(manifest)
    split = next(r.split for r in rows if r.resolution != f"{r.width}x{r.height}")
    acc = Accuracy(manifest, tmp_path, split=split, vmaf_videos=100, log=lambda _: None,
                   progress=False)
    acc.libvmaf()
    (peer,) = acc.engines
    assert peer["timed_videos"] == len(acc.test)
    assert peer["label_max_abs_diff"] < 1e-3
    assert peer["rung_label_max_abs_diff"] is not None
    assert "resolution rungs" in peer["note"] and "OpenCV" in peer["note"]
