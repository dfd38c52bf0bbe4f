"""Shared pytest fixtures. Each block belongs to one area; keep blocks independent."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

# Keep the 2-core CI machine responsive: one BLAS/torch thread per test process.
os.environ.setdefault("OMP_NUM_THREADS", "2")

sys.path.insert(0, str(Path(__file__).parent))

from videos import moving_frames, write_video  # noqa: E402


# --- video fixtures ---
@pytest.fixture(scope="session")
def small_video(tmp_path_factory) -> Path:
    """40 frames of 128x72 H.264: moving texture, 25 fps."""
    d = tmp_path_factory.mktemp("videos")
    return write_video(d / "small.mp4", moving_frames(40, 128, 72))
