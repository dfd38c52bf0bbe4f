"""The work folder: where every command keeps its runs, bundles and caches, and their names.

One module, so that the CLI that writes a thing and the CLI that finds it agree:

    $INTERNVQA_WORK (else ./work)
      sources/                    licensed media (`vqa-data sources fetch`)
      corpus/demo/manifest.csv    the demo corpus (`vqa-data synth --preset demo`)
      pretrained/<name>/          `vqa-distill import` weights
      runs/<kind>-<model>/        one training run (`vqa-distill teacher|student`)
        best/  last/              checkpoints: model.safetensors + config.json
        best/teacher_predictions.csv   a teacher's held-out predictions (schema below)
        resume_state.pt           optimizer / scheduler / RNG state (torch; distill reads it)
      bundles/<model>/            `vqa-export` bundles; bundles/latest -> the last one written
      peers/  bench/  cache/      peer-metric wheels, benchmark outputs, decoded windows

Only names and plain-file formats live here (no torch): the runtime layer is the lowest,
so every CLI may import it. `work_dir()` reads `$INTERNVQA_WORK` on each call, so a
command (or test) that sets the variable is always honoured.

Teacher predictions (`teacher_predictions.csv`): one row per held-out video, columns
`path, mos, pred, split`; `pred` on the MOS scale (0-100) with four decimals, `path` as
written (absolute from training; a relative path is read against the file's folder).
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Iterable
from pathlib import Path

from internvqa.runtime.atomic import atomic_write_text
from internvqa.runtime.errors import CheckpointError, UsageError

WORK_ENV = "INTERNVQA_WORK"
DEFAULT_WORK = "work"

# checkpoint layout (distill writes it, export and bench read it)
CHECKPOINT_FORMAT = "internvqa-checkpoint"
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
RESUME_STATE = "resume_state.pt"
BEST, LAST = "best", "last"

# bundles
BUNDLE_FILE = "bundle.json"
LATEST = "latest"

TEACHER_PREDICTIONS = "teacher_predictions.csv"
TEACHER_PREDICTION_COLUMNS = ("path", "mos", "pred", "split")


# ---- folders ---------------------------------------------------------------------------
def work_dir() -> Path:
    """Root for caches, runs and bundles: `$INTERNVQA_WORK`, else `./work`."""
    return Path(os.environ.get(WORK_ENV, DEFAULT_WORK))


def _root(work: Path | None) -> Path:
    return Path(work) if work is not None else work_dir()


def runs_dir(work: Path | None = None) -> Path:
    return _root(work) / "runs"


def bundles_dir(work: Path | None = None) -> Path:
    return _root(work) / "bundles"


def sources_dir(work: Path | None = None) -> Path:
    """The licensed-media cache of `vqa-data sources fetch`."""
    return _root(work) / "sources"


def peers_dir(work: Path | None = None) -> Path:
    """Where the peer metrics' pinned wheels are cached."""
    return _root(work) / "peers"


def demo_corpus_dir(work: Path | None = None) -> Path:
    return _root(work) / "corpus" / "demo"


# ---- runs and checkpoints --------------------------------------------------------------
def safe_model_name(model: str) -> str:
    """'timm:resnet18' -> 'timm_resnet18': the model part of a run folder's name."""
    return model.replace(":", "_").replace("/", "_")


def run_dir(kind: str, model: str, work: Path | None = None) -> Path:
    """`<work>/runs/<kind>-<model>` (kind: teacher, student)."""
    return runs_dir(work) / f"{kind}-{safe_model_name(model)}"


