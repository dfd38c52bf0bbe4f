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

from internvqa.runtime.bitstream import side_vector
from internvqa.runtime.clipspec import ClipSpec, windows_to_input
from internvqa.runtime.manifest import ManifestRow
from internvqa.runtime.video import iter_windows, open_video

TRAIN_SPLITS = ("train", "training", "")
HELD_OUT_SPLITS = ("test", "val", "valid", "validation")


Feeds = dict[str, np.ndarray]  # graph input name -> batch ("video", and "side" for hybrids)


def video_clips(row: ManifestRow, spec: ClipSpec) -> Iterator[Feeds]:
    """Model inputs of one video, window by window and crop by crop: `video` (1, 3, T, S, S)
    and `side` (1, SIDE_DIM), the window's bitstream side input (used by hybrid graphs)."""
    with open_video(row.abspath) as source:
        info = source.info
        for window in iter_windows(source, spec, crop_only=True):
            x = windows_to_input(spec, [window.clip])
            side = side_vector(window.bits, window.span_frames, info.width, info.height,
                               info.codec)[None]
            for crop in x:
                yield {"video": crop[None], "side": side}


def only(feeds: Feeds, names: Sequence[str]) -> Feeds:
    """The feeds a graph with inputs `names` takes."""
    return {k: v for k, v in feeds.items() if k in names}


def concat_feeds(items: Sequence[Feeds]) -> Feeds:
    return {k: np.concatenate([f[k] for f in items]) for k in items[0]}


def manifest_clips(
    rows: Sequence[ManifestRow], spec: ClipSpec, limit: int, seed: int = 0
) -> Iterator[Feeds]:
    """Up to `limit` clips drawn across videos: round-robin over a shuffled video order.

    Round-robin, not video after video, so a small `limit` still covers many sources and
    quality levels (a calibration set from three videos would miss the rest of the range).
    """
    order = list(rows)
    random.Random(seed).shuffle(order)
    streams = [video_clips(r, spec) for r in order]

    def round_robin() -> Iterator[Feeds]:
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
        input_names: Sequence[str] = ("video",),
        progress=None,
    ) -> None:
        self._make = lambda: manifest_clips(rows, spec, limit)
        self._clips = self._make()
        self._inputs = tuple(input_names)
        self._progress = progress
        self.count = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        clip = next(self._clips, None)
        if clip is None:
            return None
        self.count += 1
        if self._progress is not None:
            self._progress(1)
        return only(clip, self._inputs)

    def rewind(self) -> None:
        self._clips = self._make()
        self.count = 0
