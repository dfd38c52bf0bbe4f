"""The peers as `vqa-bench` engines: `--peer brisque`, `--peer niqe`, `--peer libvmaf`.

Each peer scores every video of the split and is reported with the figures the learned
engines get, through the same function (`bench.accuracy`: SRCC, KRCC, PLCC linear and
logistic, RMSE, RD-order accuracy, mean within-source SRCC), plus its speed.

Frames. BRISQUE and NIQE score every frame the clip spec samples (the runtime's own video
reading: `open_video` + `iter_windows`, the engine's clip spec at native resolution, as the
features+ridge baseline does; each sampled frame once, however many windows share it),
on 8-bit BT.601 luma. The video's score is the mean over its frames. Both metrics are
lower = better, so the engine's prediction is the negated mean (higher = better, like every
engine); the raw mean is kept beside it. A frame without defined statistics (a flat or
black frame) is skipped and counted; a video with no scorable frame fails. NIQE needs
frames larger than 192x192 and says so for smaller videos.

libvmaf (full reference) runs where the manifest row names its reference: the `reference`
column (what `vqa-data label` and the synthetic corpus write; `ref` is accepted too),
relative to the manifest's folder. It calls `internvqa.distill.corpus.vmaf.label_pair`
(imageio-ffmpeg's static FFmpeg with libvmaf, torch-free) and reports pooled VMAF v0.6.1;
rows without a reference are reported as 'needs reference', not as failures. On a corpus
whose MOS *is* VMAF (the synthetic corpus) it is the label itself: a sanity row.

Speed: `ms_per_frame` is the metric alone per frame (decoding excluded; libvmaf: the whole
FFmpeg run divided by its frames), `e2e_s_per_video` the whole per-video cost.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from internvqa.runtime.clipspec import ClipSpec
from internvqa.runtime.errors import InternVQAError, UsageError, VideoError
from internvqa.runtime.manifest import ManifestRow

PEER_NAMES = ("brisque", "niqe", "libvmaf")
REFERENCE_COLUMNS = ("reference", "ref")


@dataclass
class PeerVideo:
    pred: float | None = None
    raw: float | None = None
    frames: int = 0
    skipped_frames: int = 0
    metric_s: float = 0.0
    error: str | None = None
    note: str | None = None  # e.g. "needs reference": not scored, not a failure


@dataclass
class FramePeer:
    """A per-frame NR metric (lower = better) pooled by the mean and negated."""

    name: str
    label: str
    model: Any  # BrisqueModel | NiqeModel: .score(rgb) -> float
    source: str
    undefined: tuple[type[Exception], ...] = ()  # frames the metric cannot score: skipped
    check_size: Any = None  # callable(width, height, what) raising ValueError for small frames
    info: dict[str, Any] = field(default_factory=dict)

    def score_video(self, path: Path, spec: ClipSpec) -> PeerVideo:
        out = PeerVideo()
        raw: list[float] = []
        try:
            for rgb in sampled_frames(path, spec, self.check_size):
                t0 = time.perf_counter()
                try:
                    raw.append(self.model.score(rgb))
                except self.undefined:
                    out.skipped_frames += 1
                out.metric_s += time.perf_counter() - t0
        except InternVQAError as exc:
            out.error = " ".join(str(exc).split())
            return out
        out.frames = len(raw)
        if not raw:
            out.error = (f"{path}: no frame with defined {self.label} statistics "
                         f"({out.skipped_frames} flat or black frames)")
            return out
        out.raw = float(np.mean(raw))
        out.pred = -out.raw
        return out


@dataclass
class VmafPeer:
    """Full-reference libvmaf on rows that name their reference."""

    name: str = "libvmaf"
    label: str = "libvmaf VMAF (full reference)"
    source: str = "libvmaf vmaf_v0.6.1 via imageio-ffmpeg's static FFmpeg"
    info: dict[str, Any] = field(default_factory=dict)

    def score_row(self, row: ManifestRow, threads: int | None = None) -> PeerVideo:
        from internvqa.distill.corpus.vmaf import label_pair

        ref = reference_of(row)
        if ref is None:
            return PeerVideo(note="needs reference")
        t0 = time.perf_counter()
        try:
            labels = label_pair(row.abspath, ref, threads=threads or 1, ms_ssim=False)
        except InternVQAError as exc:
            return PeerVideo(error=" ".join(str(exc).split()))
        return PeerVideo(pred=labels.vmaf, raw=labels.vmaf, frames=labels.frames,
                         metric_s=time.perf_counter() - t0)


class SmallFrames(VideoError):
    """The video's frames are too small for the metric."""


