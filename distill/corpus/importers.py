"""Importers: a public VQA dataset's score file -> an InternVQA manifest.

Scale. Every manifest stores ``mos`` on 0-100, higher = as the dataset defines it:

- BVI-HD: ``mos`` is the file's DMOS value unchanged (it is already on 0-100; the
  authors' code trains on DMOS/100, i.e. the same number divided by 100). The raw value
  is also kept in the ``dmos`` column. No sign flip is applied: a model trained on it
  learns the dataset's own direction, and SRCC against it is reported as is.
- Waterloo 4K: ``mos`` is the file's MOS (0-100; the authors' label is MOS/100).
  ``resolution`` is the encoding resolution as a label (540p/1080p/2160p); ``width`` and
  ``height`` are left empty because the stored files' size is not in the score file.

Splits are by source content, as REFERENCE section 3 gives them: BVI-HD test = the six
listed sources, Waterloo 4K test = video numbers 1-4; everything else is train.

Score files are whitespace- or comma-separated with one header line. A malformed line
raises ManifestError naming the file and line number. Videos are checked to exist unless
``check=False`` (for building a manifest before the videos are copied in).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from internvqa.runtime.errors import ManifestError
from internvqa.runtime.manifest import (
    ManifestRow,
    check_videos_exist,
    parse_number,
    write_manifest,
)

__all__ = ["BVI_HD_TEST_SOURCES", "WATERLOO4K_TEST_VIDEOS", "import_bvi_hd", "import_waterloo4k"]

BVI_HD_TEST_SOURCES = frozenset(
    {"BallUnderWater", "Bookcase", "BricksLeaves", "Music", "PlasmaSlowRandom", "TreeGrassFamily"}
)
WATERLOO4K_TEST_VIDEOS = frozenset({1, 2, 3, 4})
_WATERLOO_RES = {"960x540": "540p", "1920x1080": "1080p", "3840x2160": "2160p"}


def _root(root: str | os.PathLike) -> Path:
    root = Path(root)
    if not root.is_dir():
        raise ManifestError(f"dataset folder not found: {root}")
    return root


def _records(path: Path, n_fields: int) -> Iterator[tuple[int, list[str]]]:
    """(line number, fields) of every non-empty line after the header."""
    if not path.is_file():
        raise ManifestError(f"score file not found: {path}")
    lines = path.read_text(encoding="utf-8-sig", errors="replace").splitlines()
    if not lines:
        raise ManifestError(f"{path}: empty score file")
    for lineno, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        fields = [f.strip() for f in line.split(",")] if "," in line else line.split()
        if len(fields) != n_fields:
            raise ManifestError(f"{path}:{lineno}: expected {n_fields} fields, got {len(fields)}: {line.strip()!r}")
        yield lineno, fields


def _level(text: str) -> float | None:
    """A distortion level as a number when it is one (QP/CRF), else None."""
    try:
        return float(text)
    except ValueError:
        return None


def _finish(rows: list[ManifestRow], out_manifest: str | os.PathLike, check: bool, what: str) -> Path:
    if not rows:
        raise ManifestError(f"{what}: no entries in the score file")
    if check:
        check_videos_exist(rows)
    return write_manifest(rows, out_manifest)


def import_bvi_hd(root: str | os.PathLike, out_manifest: str | os.PathLike, check: bool = True) -> Path:
    """BVI-HD ``BVIHD.txt`` (Original_Name, Name, DMOS, encoder, distortion_level)."""
    root = _root(root)
    score_file = root / "BVIHD.txt"
    rows = []
    for lineno, (original, name, dmos, encoder, level) in _records(score_file, 5):
        where = f"{score_file}:{lineno}"
        value = parse_number(dmos, "DMOS", where)
        rows.append(ManifestRow(
            path=str(root / encoder / name), mos=value, source=original, codec=encoder,
            crf=_level(level), split="test" if original in BVI_HD_TEST_SOURCES else "train",
            extra={"dmos": dmos, "distortion_level": level},
        ))
    return _finish(rows, out_manifest, check, "BVI-HD")


def import_waterloo4k(root: str | os.PathLike, out_manifest: str | os.PathLike, check: bool = True) -> Path:
    """Waterloo 4K ``scores.txt`` (encoder, video_number, resolution, distortion_level, MOS)."""
    root = _root(root)
    score_file = root / "scores.txt"
    rows = []
    for lineno, (encoder, number, resolution, level, mos) in _records(score_file, 5):
        where = f"{score_file}:{lineno}"
        num = parse_number(number, "video_number", where)
        if not num.is_integer() or num < 0:
            raise ManifestError(f"{where}: video_number must be a whole number: {number!r}")
        if resolution not in _WATERLOO_RES:
            raise ManifestError(f"{where}: unknown resolution {resolution!r} (expected one of {', '.join(_WATERLOO_RES)})")
        res = _WATERLOO_RES[resolution]
        n = int(num)
        rows.append(ManifestRow(
            path=str(root / encoder / f"{n:02d}" / f"{res}_{level}.mp4"), mos=parse_number(mos, "MOS", where),
            source=f"video{n:02d}", codec=encoder, crf=_level(level), resolution=res, split="test" if n in WATERLOO4K_TEST_VIDEOS else "train",
            extra={"distortion_level": level},
        ))
    return _finish(rows, out_manifest, check, "Waterloo 4K")
