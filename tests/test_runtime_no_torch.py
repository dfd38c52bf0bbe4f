"""The runtime is torch-free: importing it and scoring with an ONNX bundle loads no
torch, timm or onnx (checked in a fresh interpreter, since tests themselves use torch)."""

from __future__ import annotations

import subprocess
import sys

from videos import moving_frames, write_video

CHECK = """
import sys
from internvqa.runtime import Scorer
from internvqa.runtime.cli_common import run_command
from internvqa.runtime.score_cli import score
result = Scorer(sys.argv[1]).score_file(sys.argv[2])
assert result.score is not None
rc = run_command(score, ["--bundle", sys.argv[1], sys.argv[2], "--json", sys.argv[3]])
assert rc == 0, rc
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "timm", "onnx"))
print("HEAVY:" + ",".join(heavy))
"""


def test_scoring_loads_no_torch(runtime_bundle, tmp_path):
    video = write_video(tmp_path / "v.mp4", moving_frames(16, 96, 64))
    proc = subprocess.run([sys.executable, "-c", CHECK, str(runtime_bundle), str(video),
                           str(tmp_path / "log.json")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "HEAVY:\n" in proc.stdout, proc.stdout
    assert (tmp_path / "log.json").exists()


def test_import_is_light():
    code = ("import sys, internvqa.runtime; "
            "print(sorted(m for m in ('torch', 'onnx', 'onnxruntime', 'cv2') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