def sampled_frames(path: str | Path, spec: ClipSpec, check_size=None) -> Iterator[np.ndarray]:
    """Every frame the clip spec samples, once each, RGB uint8 at native resolution."""
    from internvqa.bench.baseline import native_spec
    from internvqa.runtime.video import iter_windows, open_video

    seen: set[int] = set()
    with open_video(path) as src:
        if check_size is not None:
            try:
                check_size(src.info.width, src.info.height, f"video {path}")
            except ValueError as exc:
                raise SmallFrames(f"{path}: {exc}") from None
        for w in iter_windows(src, native_spec(spec)):
            for idx, rgb in zip(w.frame_indices, w.clip, strict=True):
                if idx not in seen:
                    seen.add(idx)
                    yield rgb


def reference_of(row: ManifestRow) -> Path | None:
    """The row's reference video (`reference` / `ref` column), resolved like its path."""
    for key in REFERENCE_COLUMNS:
        value = (row.extra.get(key) or "").strip()
        if value:
            p = Path(value)
            return p if p.is_absolute() else ((row.root or Path.cwd()) / p).resolve()
    return None


def load_peer(name: str, cache: str | Path | None = None):
    """The engine for a peer name; BRISQUE/NIQE read their pinned parameters here."""
    from .params import BRISQUE_SVR, NIQE_PRISTINE

    if name == "brisque":
        from . import brisque

        return FramePeer("brisque", "BRISQUE", brisque.BrisqueModel.load(cache),
                         f"{BRISQUE_SVR.requirement} {BRISQUE_SVR.member} ({BRISQUE_SVR.licence})",
                         undefined=(brisque.BrisqueUndefined,), check_size=brisque.check_size,
                         info={"sha256": BRISQUE_SVR.sha256, "sign": "negated (lower raw = better)"})
    if name == "niqe":
        from . import niqe

        return FramePeer("niqe", "NIQE", niqe.NiqeModel.load(cache),
                         f"{NIQE_PRISTINE.requirement} {NIQE_PRISTINE.member} "
                         f"({NIQE_PRISTINE.licence})",
                         undefined=(niqe.NiqeUndefined,), check_size=niqe.check_size,
                         info={"sha256": NIQE_PRISTINE.sha256, "sign": "negated (lower raw = better)",
                               "min_frame": f"larger than {niqe.MIN_SIDE}x{niqe.MIN_SIDE}"})
    if name == "libvmaf":
        from internvqa.distill.corpus.vmaf import ffmpeg_exe

        ffmpeg_exe()  # no libvmaf FFmpeg: one line now, before any video is read
        return VmafPeer()
    raise UsageError(f"unknown peer {name!r}; known: {', '.join(PEER_NAMES)}")


def evaluate_peer(peer: FramePeer | VmafPeer, rows: Sequence[ManifestRow], spec: ClipSpec,
                  progress: bool = True, threads: int | None = None) -> dict[str, Any]:
    """The peer's block of a bench result: per-video scores, accuracy, speed, failures.

    `peer` comes from `load_peer` (so a missing parameter file stops the run before any
    work); `threads` is libvmaf's thread count (default: every core)."""
    from tqdm import tqdm

    from internvqa.bench.bench import accuracy
    from internvqa.runtime.scorer import available_cores

    preds: list[float | None] = []
    scores, failures, skipped = [], [], []
    secs: list[float] = []
    metric_s, frames, skipped_frames = 0.0, 0, 0
    for row in tqdm(rows, desc=f"peer {peer.name}", unit="video", disable=not progress,
                    leave=False):
        t0 = time.perf_counter()
        if isinstance(peer, VmafPeer):
            v = peer.score_row(row, threads or available_cores())
        else:
            v = peer.score_video(row.abspath, spec)
        if v.note is None:
            secs.append(time.perf_counter() - t0)
        preds.append(v.pred)
        metric_s += v.metric_s
        frames += v.frames
        skipped_frames += v.skipped_frames
        if v.error:
            failures.append({"path": row.path, "error": v.error})
        if v.note:
            skipped.append({"path": row.path, "reason": v.note})
        scores.append({"path": row.path, "mos": row.mos, "pred": v.pred, "raw": v.raw,
                       "frames": v.frames})
    block: dict[str, Any] = {
        "name": peer.name, "label": peer.label, "source": peer.source, **peer.info,
        "accuracy": accuracy(preds, rows),
        "e2e_s_per_video": float(np.mean(secs)) if secs else None,
        "ms_per_frame": 1000.0 * metric_s / frames if frames else None,
        "frames": frames, "skipped_frames": skipped_frames,
        "scores": scores, "failures": failures, "skipped": skipped,
    }
    if skipped and len(skipped) == len(rows):
        block["note"] = (f"needs reference: no row of the manifest names one (a "
                         f"'{REFERENCE_COLUMNS[0]}' column, as `vqa-data label` writes)")
    elif skipped:
        block["note"] = f"{len(skipped)} of {len(rows)} videos not scored: needs reference"
    if failures and len(failures) == len(rows) - len(skipped):
        block["note"] = f"no video scored: {failures[0]['error']}"
    return block
