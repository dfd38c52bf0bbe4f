"""The corpus manifest: one CSV row per video, the hand-off between data, training and bench.

Columns: ``path, mos, source`` are required (``mos`` may be empty for a label-free corpus);
``codec, crf, width, height, resolution, split`` are optional and known; any other column
(e.g. ``psnr_y, ssim``) is kept verbatim in ``ManifestRow.extra`` and written back.

Paths: a relative ``path`` is relative to the manifest's folder (never to the working
directory), so a corpus folder can be moved or mounted elsewhere. `write_manifest` writes
paths relative to the manifest's folder when the video lies under it, absolute otherwise.
A row built in code with a relative path and no ``root`` is taken as already relative to
the manifest it is written into.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from internvqa.runtime.atomic import atomic_write_text
from internvqa.runtime.errors import InternVQAError, ManifestError

__all__ = [
    "KNOWN_COLUMNS",
    "REQUIRED_COLUMNS",
    "ManifestRow",
    "check_videos_exist",
    "read_csv_records",
    "read_manifest",
    "split_rows",
    "write_manifest",
]

REQUIRED_COLUMNS = ("path", "mos", "source")
KNOWN_COLUMNS = ("path", "mos", "source", "codec", "crf", "width", "height", "resolution", "split")


@dataclass
class ManifestRow:
    """One video. `path` is kept as written; `abspath` resolves it against `root`."""

    path: str
    mos: float | None
    source: str
    codec: str = ""
    crf: float | None = None
    width: int | None = None
    height: int | None = None
    split: str = ""
    extra: dict[str, str] = field(default_factory=dict)
    resolution: str = ""
    root: Path | None = field(default=None, compare=False, repr=False)

    @property
    def abspath(self) -> Path:
        p = Path(self.path)
        if p.is_absolute():
            return p
        return ((self.root or Path.cwd()) / p).resolve()

    @property
    def natural(self) -> bool:
        """Camera content (the corpus's `content` column): the subset every held-out table
        reports apart, since unseen camera video is what users score."""
        return self.extra.get("content") == "natural"


def _fmt_num(v: float | int | None) -> str:
    if v is None:
        return ""
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e15:
        return str(int(v))
    return repr(float(v)) if isinstance(v, float) else str(v)


def parse_number(text: str, what: str, where: str, allow_empty: bool = False) -> float | None:
    """A finite float from a manifest or score-file field, else a one-line ManifestError
    naming the place (`where`) and the field (`what`)."""
    text = text.strip()
    if text == "":
        if allow_empty:
            return None
        raise ManifestError(f"{where}: empty {what}")
    try:
        v = float(text)
    except ValueError:
        raise ManifestError(f"{where}: {what} is not a number: {text!r}") from None
    if not math.isfinite(v):
        raise ManifestError(f"{where}: {what} is not finite: {text!r}")
    return v


def _parse_float(text: str, column: str, where: str, allow_empty: bool = True) -> float | None:
    return parse_number(text, repr(column), where, allow_empty)


def _parse_int(text: str, column: str, where: str) -> int | None:
    v = _parse_float(text, column, where)
    if v is None:
        return None
    if not v.is_integer() or v <= 0:
        raise ManifestError(f"{where}: {column!r} must be a positive integer, got {text!r}")
    return int(v)


def read_csv_records(path: str | os.PathLike, what: str, required: Sequence[str], *,
                     error: type[InternVQAError] = ManifestError, expected: str | None = None
                     ) -> Iterator[tuple[str, dict]]:
    """(`file:line`, record) for each data line of a CSV file: UTF-8 (a BOM is allowed),
    header names stripped, the `required` columns checked. The one CSV reader of the
    manifest and of the other small input tables (`vqa-data label --pairs`); every
    problem is an `error` naming the file (`what`: "manifest", "pairs file").
    `expected` describes the header in the missing-column message ("a,b[,c]").
    A record's values are as csv gives them (None for a short line, a None key for a
    long one)."""
    path = Path(path)
    if not path.is_file():
        raise error(f"{what} not found: {path}")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"cannot read {what} {path}: {exc}") from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = [h.strip() for h in (reader.fieldnames or [])]
    if not header:
        raise error(f"{path}: empty {what} (no header line)")
    reader.fieldnames = header
    missing = [c for c in required if c not in header]
    if missing and expected is None:
        raise error(f"{path}: missing required column(s) {', '.join(missing)} "
                    f"(header: {', '.join(header)})")
    if missing:
        raise error(f"{path}: missing column(s) {', '.join(missing)} "
                    f"(header must be {expected}; got {','.join(header)})")
    for lineno, rec in enumerate(reader, start=2):
        yield f"{path}:{lineno}", rec


def read_manifest(path: str | os.PathLike) -> list[ManifestRow]:
    """Parse a manifest CSV; every problem is a one-line ManifestError naming file and line."""
    root = Path(path).resolve().parent
    rows: list[ManifestRow] = []
    for where, rec in read_csv_records(path, "manifest", REQUIRED_COLUMNS):
        if None in rec:
            raise ManifestError(f"{where}: more fields than header columns")
        rec = {k: (v or "") for k, v in rec.items()}
        if not rec["path"].strip():
            raise ManifestError(f"{where}: empty 'path'")
        rows.append(
            ManifestRow(
                path=rec["path"].strip(),
                mos=_parse_float(rec["mos"], "mos", where),
                source=rec["source"].strip(),
                codec=rec.get("codec", "").strip(),
                crf=_parse_float(rec.get("crf", ""), "crf", where),
                width=_parse_int(rec.get("width", ""), "width", where),
                height=_parse_int(rec.get("height", ""), "height", where),
                split=rec.get("split", "").strip(),
                resolution=rec.get("resolution", "").strip(),
                extra={k: v for k, v in rec.items() if k not in KNOWN_COLUMNS},
                root=root,
            )
        )
    return rows


# Extra columns that hold a file path relative to the manifest's folder, like `path`.
PATH_COLUMNS = ("reference",)


def _path_for(row: ManifestRow, folder: Path, text: str | None = None) -> str:
    """`row.path` (or another path of the row, `text`) as written from `folder`: relative
    where it lies below it, else absolute, so a manifest written elsewhere still points at
    the same files."""
    text = row.path if text is None else text
    p = Path(text)
    if not text or (not p.is_absolute() and row.root is None):
        return text
    full = p if p.is_absolute() else (row.root / p).resolve()
    try:
        return full.relative_to(folder).as_posix()
    except ValueError:
        return str(full)


def write_manifest(rows: Iterable[ManifestRow], path: str | os.PathLike) -> Path:
    """Write rows atomically; known columns first, then extra columns in first-seen order."""
    path = Path(path)
    folder = path.resolve().parent
    rows = list(rows)
    extra_cols: list[str] = []
    for r in rows:
        for k in r.extra:
            if k not in extra_cols and k not in KNOWN_COLUMNS:
                extra_cols.append(k)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([*KNOWN_COLUMNS, *extra_cols])
    for r in rows:
        w.writerow(
            [
                _path_for(r, folder),
                _fmt_num(r.mos),
                r.source,
                r.codec,
                _fmt_num(r.crf),
                _fmt_num(r.width),
                _fmt_num(r.height),
                r.resolution,
                r.split,
                *[_path_for(r, folder, r.extra.get(k, "")) if k in PATH_COLUMNS
                  else r.extra.get(k, "") for k in extra_cols],
            ]
        )
    return atomic_write_text(path, buf.getvalue())


def split_rows(rows: Iterable[ManifestRow], split: str | Iterable[str]) -> list[ManifestRow]:
    """Rows whose split is `split` (or any of several names)."""
    wanted = {split} if isinstance(split, str) else set(split)
    return [r for r in rows if r.split in wanted]


def check_videos_exist(rows: Iterable[ManifestRow], show: int = 5) -> None:
    """Raise ManifestError naming (a few of) the videos that are not on disk."""
    rows = list(rows)
    missing = [str(r.abspath) for r in rows if not r.abspath.is_file()]
    if missing:
        more = f" (and {len(missing) - show} more)" if len(missing) > show else ""
        raise ManifestError(
            f"{len(missing)} of {len(rows)} videos not found: {', '.join(missing[:show])}{more}"
        )
