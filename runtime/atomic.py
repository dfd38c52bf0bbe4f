"""Crash-safe file writing: nothing already written is lost, nothing half-written is seen.

Every artefact (manifests, checkpoints, bundles, score logs) goes through these helpers:
write to a temporary sibling, fsync, then `os.replace` onto the final name.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to `path` atomically (temp file + fsync + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary directory that replaces `path` only if the block succeeds.

    A crash or exception inside the block leaves `path` untouched (old content kept) and
    removes the temporary directory; the temp folder a SIGKILLed writer leaves behind is
    named with its pid and swept by the next writer of the same path.
    """
    path = Path(path)
    tmp = _sibling_temp_dir(path)
    # mkdtemp makes the folder 0700; the result should have the usual umask-based mode so
    # a server running as another user can read a bundle.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)
    try:
        yield tmp
        if path.exists():
            if not overwrite:
                raise FileExistsError(f"{path} already exists")
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextlib.contextmanager
def scratch_directory(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a work folder beside `path` for intermediate files, removed on exit.

    It lives next to the final output rather than in the system temp folder and is named
    like `atomic_directory`'s temp folders (`.NAME.PID.work-<random>.tmp`), so the folder
    a SIGKILLed run leaves is swept by the next writer of the same path instead of piling
    up. The folder is absolute, so tools that join it onto a temp folder of their own (ONNX
    Runtime's quantizer does) still find it when `path` was relative.
    """
    tmp = _sibling_temp_dir(Path(path).absolute(), "work-")
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _sibling_temp_dir(path: Path, tag: str = "") -> Path:
    """A new `.NAME.PID.<tag><random>.tmp` folder beside `path`, after sweeping the ones
    dead writers left; the one place that makes names `_sweep_dead_temp_dirs` parses."""
    path.parent.mkdir(parents=True, exist_ok=True)
    _sweep_dead_temp_dirs(path)
    return Path(tempfile.mkdtemp(prefix=f".{path.name}.{os.getpid()}.{tag}", suffix=".tmp",
                                 dir=path.parent))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _sweep_dead_temp_dirs(path: Path) -> None:
    """Remove temp folders that a killed writer of `path` left (their pid is gone)."""
    for stale in path.parent.glob(f".{path.name}.*.tmp"):
        parts = stale.name[len(path.name) + 2 :].split(".")
        if stale.is_dir() and parts and parts[0].isdigit() and not _pid_alive(int(parts[0])):
            shutil.rmtree(stale, ignore_errors=True)


def append_line(path: str | os.PathLike, line: str) -> None:
    """Append one complete line and fsync, so a kill never leaves a half row behind.

    Readers must ignore a trailing line without a newline (see `read_complete_lines`).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not line.endswith("\n"):
        line += "\n"
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(line)
        fh.flush()
        os.fsync(fh.fileno())


def read_complete_lines(path: str | os.PathLike) -> list[str]:
    """Lines of a log written by `append_line`, dropping a torn last line."""
    path = Path(path)
    if not path.exists():
        return []
    data = path.read_text(encoding="utf-8")
    lines = data.split("\n")
    # The last element is "" when the file ends with a newline, else a torn line.
    return [ln for ln in lines[:-1] if ln]


def repair_torn_tail(path: str | os.PathLike) -> None:
    """Truncate a trailing partial line left by a kill, so appends start on a clean line."""
    path = Path(path)
    if not path.exists():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        cut = data.rfind(b"\n") + 1
        with open(path, "r+b") as fh:
            fh.truncate(cut)
