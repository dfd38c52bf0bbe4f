"""Tiny real test videos, written with PyAV (shared by the test modules)."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np


def moving_frames(n: int, width: int, height: int, seed: int = 0) -> np.ndarray:
    """(n, h, w, 3) uint8 RGB frames: a textured background panning under a moving square."""
    rng = np.random.default_rng(seed)
    big = rng.integers(0, 256, size=(height // 4 + 8, width // 4 + 8 + n, 3), dtype=np.uint8)
    import cv2

    big = cv2.resize(big, (big.shape[1] * 4, big.shape[0] * 4), interpolation=cv2.INTER_CUBIC)
    out = np.empty((n, height, width, 3), np.uint8)
    for i in range(n):
        f = big[:height, 4 * i % (big.shape[1] - width) : 4 * i % (big.shape[1] - width) + width]
        f = f.copy()
        x = (3 * i) % max(1, width - 16)
        f[8:24, x : x + 16] = (255, 32, 32)
        out[i] = f
    return out


def write_video(
    path: str | Path,
    frames: np.ndarray,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    fps: int = 25,
    options: dict | None = None,
) -> Path:
    """Encode RGB frames to `path` (container from the suffix)."""
    path = Path(path)
    n, h, w, _ = frames.shape
    with av.open(str(path), "w") as c:
        st = c.add_stream(codec, rate=fps)
        st.width, st.height, st.pix_fmt = w, h, pix_fmt
        st.options = {"crf": "18"} if options is None and codec == "libx264" else (options or {})
        for f in frames:
            for p in st.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(p)
        for p in st.encode():
            c.mux(p)
    return path


def write_raw_yuv420(path: str | Path, frames: np.ndarray) -> Path:
    """Write frames as headerless yuv420p (BT.601 limited, what FFmpeg's default is)."""
    path = Path(path)
    with open(path, "wb") as fh:
        for f in frames:
            vf = av.VideoFrame.from_ndarray(f, format="rgb24").reformat(format="yuv420p")
            h, w = f.shape[:2]
            for i, (pw, ph) in enumerate([(w, h), ((w + 1) // 2, (h + 1) // 2), ((w + 1) // 2, (h + 1) // 2)]):
                plane = vf.planes[i]
                a = np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)[:ph, :pw]
                fh.write(a.tobytes())
    return path