def latest_checkpoint(student: str, work: Path | None = None) -> Path:
    """Most recently modified `<work>/runs/student-<name>*/best` (the distill convention)."""
    safe = safe_model_name(student)
    runs = runs_dir(work)
    found = {p for pat in (f"student-{safe}", f"student-{safe}-*", f"student-{safe}_*")
             for p in runs.glob(f"{pat}/{BEST}") if p.is_dir()}
    if not found:
        raise CheckpointError(
            f"no distilled {student} checkpoint found under {runs} (expected "
            f"{runs}/student-{safe}*/{BEST}); train one with `vqa-distill student --student "
            f"{student}` or pass --checkpoint DIR"
        )
    return max(found, key=lambda p: p.stat().st_mtime)


def teacher_checkpoints(work: Path | None = None) -> list[Path]:
    """Every `<work>/runs/teacher-*/best` that holds a checkpoint, sorted by path."""
    return [p.parent for p in sorted(runs_dir(work).glob(f"teacher-*/{BEST}/{CONFIG_FILE}"))]


# ---- bundles ---------------------------------------------------------------------------
def bundle_name(model: str) -> str:
    """'vit_s' -> 'vit_s'; 'timm:resnet18' -> 'timm_resnet18' (a safe folder name)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", model)


def bundle_dir(model: str, work: Path | None = None) -> Path:
    """`<work>/bundles/<model>`: where `vqa-export` writes a model's bundle by default."""
    return bundles_dir(work) / bundle_name(model)


def latest_bundle_link(work: Path | None = None) -> Path:
    return bundles_dir(work) / LATEST


def latest_bundle(work: Path | None = None) -> Path:
    """The bundle `vqa-export` wrote last (`<work>/bundles/latest`); UsageError if none."""
    latest = latest_bundle_link(work)
    if not latest.exists():
        raise UsageError(f"--bundle latest: {latest} does not exist (run vqa-export first)")
    return latest


def point_latest(bundle: Path, work: Path | None = None) -> Path:
    """Point `<work>/bundles/latest` at `bundle` (a relative symlink, replaced atomically)."""
    root = bundles_dir(work)
    link = root / LATEST
    tmp = root / f".{LATEST}.{os.getpid()}.tmp"
    target = os.path.relpath(bundle, root)
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    os.symlink(target, tmp)
    if link.is_dir() and not link.is_symlink():
        raise UsageError(f"{link} is a directory, not a pointer; remove it to let export update it")
    os.replace(tmp, link)
    return link


# ---- teacher predictions ---------------------------------------------------------------
def write_teacher_predictions(path: Path, records: Iterable[tuple[str, float | None, float, str]]
                              ) -> None:
    """Write (path, mos, pred, split) records; `pred` on the MOS scale."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(TEACHER_PREDICTION_COLUMNS)
    for video, mos, pred, split in records:
        w.writerow([video, "" if mos is None else mos, f"{pred:.4f}", split])
    atomic_write_text(path, buf.getvalue())


def read_teacher_predictions(path: str | os.PathLike) -> dict[str, float]:
    """teacher_predictions.csv -> {key: pred}; keys are the path as written, resolved
    (against the file's folder when relative) and its last two components."""
    path = Path(path)
    try:
        rows = list(csv.DictReader(path.read_text(encoding="utf-8-sig").splitlines()))
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read teacher predictions {path}: {exc}") from None
    if not rows or "path" not in rows[0] or "pred" not in rows[0]:
        raise UsageError(f"{path}: expected a CSV with columns path, pred (and mos, split)")
    out: dict[str, float] = {}
    for i, r in enumerate(rows, start=2):
        try:
            v = float(r["pred"])
        except (TypeError, ValueError):
            raise UsageError(f"{path}:{i}: pred is not a number: {r['pred']!r}") from None
        raw = (r["path"] or "").strip()
        for key in _path_keys(raw, path.parent):
            out.setdefault(key, v)
    return out


def _path_keys(raw: str, base: Path) -> list[str]:
    p = Path(raw)
    keys = [raw, str(p.resolve()) if p.is_absolute() else str((base / p).resolve())]
    keys.append("/".join(p.parts[-2:]))  # e.g. "libx264/astronaut_crf20.mp4"
    return keys
