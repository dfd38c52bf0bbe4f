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
from functools import lru_cache
from multiprocessing import get_context
from pathlib import Path

import av
import cv2
import numpy as np

from internvqa.distill.corpus.fr_metrics import clip_fr_metrics
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
from internvqa.runtime.errors import UsageError, VideoError
from internvqa.runtime.manifest import ManifestRow, write_manifest

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


_DEMO_SOURCES = ("astronaut", "chelsea", "coffee", "rocket", "brick", "grass", "horse",
                 "gradient_checker", "plasma", "shapes")
_DEMO = Preset("demo", 224, 128, 40, 20, _DEMO_SOURCES,
               res_ladder=((2, "libx264", (23, 33, 43)), (2, "libsvtav1", (40, 52, 63))))
PRESETS: dict[str, Preset] = {
    "demo": _DEMO,
    # The demo's size, ladders and clip length with every source (18): 540 clips, for
    # experiments on how much content diversity the demo models need (benchmarks/RESULTS.md).
    "demo-all": replace(_DEMO, name="demo-all", sources=(*NATURAL_SOURCES, *PROCEDURAL_SOURCES)),
    "small": Preset("small", 320, 180, 48, 24, (*NATURAL_SOURCES, *PROCEDURAL_SOURCES),
                    res_ladder=((2, "libx264", (23, 33, 43)), (2, "libvpx-vp9", (30, 45, 58)))),
    "full": Preset("full", 1280, 720, 96, 24, (*NATURAL_SOURCES, *PROCEDURAL_SOURCES),
                   res_ladder=tuple((f, c, crfs) for f in (2, 4) for c, crfs in (
                       ("libx264", (23, 33, 43)), ("libx265", (23, 33, 43)),
                       ("libvpx-vp9", (30, 45, 58)), ("libsvtav1", (30, 45, 58))))),
}


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

    @property
    def resolution(self) -> str:
        return f"{self.enc_width}x{self.enc_height}"

    @property
    def upscaled(self) -> bool:
        return (self.enc_width, self.enc_height) != (self.width, self.height)

    @property
    def clip_id(self) -> str:
        return f"{self.source}/{self.codec}_{self.resolution}_crf{self.crf}"

    @property
    def relpath(self) -> str:
        ext = "mkv" if self.upscaled else CODECS[self.codec].ext
        return f"clips/{self.clip_id}.{ext}"


def plan_jobs(preset: Preset, seed: int) -> list[ClipJob]:
    """Every clip of a preset in a fixed order (source-major, so workers reuse sources)."""
    jobs = []
    for src in preset.sources:
        common = dict(source=src, width=preset.width, height=preset.height,
                      frames=preset.frames, fps=preset.fps, seed=seed)
        for codec, crfs in preset.ladders.items():
            jobs += [ClipJob(codec=codec, crf=c, enc_width=preset.width, enc_height=preset.height, **common)
                     for c in crfs]
        for factor, codec, crfs in preset.res_ladder:
            w, h = _even(preset.width / factor), _even(preset.height / factor)
            jobs += [ClipJob(codec=codec, crf=c, enc_width=w, enc_height=h, **common) for c in crfs]
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


def pseudo_mos(psnr_y: float, ssim: float, ms_ssim: float) -> float:
    """The documented FR -> 0..100 mapping (module docstring); `ssim` is informative only."""
    p = PSEUDO_MOS
    ms_db = -10.0 * math.log10(max(1.0 - ms_ssim, 1e-10))
    q = p["ms_ssim_weight"] * ms_db + (1 - p["ms_ssim_weight"]) * (psnr_y - p["psnr_offset"]) / p["psnr_scale"]
    return 100.0 / (1.0 + math.exp(-(q - p["q0"]) / p["s"]))


# ---------------------------------------------------------------------------- encoding


Planes = tuple[np.ndarray, np.ndarray, np.ndarray]


@lru_cache(maxsize=3)
def _reference(source: str, width: int, height: int, frames: int, fps: int, seed: int) -> tuple[Planes, ...]:
    rgb = render_source(SourceSpec(source, width, height, frames, fps), seed)
    return tuple(rgb_to_yuv420(f) for f in rgb)


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
    ref = _reference(job.source, job.width, job.height, job.frames, job.fps, job.seed)
    setup = CODECS[job.codec]
    src = list(ref) if not job.upscaled else [
        _resize_planes(p, job.enc_width, job.enc_height, cv2.INTER_AREA) for p in ref]
    tmp = final.with_name(f".{final.stem}.tmp{os.getpid()}.{setup.ext}")
    tmp_store = final.with_name(f".{final.stem}.tmp{os.getpid()}.mkv")
    try:
        _write(tmp, setup.container, job.codec, {**setup.options, "crf": str(job.crf)}, src, job.fps)
        bitstream_bytes = tmp.stat().st_size
        decoded = _read(tmp)
        if len(decoded) != job.frames:
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
    fr = clip_fr_metrics([p[0] for p in ref], [p[0] for p in decoded])
    mos = pseudo_mos(fr["psnr_y"], fr["ssim"], fr["ms_ssim"])
    seconds = job.frames / job.fps
    return {
        "id": job.clip_id,
        "path": job.relpath,
        "file_bytes": final.stat().st_size,
        "kbps": round(bitstream_bytes * 8 / seconds / 1000, 3),
        "psnr_y": round(fr["psnr_y"], 4),
        "ssim": round(fr["ssim"], 6),
        "ms_ssim": round(fr["ms_ssim"], 6),
        "mos": round(mos, 3),
    }


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


