"""Training data: decode each video once, cache its windows, serve augmented crops.

Decoding dominates the cost of small-model training, and every epoch (and the teacher,
the students and the ablation) wants the same frames. So the manifest's videos are
decoded once through the runtime's `iter_windows` with the run's clip spec, and the
resized uint8 windows (T, h, w, 3) go into one flat memory-mapped file:

    <work>/cache/clips/<key>/clips.u8     every window's bytes, back to back
    <work>/cache/clips/<key>/index.json   per window: video, byte offset, shape, frames

`key` hashes the videos' identity (resolved path, size, mtime) and the clip spec, so a
later run with the same manifest and spec reuses it, and any change rebuilds it. The
folder is written atomically (a killed build leaves no half cache). Windows of one
cache may differ in shape (a resolution ladder at native scale), hence the flat file.

Augmentation must not touch what the model grades: no rescaling, blurring or colour
jitter (each would add or hide compression artefacts). Training views are random
`spec.size` crops at native scale plus horizontal flips; evaluation uses the spec's own
crops (`crop_clip`). Both end in the spec's `normalize`, the one preprocessing path the
runtime uses too. Randomness is a pure function of (seed, epoch, item): results do not
depend on worker count or scheduling, and a resumed run sees the same crops.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler
from torch.utils.data.distributed import DistributedSampler

from internvqa.runtime.atomic import atomic_directory, atomic_write_json
from internvqa.runtime.bitstream import CODEC_FAMILIES, codec_family, side_vector
from internvqa.runtime.clipspec import ClipSpec, crop_clip, normalize, single_threaded_opencv
from internvqa.runtime.errors import ManifestError, VideoError
from internvqa.runtime.manifest import ManifestRow
from internvqa.runtime.video import VideoInfo, iter_windows, open_video
from internvqa.runtime.workspace import work_dir

CACHE_FORMAT = 2  # 2: per-window bits and span, per-video coded size and codec


def cache_key(rows: Sequence[ManifestRow], spec: ClipSpec) -> str:
    """Hash of what determines the windows: each video's identity and the clip spec."""
    h = hashlib.sha256()
    h.update(f"format={CACHE_FORMAT}\n{spec.to_json()}\n".encode())
    for r in rows:
        p = r.abspath
        try:
            st = p.stat()
        except OSError:
            raise ManifestError(f"video not found: {p}") from None
        h.update(f"{p}\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:20]


@dataclass(frozen=True)
class WindowInfo:
    video: int  # index into the manifest rows the cache was built from
    offset: int
    shape: tuple[int, int, int, int]  # (T, h, w, 3)
    frame_indices: tuple[int, ...]
    flags: tuple[str, ...]
    bits: float | None = None  # coded bits of the window's span (None: unknown)
    span: int = 0


class WindowCache:
    """Read side of a built cache: `clip(i)` is a zero-copy view into the memory map."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        index = json.loads((self.folder / "index.json").read_text(encoding="utf-8"))
        self.spec = ClipSpec.from_dict(index["spec"])
        self.paths: list[str] = index["videos"]
        self.windows = [
            WindowInfo(w["video"], w["offset"], tuple(w["shape"]), tuple(w["frames"]),
                       tuple(w["flags"]), w.get("bits"), int(w.get("span", 0)))
            for w in index["windows"]
        ]
        self.video_info: list[dict] = index.get("video_info") or [{} for _ in self.paths]
        self._data = np.memmap(self.folder / "clips.u8", dtype=np.uint8, mode="r")

    def __len__(self) -> int:
        return len(self.windows)

    def clip(self, i: int) -> np.ndarray:
        w = self.windows[i]
        n = int(np.prod(w.shape))
        return self._data[w.offset : w.offset + n].reshape(w.shape)

    def windows_of(self, videos: Sequence[int]) -> list[int]:
        wanted = set(videos)
        return [i for i, w in enumerate(self.windows) if w.video in wanted]

    def __getstate__(self) -> dict:  # workers re-open the map instead of pickling it
        return {"folder": self.folder}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["folder"])


def build_window_cache(
    rows: Sequence[ManifestRow], spec: ClipSpec, root: Path | None = None, progress: bool = False
) -> WindowCache:
    """Decode every video once into `<root>/cache/clips/<key>/` (reused when present)."""
    single_threaded_opencv()  # before the first OpenCV call and any DataLoader fork
    folder = (root or work_dir()) / "cache" / "clips" / cache_key(rows, spec)
    if (folder / "index.json").is_file():
        return WindowCache(folder)
    windows, offset, infos = [], 0, []
    with atomic_directory(folder) as tmp:
        with open(tmp / "clips.u8", "wb") as fh:
            for vid, row in enumerate(_progress(rows, progress, "decode")):
                n_before = len(windows)
                try:
                    with open_video(row.abspath) as src:
                        i = src.info
                        infos.append({"width": i.width, "height": i.height, "fps": i.fps,
                                      "codec": i.codec})
                        for w in iter_windows(src, spec):
                            clip = np.ascontiguousarray(w.clip, dtype=np.uint8)
                            fh.write(clip.tobytes())
                            windows.append({"video": vid, "offset": offset,
                                            "shape": list(clip.shape),
                                            "frames": list(w.frame_indices),
                                            "flags": list(w.flags), "bits": w.bits,
                                            "span": w.span_frames})
                            offset += clip.nbytes
                except VideoError as exc:
                    raise VideoError(f"{row.path}: {exc}") from None
                if len(windows) == n_before:
                    raise VideoError(f"{row.abspath}: no frames decoded")
            fh.flush()
            os.fsync(fh.fileno())
        atomic_write_json(tmp / "index.json", {
            "format": CACHE_FORMAT, "spec": spec.to_dict(),
            "videos": [str(r.abspath) for r in rows], "windows": windows,
            "video_info": infos,
        })
    return WindowCache(folder)


def _progress(items, enabled: bool, desc: str):
    if not enabled:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=desc, leave=False)


# ---------------------------------------------------------------------------- views
def item_rng(seed: int, *keys: int) -> np.random.Generator:
    """An RNG that depends only on (seed, keys): same crops whatever the worker layout."""
    return np.random.default_rng([seed, *keys])


def random_view(clip: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """A random size x size crop at native scale, flipped horizontally half the time."""
    _, h, w, _ = clip.shape
    if h < size or w < size:
        raise VideoError(f"window {w}x{h} is smaller than the crop {size}")
    y = int(rng.integers(0, h - size + 1))
    x = int(rng.integers(0, w - size + 1))
    out = clip[:, y : y + size, x : x + size]
    if rng.random() < 0.5:
        out = out[:, :, ::-1]
    return np.ascontiguousarray(out)


class TrainWindows(Dataset):
    """`per_video` random views per training video and epoch; label = MOS / 100 (nan if none).

    Where the manifest has per-frame labels (`mos_frames`: libvmaf's per-frame VMAF), a
    view's label is the mean over the frames of its own window instead of the video's
    pooled MOS: a window of a clip whose quality changes is graded by what it shows.

    A view is one of the video's windows, a random crop of it at native scale and a
    random flip. Sampling videos rather than windows keeps every video equally weighted
    and lets an epoch be cut to a CPU budget without dropping whole videos.

    `views=K` restricts each video to K fixed views (view k depends on seed, video and k
    only) and draws one of them per item: the frozen-teacher mode caches the teacher's
    outputs for exactly these K views, so augmentation stays, limited to K variants.
    """

    def __init__(self, cache: WindowCache, rows: Sequence[ManifestRow], videos: Sequence[int],
                 seed: int = 0, per_video: int = 1, views: int | None = None):
        self.cache, self.spec, self.seed = cache, cache.spec, seed
        self.per_video, self.views = per_video, views
        self.rows = rows
        self.videos = list(videos)
        self.labels = [_label(r) for r in rows]
        self.frame_labels = [frame_labels(r) for r in rows]
        self.windows: dict[int, list[int]] = {v: [] for v in self.videos}
        for i, w in enumerate(cache.windows):
            if w.video in self.windows:
                self.windows[w.video].append(i)
        self.epoch = 0
        if not self.videos:
            raise ManifestError("no training videos (empty training split?)")

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.videos) * self.per_video

    def video_of(self, index: int) -> int:
        return self.videos[index // self.per_video]

    def view_rng(self, index: int) -> tuple[int, np.random.Generator]:
        """(view id or -1, the RNG that picks window, crop and flip of this item)."""
        video = self.video_of(index)
        if not self.views:
            return -1, item_rng(self.seed, 0, self.epoch, index)
        view = int(item_rng(self.seed, 1, self.epoch, index).integers(self.views))
        return view, self.fixed_view_rng(video, view)

    def fixed_view_rng(self, video: int, view: int) -> np.random.Generator:
        return item_rng(self.seed, 2, video, view)

    def render(self, video: int, rng: np.random.Generator) -> tuple[int, np.ndarray]:
        """(window id, normalised (3, T, S, S) input) of one view."""
        wins = self.windows[video]
        wid = wins[int(rng.integers(len(wins)))]
        crop = random_view(self.cache.clip(wid), self.spec.size, rng)
        return wid, normalize(self.spec, crop[None])[0]

    def __getitem__(self, index: int) -> dict:
        video = self.video_of(index)
        view, rng = self.view_rng(index)
        wid, x = self.render(video, rng)
        return {"x": torch.from_numpy(x), "label": self.window_label(video, wid),
                "side": torch.from_numpy(cached_side(self.cache, self.rows, wid)),
                "video": video, "window": wid, "view": view}

    def window_label(self, video: int, window: int) -> float:
        """Mean per-frame label over the window's frames, else the video's label."""
        per_frame = self.frame_labels[video]
        if per_frame is None:
            return self.labels[video]
        idx = [i for i in self.cache.windows[window].frame_indices if i < len(per_frame)]
        return float(np.mean(per_frame[idx])) / 100.0 if idx else self.labels[video]


class EvalWindows(Dataset):
    """Every (window, spec crop) pair of some videos; a video's score = mean of its items."""

    def __init__(self, cache: WindowCache, rows: Sequence[ManifestRow], videos: Sequence[int]):
        self.cache, self.spec = cache, cache.spec
        k = self.spec.crops_per_window
        self.items = [(w, c) for w in cache.windows_of(videos) for c in range(k)]
        self.labels = [_label(r) for r in rows]
        self.rows = rows

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict:
        wid, c = self.items[index]
        crops = crop_clip(self.spec, np.asarray(self.cache.clip(wid)))
        x = normalize(self.spec, crops[c : c + 1])[0]
        video = self.cache.windows[wid].video
        return {"x": torch.from_numpy(x), "label": self.labels[video], "video": video,
                "side": torch.from_numpy(cached_side(self.cache, self.rows, wid)),
                "window": wid, "view": c}


def window_side(row: ManifestRow, window, info: VideoInfo) -> np.ndarray:
    """The bitstream side input of one training window: what the runtime computes from the
    file (`Scorer`: `side_vector` of the window's bits and the coded/display size).

    Except for a resolution-ladder rung of the synthetic corpus, which is stored upscaled
    as lossless FFV1 (its own bitstream is gone): its bits come from the manifest's `kbps`
    of the original encode and its coded size from `resolution`, i.e. what
    `vqa-score --display WxH` computes from the rung's real file (`vqa-data rungs`).
    `window` needs `bits` and `span_frames`.
    """
    if codec_family(info.codec) in CODEC_FAMILIES or codec_family(row.codec) not in CODEC_FAMILIES:
        return side_vector(window.bits, window.span_frames, *info.coded_size, info.codec,
                           (info.width, info.height))
    try:
        kbps = float(row.extra.get("kbps") or "nan")
        cw, ch = (int(v) for v in (row.resolution or "").split("x"))
    except ValueError:
        return side_vector(None, 0, 0, 0, None)
    if not math.isfinite(kbps) or kbps <= 0:
        return side_vector(None, 0, 0, 0, None)
    bits = kbps * 1000.0 / info.fps * window.span_frames
    return side_vector(bits, window.span_frames, cw, ch, row.codec, (info.width, info.height))


def cached_side(cache: WindowCache, rows: Sequence[ManifestRow], wid: int) -> np.ndarray:
    """`window_side` of a cached window (zeros for a cache without bitstream info)."""
    w = cache.windows[wid]
    vi = cache.video_info[w.video] if w.video < len(cache.video_info) else {}
    if not vi:
        return side_vector(None, 0, 0, 0, None)
    info = VideoInfo(int(vi["width"]), int(vi["height"]), float(vi["fps"]), None, "",
                     str(vi["codec"]))
    return window_side(rows[w.video], SimpleNamespace(bits=w.bits, span_frames=w.span), info)


def _label(row: ManifestRow) -> float:
    return float("nan") if row.mos is None else float(row.mos) / 100.0


FRAME_LABELS_COLUMN = "mos_frames"


def frame_labels(row: ManifestRow) -> np.ndarray | None:
    """Per-frame labels of a row (`mos_frames`: space-separated, MOS scale), or None."""
    text = row.extra.get(FRAME_LABELS_COLUMN, "").strip()
    if not text:
        return None
    try:
        values = np.array([float(v) for v in text.split()], dtype=np.float64)
    except ValueError:
        raise ManifestError(f"{row.path}: {FRAME_LABELS_COLUMN} is not a list of numbers") from None
    if not np.all(np.isfinite(values)):
        raise ManifestError(f"{row.path}: {FRAME_LABELS_COLUMN} has non-finite values")
    return values


# ---------------------------------------------------------------------------- loaders
def seed_worker(worker_id: int) -> None:
    """Seed numpy/random in a worker from torch's per-worker seed; one thread each."""
    s = torch.initial_seed() % 2**32
    np.random.seed(s)
    random.seed(s)
    torch.set_num_threads(1)


class ShardSampler(Sampler[int]):
    """Eval sharding without padding: rank r gets items r, r + world, ... (none twice)."""

    def __init__(self, n: int, rank: int = 0, world: int = 1):
        self.idx = list(range(rank, n, world))

    def __iter__(self):
        return iter(self.idx)

    def __len__(self) -> int:
        return len(self.idx)


def train_loader(ds: Dataset, batch_size: int, seed: int, epoch: int, workers: int = 0,
                 rank: int = 0, world: int = 1) -> DataLoader:
    """Shuffled loader for one epoch: the order depends only on (seed, epoch)."""
    single_threaded_opencv()  # workers fork from this process: no OpenCV pool to inherit
    if hasattr(ds, "set_epoch"):
        ds.set_epoch(epoch)
    sampler = DistributedSampler(ds, num_replicas=world, rank=rank, shuffle=True, seed=seed)
    sampler.set_epoch(epoch)
    g = torch.Generator().manual_seed(seed * 1000003 + epoch)
    return DataLoader(ds, batch_size=batch_size, sampler=sampler, num_workers=workers,
                      worker_init_fn=seed_worker, generator=g, drop_last=False,
                      persistent_workers=False, multiprocessing_context=_worker_context(workers))


def eval_loader(ds: Dataset, batch_size: int, workers: int = 0, rank: int = 0,
                world: int = 1) -> DataLoader:
    single_threaded_opencv()  # workers fork from this process: no OpenCV pool to inherit
    return DataLoader(ds, batch_size=batch_size, sampler=ShardSampler(len(ds), rank, world),
                      num_workers=workers, worker_init_fn=seed_worker,
                      multiprocessing_context=_worker_context(workers))


def _worker_context(workers: int) -> str | None:
    """Workers start from a forkserver, not a fork of this process: a fork inherits the
    parent's OpenMP/OpenCV/ONNX Runtime thread pools mid-state and can deadlock (seen
    here). The datasets re-open their memory map in the worker, so startup stays cheap."""
    return "forkserver" if workers > 0 else None


def split_videos(rows: Sequence[ManifestRow]) -> dict[str, list[int]]:
    """Video indices per split; rows without a split count as training data."""
    out: dict[str, list[int]] = {"train": [], "val": [], "test": []}
    for i, r in enumerate(rows):
        out.setdefault(r.split or "train", []).append(i)
    return out


def heldout_split(splits: dict[str, list[int]]) -> str | None:
    """The split to select checkpoints on: val when present, else test."""
    for name in ("val", "test"):
        if splits.get(name):
            return name
    return None
