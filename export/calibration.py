"""Clips from a manifest, decoded lazily through the clip spec (calibration, parity, accuracy).

Everything the export stage feeds a model comes from here, so calibration, the parity
checks and the accuracy report see exactly the tensors training and the runtime see
(`windows_to_input`, the one preprocessing). Videos are decoded one window at a time and
dropped after use: memory stays at one video's open windows however many clips are asked
for (ViT INT8 wants >= 500 calibration clips; holding them as float32 would take GBs).
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from itertools import islice

import numpy as np
from onnxruntime.quantization import CalibrationDataReader

from internvqa.runtime.clipspec import ClipSpec, windows_to_input
from internvqa.runtime.manifest import ManifestRow
from internvqa.runtime.video import iter_windows, open_video

TRAIN_SPLITS = ("train", "training", "")
HELD_OUT_SPLITS = ("test", "val", "valid", "validation")


def video_clips(row: ManifestRow, spec: ClipSpec) -> Iterator[np.ndarray]:
    """Model inputs (1, 3, T, S, S) of one video, window by window and crop by crop."""
    with open_video(row.abspath) as source:
        for window in iter_windows(source, spec, crop_only=True):
            x = windows_to_input(spec, [window.clip])
            for crop in x:
                yield crop[None]


def manifest_clips(
    rows: Sequence[ManifestRow], spec: ClipSpec, limit: int, seed: int = 0
) -> Iterator[np.ndarray]:
    """Up to `limit` clips drawn across videos: round-robin over a shuffled video order.

    Round-robin, not video after video, so a small `limit` still covers many sources and
    quality levels (a calibration set from three videos would miss the rest of the range).
    """
    order = list(rows)
    random.Random(seed).shuffle(order)
    streams = [video_clips(r, spec) for r in order]

    def round_robin() -> Iterator[np.ndarray]:
        live = streams
        while live:
            still = []
            for s in live:
                clip = next(s, None)
                if clip is not None:
                    still.append(s)
                    yield clip
            live = still

    try:
        yield from islice(round_robin(), limit)
    finally:
        for s in streams:
            s.close()


def calibration_rows(rows: Sequence[ManifestRow]) -> list[ManifestRow]:
    """Training rows when the manifest has splits (never calibrate on the held-out set)."""
    train = [r for r in rows if r.split.lower() in TRAIN_SPLITS]
    return train or list(rows)


def held_out_rows(rows: Sequence[ManifestRow]) -> tuple[str, list[ManifestRow]]:
    """(split name, rows) of the first held-out split present, else ("", [])."""
    for name in HELD_OUT_SPLITS:
        found = [r for r in rows if r.split.lower() == name and r.mos is not None]
        if found:
            return name, found
    return "", []


class ClipCalibrationReader(CalibrationDataReader):
    """ORT calibration reader that decodes clips on demand (bounded memory)."""

    def __init__(
        self,
        rows: Sequence[ManifestRow],
        spec: ClipSpec,
        limit: int,
        input_name: str = "video",
        progress=None,
    ) -> None:
        self._make = lambda: manifest_clips(rows, spec, limit)
        self._clips = self._make()
        self._input = input_name
        self._progress = progress
        self.count = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        clip = next(self._clips, None)
        if clip is None:
            return None
        self.count += 1
        if self._progress is not None:
            self._progress(1)
        return {self._input: clip}

    def rewind(self) -> None:
        self._clips = self._make()
        self.count = 0
