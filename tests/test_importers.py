"""Dataset importers on fabricated score files, and the `vqa-data` CLI's error handling."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from internvqa.distill.corpus.importers import import_bvi_hd, import_waterloo4k
from internvqa.distill.data_cli import cli
from internvqa.runtime.errors import ManifestError
from internvqa.runtime.manifest import read_manifest

BVI = """Original_Name Name DMOS encoder distortion_level
BallUnderWater BallUnderWater_QP27.mp4 71.2 HM 27
BallUnderWater BallUnderWater_QP37.mp4 35.0 HM 37
Flowers Flowers_QP27.mp4 80.5 HM_TS 27
Flowers Flowers_QP42.mp4 12.25 HM_TS 42
"""

WATERLOO = """encoder, video_number, resolution, distortion_level, MOS
HEVC, 1, 960x540, 1, 40.5
HEVC, 1, 3840x2160, 3, 85.0
AV1, 12, 1920x1080, 2, 66.1
"""


def _bvi(root: Path, text: str = BVI, videos: bool = True) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "BVIHD.txt").write_text(text)
    if videos:
        for line in text.splitlines()[1:]:
            f = line.split()
            (root / f[3]).mkdir(exist_ok=True)
            (root / f[3] / f[1]).write_bytes(b"")
    return root


def _waterloo(root: Path, text: str = WATERLOO, videos: bool = True) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "scores.txt").write_text(text)
    if videos:
        res = {"960x540": "540p", "1920x1080": "1080p", "3840x2160": "2160p"}
        for line in text.splitlines()[1:]:
            enc, num, r, lvl, _ = (x.strip() for x in line.split(","))
            d = root / enc / f"{int(num):02d}"
            d.mkdir(parents=True, exist_ok=True)
            (d / f"{res[r]}_{lvl}.mp4").write_bytes(b"")
    return root


def test_bvi_hd(tmp_path):
    root = _bvi(tmp_path / "bvi")
    rows = read_manifest(import_bvi_hd(root, tmp_path / "bvi.csv"))
    assert len(rows) == 4
    a = rows[0]
    assert a.abspath == (root / "HM" / "BallUnderWater_QP27.mp4").resolve()
    assert a.mos == 71.2 and a.source == "BallUnderWater" and a.codec == "HM" and a.crf == 27
    assert a.extra["dmos"] == "71.2"
    assert [r.split for r in rows] == ["test", "test", "train", "train"]
    assert rows[3].codec == "HM_TS" and rows[3].mos == 12.25


def test_waterloo4k(tmp_path):
    root = _waterloo(tmp_path / "w4k")
    rows = read_manifest(import_waterloo4k(root, tmp_path / "w.csv"))
    assert [r.resolution for r in rows] == ["540p", "2160p", "1080p"]
    assert rows[0].abspath == (root / "HEVC" / "01" / "540p_1.mp4").resolve()
    assert rows[2].abspath == (root / "AV1" / "12" / "1080p_2.mp4").resolve()
    assert [r.split for r in rows] == ["test", "test", "train"]
    assert [r.source for r in rows] == ["video01", "video01", "video12"]
    assert rows[1].mos == 85.0 and rows[1].crf == 3


def test_missing_videos_and_no_check(tmp_path):
    root = _bvi(tmp_path / "bvi", videos=False)
    with pytest.raises(ManifestError, match="4 of 4 videos not found"):
        import_bvi_hd(root, tmp_path / "m.csv")
    assert len(read_manifest(import_bvi_hd(root, tmp_path / "m.csv", check=False))) == 4


@pytest.mark.parametrize(
    "text,match",
    [
        (BVI + "Flowers Flowers_QP47.mp4 HM 47\n", r"BVIHD.txt:6: expected 5 fields"),
        (BVI.replace("35.0", "bad"), r"BVIHD.txt:3: DMOS is not a number"),
        ("header only\n", "no entries"),
    ],
)
def test_bvi_malformed(tmp_path, text, match):
    root = _bvi(tmp_path / "bvi", text, videos=False)
    with pytest.raises(ManifestError, match=match):
        import_bvi_hd(root, tmp_path / "m.csv", check=False)


def test_waterloo_malformed(tmp_path):
    root = _waterloo(tmp_path / "w", WATERLOO + "VP9, 3, 1280x720, 1, 50\n", videos=False)
    with pytest.raises(ManifestError, match=r"scores.txt:5: unknown resolution '1280x720'"):
        import_waterloo4k(root, tmp_path / "m.csv", check=False)
    with pytest.raises(ManifestError, match="score file not found"):
        import_waterloo4k(tmp_path, tmp_path / "m.csv")


def test_cli_import_and_info(tmp_path):
    root = _waterloo(tmp_path / "w4k")
    out = tmp_path / "w.csv"
    r = CliRunner().invoke(cli, ["import", "waterloo4k", str(root), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "3 videos from 2 sources" in r.output
    r = CliRunner().invoke(cli, ["info", str(out)])
    assert r.exit_code == 0 and "mos: 40.50 .. 85.00" in r.output


@pytest.mark.parametrize("args", [
    ["import", "bvi-hd", "{tmp}/missing", "--out", "{tmp}/m.csv"],
    ["import", "waterloo4k", "{tmp}", "--out", "{tmp}/m.csv"],
    ["info", "{tmp}/missing.csv"],
])
def test_cli_user_errors_are_one_line(tmp_path, args):
    args = [a.format(tmp=tmp_path) for a in args]
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 2
    assert r.output.startswith("error: ") and r.output.count("\n") == 1
    assert "Traceback" not in r.output


def test_cli_subprocess_exit_code(tmp_path):
    import subprocess
    import sys

    p = subprocess.run(
        [sys.executable, "-c", "from internvqa.distill.data_cli import main; main()",
         "import", "bvi-hd", str(tmp_path / "nope"), "--out", str(tmp_path / "m.csv")],
        capture_output=True, text=True,
    )
    assert p.returncode == 2
    assert p.stderr.strip().splitlines() == [f"error: dataset folder not found: {tmp_path / 'nope'}"]
