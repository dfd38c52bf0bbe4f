"""A tiny real compression ladder for the bench and baseline tests.

Each source is a panning texture (`videos.moving_frames`, one seed per source) encoded
with libx264 at several CRFs. Labels come from a real full-reference measure: the MOS of a
clip is a logistic of its mean PSNR-Y against the lossless frames it was encoded from, so
quality falls with CRF because the encoder made it so, not because a test says so.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
from videos import moving_frames, write_video

from internvqa.runtime.manifest import ManifestRow, write_manifest


def _luma(rgb: np.ndarray) -> np.ndarray:
    rgb = rgb.astype(np.float64)
    return 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]


def psnr_y(path: Path, ref: np.ndarray) -> float:
    with av.open(str(path)) as c:
        dec = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    mse = np.mean([np.mean((_luma(a) - _luma(b)) ** 2) for a, b in zip(dec, ref, strict=False)])
    return float(10 * np.log10(255.0**2 / max(mse, 1e-6)))


def make_ladder(folder: Path, sources: dict[str, str], crfs=(18, 35, 51), frames: int = 16,
                width: int = 96, height: int = 64,
                content: Callable[[int, int, int, int], np.ndarray] | None = None,
                with_reference: bool = False) -> Path:
    """Encode every source at every CRF; write `manifest.csv`. sources: {name: split}.

    `content(frames, width, height, k)` makes source k's RGB frames (default: the panning
    texture); `with_reference=True` also writes each source losslessly (FFV1) and names it
    in a `reference` column, as `vqa-data label` does."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for k, (name, split) in enumerate(sources.items()):
        ref = (content(frames, width, height, k) if content is not None
               else moving_frames(frames, width, height, seed=11 + 7 * k))
        extra = {}
        if with_reference:
            ref_path = write_video(folder / f"{name}_ref.mkv", ref, codec="ffv1", options={})
            extra = {"reference": ref_path.name}
        for crf in crfs:
            path = write_video(folder / f"{name}_crf{crf}.mp4", ref,
                               options={"crf": str(crf), "threads": "1"})
            mos = 100.0 / (1.0 + np.exp(-(psnr_y(path, ref) - 30.0) / 4.0))
            rows.append(ManifestRow(path=path.name, mos=round(float(mos), 3), source=name,
                                    codec="libx264", crf=float(crf), width=width,
                                    height=height, split=split, extra=dict(extra), root=folder))
    return write_manifest(rows, folder / "manifest.csv")
