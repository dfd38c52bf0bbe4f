"""vqa-score: batch CSV/JSON, failures recorded, resume, exit codes, streaming pipe mode."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import RUNTIME_TEST_SPEC
from videos import moving_frames, write_raw_yuv420, write_video

from internvqa.runtime.atomic import read_complete_lines
from internvqa.runtime.cli_common import run_command
from internvqa.runtime.clipspec import ClipSpec
from internvqa.runtime.score_cli import score

SPEC = ClipSpec(**RUNTIME_TEST_SPEC)


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli-videos")
    good = [write_video(d / f"ok{i}.mp4", moving_frames(20, 96, 64, seed=i)) for i in range(3)]
    bad = d / "corrupt.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(3000))
    return good, bad


def _rows(csv_path):
    import csv

    return list(csv.DictReader(open(csv_path, newline="")))


def test_batch_records_failure_and_continues(runtime_bundle, videos, tmp_path, capsys):
    good, bad = videos
    out = tmp_path / "scores.csv"
    args = ["--bundle", str(runtime_bundle), str(good[0]), str(bad), str(good[1]),
            "--csv", str(out), "--json", str(tmp_path / "all.json"), "--log-dir",
            str(tmp_path / "logs"), "--no-progress"]
    assert run_command(score, args) == 1
    rows = _rows(out)
    assert [r["status"] for r in rows] == ["ok", "error", "ok"]
    assert "corrupt.mp4" in rows[1]["error"] and "\n" not in rows[1]["error"]
    assert float(rows[0]["score_mean"]) > 0 and rows[0]["windows"] == "3"
    logs = json.loads((tmp_path / "all.json").read_text())
    assert isinstance(logs, list) and len(logs) == 3 and "error" in logs[1]
    assert sorted(p.name for p in (tmp_path / "logs").iterdir()) == ["ok0.mp4.json", "ok1.mp4.json"]


def test_resume_skips_done_and_repairs_torn_tail(runtime_bundle, videos, tmp_path):
    good, bad = videos
    out = tmp_path / "scores.csv"
    base = ["--bundle", str(runtime_bundle), "--csv", str(out), "--no-progress"]
    assert run_command(score, [*base, str(good[0])]) == 0
    with open(out, "a") as fh:
        fh.write(f"{good[1]},ok,47.1")  # a row torn by a kill
    inputs = [str(p) for p in (*good, bad)]
    assert run_command(score, [*base, "--workers", "2", *inputs]) == 2  # exists, no --resume
    assert run_command(score, [*base, "--resume", "--workers", "2", *inputs]) == 1
    rows = _rows(out)
    assert sorted(r["path"] for r in rows) == sorted(inputs)  # each once, torn row replaced
    assert len(read_complete_lines(out)) == 5
    assert run_command(score, [*base, "--resume", *inputs]) == 0  # nothing left to do
    assert len(_rows(out)) == 4
    assert run_command(score, [*base, "--resume", "--retry-failed", *inputs]) == 1
    assert [r["status"] for r in _rows(out)][-1] == "error"


def test_usage_errors_exit_2_with_one_line(runtime_bundle, videos, tmp_path, capsys):
    good, _ = videos
    raw = write_raw_yuv420(tmp_path / "clip.yuv", moving_frames(10, 64, 48))
    cases = [
        ["--bundle", str(tmp_path / "missing"), str(good[0])],
        ["--bundle", str(runtime_bundle), "--size", "64by48", str(raw)],
        ["--bundle", str(runtime_bundle), "--size", "60x48", str(raw)],
        ["--bundle", str(runtime_bundle)],
        ["--bundle", str(runtime_bundle), str(raw)],
        ["--bundle", str(runtime_bundle), "--precision", "int8", str(good[0])],
    ]
    for args in cases:
        capsys.readouterr()
        assert run_command(score, [*args, "--no-progress"]) == 2, args
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1, err
    assert run_command(score, ["--bundle", str(runtime_bundle), "--size", "64x48",
                               "--json", "-", str(raw)]) == 0
    log = json.loads(capsys.readouterr().out)
    assert log["input"]["frames"] == 10 and log["input"]["codec"] == "rawvideo"


def _read_line(proc, buf: bytearray, timeout: float = 60.0) -> dict:
    """Next stdout line of `proc`, failing (not hanging) if it doesn't come."""
    deadline = time.monotonic() + timeout
    fd = proc.stdout.fileno()
    while b"\n" not in buf:
        left = deadline - time.monotonic()
        ready, _, _ = select.select([fd], [], [], max(0.0, left))
        if not ready:
            raise AssertionError(f"no output line within {timeout}s")
        chunk = os.read(fd, 65536)
        if not chunk:
            raise AssertionError(f"stdout closed; stderr: {proc.stderr.read().decode()}")
        buf.extend(chunk)
    line, _, rest = bytes(buf).partition(b"\n")
    buf[:] = rest
    return json.loads(line)


def test_pipe_mode_streams_one_line_per_window(runtime_bundle, tmp_path):
    frames = moving_frames(20, 64, 48)
    raw = write_raw_yuv420(tmp_path / "f.yuv", frames).read_bytes()
    fb = 64 * 48 * 3 // 2
    cmd = [sys.executable, "-m", "internvqa.runtime.score_cli", "-", "--size", "64x48",
           "--fps", "25", "--bundle", str(runtime_bundle)]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    buf = bytearray()
    try:
        # window k is complete at frame k*hop + span - 1: send exactly that much, then read
        sent = 0
        for k in range(2):
            upto = k * SPEC.hop + SPEC.span
            proc.stdin.write(raw[sent * fb : upto * fb])
            proc.stdin.flush()
            sent = upto
            line = _read_line(proc, buf)
            assert line["window"] == k and line["end_frame"] == upto - 1
            assert 0 < line["metrics"]["internvqa"] < 100
        proc.stdin.write(raw[sent * fb :])
        proc.stdin.close()
        tail = _read_line(proc, buf)
        assert tail["window"] == 2 and tail["flags"] == ["partial"]
        pooled = _read_line(proc, buf)
        assert proc.wait(timeout=60) == 0
    finally:
        proc.kill()
    assert pooled["windows"] == 3 and pooled["frames"] == 20
    assert set(pooled["pooled_metrics"]["internvqa"]) == {"min", "max", "mean", "harmonic_mean", "p5"}
    assert np.isfinite(pooled["pooled_metrics"]["internvqa"]["mean"])


def test_summary_prints_one_human_line_per_input(runtime_bundle, videos, capsys):
    good, bad = videos
    args = ["--bundle", str(runtime_bundle), str(good[0]), str(bad), "--summary", "--no-progress"]
    assert run_command(score, args) == 1
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and not lines[0].startswith("path,")
    assert lines[0].startswith(f"{good[0]}: MOS ")
    assert "worst" in lines[0] and " s, 3 windows" in lines[0]
    assert lines[1].startswith(f"{bad}: error: ")


def test_explain_says_what_the_score_means(runtime_bundle, capsys):
    assert run_command(score, ["--bundle", str(runtime_bundle), "--explain"]) == 0
    out = capsys.readouterr().out
    assert "model: tiny-test" in out and "score: MOS, 0.0-100.0, higher is better" in out
    assert "no model card" in out
