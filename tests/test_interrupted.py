"""Interrupted work loses nothing: SIGKILL a real `vqa-score` batch and a real `vqa-data
synth` build mid-run, rerun, and get exactly what an uninterrupted run gives: no lost,
duplicated or half-written rows, and no temporary files left among the results.

(Training's kill/resume is proven in test_train.py.)
"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from videos import moving_frames, write_video

from internvqa.runtime.atomic import read_complete_lines
from internvqa.runtime.scorelog import csv_header

pytestmark = pytest.mark.slow


def _start(cmd: list[str], cwd: Path) -> subprocess.Popen:
    """A child in its own process group, so the kill reaches any workers it forked."""
    return subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)


def _kill_when(proc: subprocess.Popen, ready, timeout: float = 120.0) -> None:
    """SIGKILL the child's group as soon as `ready()` holds; fail if it finished first."""
    deadline = time.monotonic() + timeout
    while not ready():
        assert proc.poll() is None, f"finished before the kill: {proc.stderr.read().decode()[-800:]}"
        assert time.monotonic() < deadline, "child made no progress"
        time.sleep(0.005)
    os.killpg(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL


def _visible_temp_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if ".tmp" in p.name or p.name.endswith((".part", "~"))]


# ---- vqa-score --------------------------------------------------------------------------
N_CLIPS = 40


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> list[Path]:
    d = tmp_path_factory.mktemp("kill-clips")
    return [write_video(d / f"c{i:02d}.mp4", moving_frames(16, 64, 48, seed=i)) for i in range(N_CLIPS)]


def _stable(rows: list[dict]) -> dict[str, dict]:
    """Rows by path without the wall-clock column."""
    return {r["path"]: {k: v for k, v in r.items() if k != "elapsed_s"} for r in rows}


def _score_cmd(bundle: Path, out: Path, clips: list[Path], *extra: str) -> list[str]:
    return [sys.executable, "-m", "internvqa.runtime.score_cli", "--bundle", str(bundle),
            "--csv", str(out), "--no-progress", "--threads", "1", *extra, *map(str, clips)]


def test_vqa_score_killed_then_resumed(runtime_bundle, clips, tmp_path):
    broken = clips[:]
    # A failed input must survive the kill too. It goes last: rows are recorded in input
    # order, so (with the check below that the kill landed before the batch ended) its row
    # is never written before the kill, and the resumed run must record it (exit 1). At
    # index 5 a kill that landed a few rows late made the rerun's exit code 0 (seen once
    # in a fresh-clone CI run).
    broken[-1] = tmp_path / "corrupt.mp4"
    broken[-1].write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    ref = tmp_path / "ref" / "scores.csv"
    ref.parent.mkdir()
    assert subprocess.run(_score_cmd(runtime_bundle, ref, broken), capture_output=True,
                          timeout=300).returncode == 1

    out = tmp_path / "run" / "scores.csv"
    out.parent.mkdir()
    proc = _start(_score_cmd(runtime_bundle, out, broken, "--workers", "2"), tmp_path)
    _kill_when(proc, lambda: len(read_complete_lines(out)) >= 4)
    lines_at_kill = len(read_complete_lines(out))
    assert lines_at_kill < N_CLIPS + 1, "the kill landed after the batch"

    rerun = subprocess.run(_score_cmd(runtime_bundle, out, broken, "--resume", "--workers", "2"),
                           capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 1, rerun.stderr  # the corrupt input, recorded once
    text = out.read_text()
    assert text.endswith("\n") and text.splitlines()[0] == csv_header()
    with open(out, newline="") as fh:
        rows = list(csv.DictReader(fh))
    paths = [r["path"] for r in rows]
    assert len(paths) == len(set(paths)) == N_CLIPS  # none lost, none twice
    assert all(None not in r and None not in r.values() for r in rows)  # no torn row
    with open(ref, newline="") as fh:
        assert _stable(rows) == _stable(list(csv.DictReader(fh)))
    assert not _visible_temp_files(out.parent)


# ---- vqa-data synth ---------------------------------------------------------------------
# The demo preset encodes 300 clips (minutes); this run swaps in a preset of the same
# shape, 15 clips of 64x48x8 (a resolution rung included), through the real CLI.
_SYNTH = """
import sys
from internvqa.distill.corpus import synth
synth.PRESETS["demo"] = synth.Preset(
    "demo", 64, 48, 8, 8, ("gradient_checker", "plasma", "shapes"),
    ladders={"libx264": (20, 44), "libvpx-vp9": (30, 60)},
    res_ladder=((2, "libx264", (30,)),))
from internvqa.distill.data_cli import main
sys.argv = ["vqa-data", "synth", "--out", sys.argv[1], "--workers", sys.argv[2], "--json"]
main()
"""


def _synth(out: Path, workers: int = 1) -> list[str]:
    return [sys.executable, "-c", _SYNTH, str(out), str(workers)]


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != ".progress.jsonl"}


def test_vqa_data_synth_killed_then_rerun(tmp_path):
    ref = tmp_path / "ref"
    done = subprocess.run(_synth(ref), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]

    out = tmp_path / "run"
    proc = _start(_synth(out, workers=2), tmp_path)
    progress = out / ".progress.jsonl"
    _kill_when(proc, lambda: len(read_complete_lines(progress)) >= 3)
    assert not (out / "manifest.csv").exists()  # killed mid-build: no manifest yet

    again = subprocess.run(_synth(out), capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    assert '"reused": ' in again.stdout and '"reused": 0' not in again.stdout
    assert _tree(out) == _tree(ref)  # manifest, sidecar and every clip, byte for byte
    ids = [line.split('"id": ')[1].split(",")[0] for line in read_complete_lines(progress)]
    assert len(ids) == len(set(ids)) == 15  # every clip recorded exactly once
    assert not _visible_temp_files(out)
