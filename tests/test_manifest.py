"""Manifest CSV: parsing, round trip, relative paths, errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from internvqa.runtime.errors import ManifestError
from internvqa.runtime.manifest import (
    ManifestRow,
    check_videos_exist,
    read_manifest,
    split_rows,
    write_manifest,
)


def _write(p: Path, text: str) -> Path:
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text, encoding="utf-8")
    return p


def test_read_known_and_extra_columns(tmp_path):
    m = _write(
        tmp_path / "corpus" / "manifest.csv",
        "path,mos,source,codec,crf,width,height,split,psnr_y\n"
        "clips/a.mkv,71.5,astronaut,libx264,23,224,128,train,38.2\n"
        "/abs/b.mkv,,camera,,,,,test,\n",
    )
    rows = read_manifest(m)
    a, b = rows
    assert a.path == "clips/a.mkv" and a.mos == 71.5 and a.crf == 23.0 and a.width == 224
    assert a.extra == {"psnr_y": "38.2"} and a.split == "train"
    assert a.abspath == (tmp_path / "corpus" / "clips" / "a.mkv").resolve()
    assert b.mos is None and b.crf is None and b.width is None and b.codec == ""
    assert b.abspath == Path("/abs/b.mkv")


def test_round_trip_and_relative_paths(tmp_path):
    corpus = tmp_path / "corpus"
    rows = [
        ManifestRow(path="clips/a.mkv", mos=50.25, source="s1", codec="libx265", crf=30.0,
                    width=224, height=128, split="val", extra={"ssim": "0.9"}, resolution="128p"),
        ManifestRow(path=str(corpus / "deep" / "b.mkv"), mos=None, source="s2"),
        ManifestRow(path=str(tmp_path / "elsewhere.mp4"), mos=1.0, source="s3"),
    ]
    out = write_manifest(rows, corpus / "m.csv")
    back = read_manifest(out)
    assert [r.path for r in back] == ["clips/a.mkv", "deep/b.mkv", str(tmp_path / "elsewhere.mp4")]
    assert back[0] == rows[0]
    assert back[1].mos is None and back[2].mos == 1.0
    # Rewriting a manifest read from another folder keeps pointing at the same files.
    moved = write_manifest(back, tmp_path / "other" / "m.csv")
    again = read_manifest(moved)
    assert [r.abspath for r in again] == [r.abspath for r in back]
    header = (corpus / "m.csv").read_text().splitlines()[0]
    assert header.startswith("path,mos,source") and header.endswith("ssim")


def test_a_moved_manifest_keeps_its_reference_files(tmp_path):
    """The `reference` column is a path relative to the manifest like `path`; rewriting the
    manifest in another folder must keep it pointing at the same lossless reference."""
    corpus = tmp_path / "corpus"
    row = ManifestRow(path="clips/a.mp4", mos=50.0, source="s1",
                      extra={"reference": "refs/s1.mkv", "scene": "s1"})
    back = read_manifest(write_manifest([row], corpus / "m.csv"))
    assert back[0].extra["reference"] == "refs/s1.mkv"  # below its folder: stays relative
    moved = read_manifest(write_manifest(back, tmp_path / "runs" / "m.csv"))
    assert moved[0].extra["reference"] == str(corpus / "refs" / "s1.mkv")
    assert moved[0].extra["scene"] == "s1"  # other extra columns are copied as they are


def test_split_rows_and_check_videos_exist(tmp_path):
    (tmp_path / "a.mkv").write_bytes(b"x")
    rows = [ManifestRow("a.mkv", 1.0, "s", split="train", root=tmp_path),
            ManifestRow("b.mkv", 2.0, "t", split="test", root=tmp_path)]
    assert [r.path for r in split_rows(rows, "test")] == ["b.mkv"]
    assert len(split_rows(rows, ["train", "test"])) == 2
    check_videos_exist(rows[:1])
    with pytest.raises(ManifestError, match=r"1 of 2 videos not found: .*b\.mkv"):
        check_videos_exist(rows)


@pytest.mark.parametrize(
    "text,match",
    [
        ("path,source\na.mkv,s\n", "missing required column.*mos"),
        ("path,mos,source\na.mkv,good,s\n", r":2: 'mos' is not a number"),
        ("path,mos,source\na.mkv,1,s\nb.mkv,nan,s\n", r":3: 'mos' is not finite"),
        ("path,mos,source,width\na.mkv,1,s,12.5\n", "positive integer"),
        ("path,mos,source\n,1,s\n", "empty 'path'"),
        ("", "empty manifest"),
    ],
)
def test_errors_are_one_line(tmp_path, text, match):
    m = _write(tmp_path / "m.csv", text)
    with pytest.raises(ManifestError, match=match) as ei:
        read_manifest(m)
    assert "\n" not in str(ei.value)


def test_missing_file(tmp_path):
    with pytest.raises(ManifestError, match="manifest not found"):
        read_manifest(tmp_path / "nope.csv")