def _check_config(out_dir: Path, preset: Preset, seed: int) -> None:
    cfg_path = out_dir / ".build.json"
    cfg = {"format_version": FORMAT_VERSION, "preset": preset.name, "seed": seed,
           "size": [preset.width, preset.height], "frames": preset.frames, "fps": preset.fps,
           "pseudo_mos": PSEUDO_MOS}
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


def run_build(
    out_dir: str | os.PathLike,
    preset: str = "demo",
    seed: int = 0,
    workers: int | None = None,
    on_clip: Callable[[int, int], None] | None = None,
) -> BuildResult:
    """Build (or finish building) a corpus; `on_clip(done, total)` reports progress."""
    if preset not in PRESETS:
        raise UsageError(f"unknown preset {preset!r} (choose from {', '.join(PRESETS)})")
    p = PRESETS[preset]
    _check_sources(p)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    _check_config(out_dir, p, seed)
    t0 = time.perf_counter()
    jobs = plan_jobs(p, seed)
    progress = out_dir / ".progress.jsonl"
    _remove_stale_temps(out_dir)
    done = _load_done(progress, out_dir, {j.clip_id for j in jobs})
    todo = [j for j in jobs if j.clip_id not in done]
    reused = len(jobs) - len(todo)
    if on_clip:
        on_clip(reused, len(jobs))
    workers = max(1, min(workers or min(2, os.cpu_count() or 1), len(todo) or 1))

    def record(rec: dict) -> None:
        append_line(progress, json.dumps(rec, sort_keys=True))
        done[rec["id"]] = rec
        if on_clip:
            on_clip(len(done), len(jobs))

    if workers == 1:
        for j in todo:
            record(encode_clip(j, out_dir))
    else:
        with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("fork")) as pool:
            futures = [pool.submit(encode_clip, j, out_dir) for j in todo]
            try:
                for fut in as_completed(futures):
                    record(fut.result())
            except BaseException:
                for f in futures:
                    f.cancel()
                raise

    splits = split_sources(p.sources, seed)
    rows = []
    for j in jobs:
        rec = done[j.clip_id]
        rows.append(ManifestRow(
            path=rec["path"], mos=rec["mos"], source=j.source, codec=j.codec, crf=float(j.crf),
            width=j.width, height=j.height, split=splits[j.source], resolution=j.resolution,
            extra={k: str(rec[k]) for k in ("psnr_y", "ssim", "ms_ssim", "kbps")},
        ))
    manifest = out_dir / "manifest.csv"
    write_manifest(rows, manifest)
    atomic_write_json(out_dir / "manifest.json", _sidecar(p, seed, splits))
    counts: dict[str, int] = {}
    for r in rows:
        counts[r.split] = counts.get(r.split, 0) + 1
    return BuildResult(manifest, len(rows), len(todo), reused, len(p.sources),
                       list(p.ladders), time.perf_counter() - t0, counts)


def _check_sources(p: Preset) -> None:
    if any(s in NATURAL_SOURCES for s in p.sources):
        try:
            import skimage.data  # noqa: F401
        except ImportError:
            raise UsageError(
                "scikit-image is required to build the synthetic corpus: pip install 'internvqa[dev]'"
            ) from None


def _sidecar(p: Preset, seed: int, splits: dict[str, str]) -> dict:
    """What a reader of the manifest needs to know about how it was made."""
    return {
        "kind": "internvqa-synthetic-corpus",
        "format_version": FORMAT_VERSION,
        "preset": p.name,
        "seed": seed,
        "display_size": [p.width, p.height],
        "frames": p.frames,
        "fps": p.fps,
        "mos_scale": [0, 100],
        "mos_formula": PSEUDO_MOS_FORMULA,
        "mos_params": PSEUDO_MOS,
        "fr_metrics": "mean per-frame PSNR-Y, SSIM (11x11 Gaussian, sigma 1.5) and MS-SSIM on BT.601 Y",
        "labels_reference": "the lossless source, as the encoder saw it (BT.601 limited-range YUV 4:2:0)",
        "ladders": {c: list(v) for c, v in p.ladders.items()},
        "resolution_ladder": [
            {"downscale": f, "codec": c, "crf": list(v),
             "stored_as": "decoded, bicubic upscale to display size, FFV1 in Matroska (lossless)"}
            for f, c, v in p.res_ladder
        ],
        "codec_options": {c: asdict(s) for c, s in CODECS.items()},
        "splits": splits,
        "pyav": av.__version__,
    }


def build_corpus(out_dir: str | os.PathLike, preset: str = "demo", seed: int = 0,
                 workers: int | None = None) -> Path:
    """Build the corpus into `out_dir` (resuming a partial build) and return the manifest."""
    return run_build(out_dir, preset, seed, workers).manifest
