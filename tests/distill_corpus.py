"""A tiny labelled corpus for the training tests: real H.264 files, three splits by source."""

from __future__ import annotations

from pathlib import Path

from videos import moving_frames, write_video

from internvqa.runtime.clipspec import ClipSpec
from internvqa.runtime.manifest import ManifestRow, write_manifest

# 2 frames 2 apart, 28x28 crops at native scale: 3 windows per 12-frame video.
TINY_SPEC = ClipSpec(num_frames=2, frame_stride=2, size=28, resize_short=None)
SPLITS = {"s0": "train", "s1": "train", "s2": "val", "s3": "test"}
CRFS = (18, 30, 42)


def build_tiny_corpus(folder: Path, frames: int = 12, width: int = 64, height: int = 40,
                      labelled: bool = True) -> Path:
    """4 sources x 3 CRFs = 12 videos; MOS falls with CRF. Returns the manifest path."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for si, (source, split) in enumerate(SPLITS.items()):
        clip = moving_frames(frames, width, height, seed=si)
        for crf in CRFS:
            path = write_video(folder / f"{source}_crf{crf}.mp4", clip,
                               options={"crf": str(crf)})
            mos = 95.0 - 1.5 * crf - 3 * si if labelled else None
            rows.append(ManifestRow(path=path.name, mos=mos, source=source, codec="h264",
                                    crf=float(crf), split=split))
    return write_manifest(rows, folder / "manifest.csv")
