"""Crash-safe writing: old content survives a failed write, killed writers' folders are swept."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from internvqa.runtime.atomic import (
    append_line,
    atomic_directory,
    read_complete_lines,
    scratch_directory,
)


def _dead_pid() -> int:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    return int(proc.stdout)


def test_atomic_directory_keeps_old_content_when_the_block_fails(tmp_path):
    out = tmp_path / "bundle"
    with atomic_directory(out) as tmp:
        (tmp / "a.txt").write_text("old")
    with pytest.raises(RuntimeError), atomic_directory(out) as tmp:
        (tmp / "a.txt").write_text("new")
        raise RuntimeError("boom")
    assert (out / "a.txt").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["bundle"], "temp folder left behind"


def test_scratch_directory_is_beside_the_output_and_removed(tmp_path):
    out = tmp_path / "bundles" / "vit_s"
    with scratch_directory(out) as tmp:
        assert tmp.parent == out.parent and tmp.name.startswith(".vit_s.")
        (tmp / "model.onnx").write_bytes(b"x")
    assert list(out.parent.iterdir()) == []


def test_scratch_directory_is_absolute_for_a_relative_output(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with scratch_directory(Path("work") / "bundles" / "vit_s") as tmp:
        assert tmp.is_absolute() and tmp.parent == tmp_path / "work" / "bundles"


def test_folders_of_killed_writers_are_swept_live_ones_kept(tmp_path):
    out = tmp_path / "vit_s"
    dead = tmp_path / f".vit_s.{_dead_pid()}.work-abc.tmp"
    dead.mkdir()
    (dead / "model.onnx").write_bytes(b"half")
    with scratch_directory(out) as live:
        assert not dead.exists(), "a dead writer's scratch folder was not swept"
        with atomic_directory(out) as tmp:
            (tmp / "f").write_text("1")
        assert live.exists(), "a live writer's scratch folder must not be swept"
    assert (out / "f").read_text() == "1"


def test_a_torn_last_line_is_ignored(tmp_path):
    log = tmp_path / "log.jsonl"
    append_line(log, '{"a": 1}')
    with open(log, "a") as fh:
        fh.write('{"a": 2')  # a writer killed mid-line
    assert read_complete_lines(log) == ['{"a": 1}']
