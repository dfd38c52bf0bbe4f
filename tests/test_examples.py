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


def test_ladder_prints_each_sources_encodes_by_bitrate(runtime_bundle, tmp_path):
    from videos import moving_frames, write_video

    for source, seed in (("park", 1), ("harbour", 2)):
        frames = moving_frames(16, 96, 64, seed=seed)
        (tmp_path / source).mkdir()
        for crf in (18, 34, 50):
            write_video(tmp_path / source / f"{source}_crf{crf}.mp4", frames,
                        options={"crf": str(crf)})
    (tmp_path / "harbour" / "broken.mp4").write_bytes(b"not a video")
    cmd = [sys.executable, str(ROOT / "examples" / "ladder.py"), str(tmp_path),
           "--bundle", str(runtime_bundle)]
    out = subprocess.run([*cmd, "--json"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 1  # the broken file, reported, the rest scored
    assert "broken.mp4" in out.stderr and len(out.stderr.strip().splitlines()) == 1
    ladders = json.loads(out.stdout)
    assert sorted(ladders) == ["harbour", "park"]
    for rungs in ladders.values():
        assert [r["file"].split("_crf")[1] for r in rungs] == ["50.mp4", "34.mp4", "18.mp4"]
        assert [r["kbps"] for r in rungs] == sorted(r["kbps"] for r in rungs)
    text = subprocess.run(cmd, capture_output=True, text=True, timeout=120).stdout
    assert text.startswith("harbour: 3 encodes, quality ") and "kbps" in text
