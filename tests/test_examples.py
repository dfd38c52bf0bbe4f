"""examples/encoder_loop.py runs as documented and streams window scores."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_encoder_loop_streams_windows_then_pooled(runtime_bundle, small_video):
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "encoder_loop.py"), "--bundle", str(runtime_bundle),
         "--input", str(small_video), "--crf", "35"],
        capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 0, out.stderr
    lines = [json.loads(x) for x in out.stdout.splitlines()]
    windows, pooled = lines[:-1], lines[-1]
    assert pooled["frames"] == 40
    assert len(windows) >= 1
    assert [w["window"] for w in windows] == list(range(len(windows)))
    scores = [w["metrics"]["internvqa"] for w in windows]
    mean = sum(scores) / len(scores)
    assert abs(pooled["pooled_metrics"]["mean"] - mean) < 1e-6


def test_encoder_loop_bad_bundle_is_one_line(tmp_path, small_video):
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "encoder_loop.py"), "--bundle", str(tmp_path),
         "--input", str(small_video)],
        capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 2
    assert out.stderr.startswith("error:") and len(out.stderr.strip().splitlines()) == 1
