"""Video input: files (anything PyAV decodes, `.y4m` included), raw YUV, in-memory frames.

Every source yields `Frame` objects that are *lazy*: decoding happens, but colour
conversion and resizing run only for the frames a clip window samples (see
`ClipSpec`), and frames are streamed, so memory stays flat with video length.

`iter_windows(source, spec)` is the single entry point that turns any source into clip
windows; training caches, calibration and the runtime all go through it.
"""

from __future__ import annotations

import math
import os
import sys
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import cv2
import numpy as np

from internvqa.runtime.clipspec import (
    MATRICES,
    RANGES,
    ClipSpec,
    WindowPlan,
    WindowPlanner,
    check_frame_size,
    crop_offsets,
    resize_rgb,
    resolve_color,
    yuv_to_rgb,
)
from internvqa.runtime.errors import UsageError, VideoError

# (chroma x-shift, chroma y-shift, bit depth) of the planar formats converted natively.
_PLANAR = {
    "yuv420p": (1, 1, 8),
    "yuvj420p": (1, 1, 8),
    "yuv422p": (1, 0, 8),
    "yuvj422p": (1, 0, 8),
    "yuv444p": (0, 0, 8),
    "yuvj444p": (0, 0, 8),
    "yuv420p10le": (1, 1, 10),
    "yuv422p10le": (1, 0, 10),
    "yuv444p10le": (0, 0, 10),
    "yuv420p12le": (1, 1, 12),
}
RAW_PIX_FMTS = ("yuv420p", "yuv420p10le", "nv12", "yuv422p", "yuv444p")

# PyAV colour metadata codes (FFmpeg AVColorSpace / AVColorRange).
_AV_MATRIX = {1: "bt709", 5: "bt601", 6: "bt601"}
_AV_RANGE = {1: "limited", 2: "full"}


@dataclass
class VideoInfo:
    """What is known about a source before decoding it."""

    width: int
    height: int
    fps: float
    num_frames: int | None
    pix_fmt: str
    codec: str = ""
    name: str = ""
    coded_width: int = 0  # the file's frame size when frames are upscaled for display
    coded_height: int = 0  # (`DisplaySource`); 0: same as width x height

    @property
    def coded_size(self) -> tuple[int, int]:
        return (self.coded_width or self.width, self.coded_height or self.height)


class Frame:
    """One decoded frame whose pixels are produced on demand, resized for the spec."""

    __slots__ = ("index", "time", "bits", "_planes", "_rgb", "_av", "_fmt", "_matrix", "_range")

    def __init__(
        self,
        index: int,
        time: float,
        *,
        planes: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
        rgb: np.ndarray | None = None,
        av_frame: object | None = None,
        pix_fmt: str = "yuv420p",
        matrix: str = "auto",
        color_range: str = "auto",
        bits: int | None = None,
    ):
        self.index = index
        self.time = time
        self.bits = bits  # coded size of this frame in bits (its packet), None if unknown
        self._planes = planes
        self._rgb = rgb
        self._av = av_frame
        self._fmt = pix_fmt
        self._matrix = matrix
        self._range = color_range

    @property
    def size(self) -> tuple[int, int]:
        if self._rgb is not None:
            return self._rgb.shape[1], self._rgb.shape[0]
        if self._planes is not None:
            return self._planes[0].shape[1], self._planes[0].shape[0]
        return self._av.width, self._av.height  # type: ignore[union-attr]

    def to_rgb(self, spec: ClipSpec, crop_only: bool = False) -> np.ndarray:
        """uint8 RGB, resized as the spec says (short side), not yet cropped.

        `crop_only=True` (scoring, calibration: callers that only need the model input)
        returns just the band of the frame the spec's crops cover, converting only that
        band when no resize is involved (native-scale specs on large frames). The crops
        taken from the band are bit-identical to those taken from the full frame.
        """
        w, h = self.size
        out = spec.resized_size(w, h)
        region = _crop_region(spec, w, h) if crop_only and out == (w, h) else None
        if self._rgb is not None:
            rgb = resize_rgb(self._rgb, out)
            return _slice(rgb, region) if region else rgb
        planes, depth, fmt = self._planes, 8, self._fmt
        if planes is None:
            planes, depth, fmt = _av_planes(self._av)
            if planes is None:  # a format we don't convert natively: let swscale do it
                rgb = resize_rgb(self._av.to_ndarray(format="rgb24"), out)  # type: ignore[union-attr]
                return _slice(rgb, region) if region else rgb
        else:
            depth = 8 if planes[0].dtype == np.uint8 else int(self._fmt_depth())
        matrix = spec.color_matrix if spec.color_matrix != "auto" else self._matrix
        rng = spec.color_range if spec.color_range != "auto" else self._range
        if rng == "auto" and fmt.startswith("yuvj"):
            rng = "full"
        matrix, rng = resolve_color(matrix, rng, h)
        y, u, v = planes
        kw = {"bit_depth": depth, "matrix": matrix, "color_range": rng}
        if region is not None:
            band = _convert_region(y, u, v, region, kw)
            if band is not None:
                return band
        rgb = yuv_to_rgb(y, u, v, out_size=out, **kw)
        return _slice(rgb, region) if region else rgb

    def upscaled(self, width: int, height: int) -> Frame:
        """This frame resized to (width, height) bicubically, plane by plane (chroma keeps
        its subsampling): how the corpus stores a resolution-ladder rung for viewing."""
        if self._rgb is not None:
            rgb = cv2.resize(self._rgb, (width, height), interpolation=cv2.INTER_CUBIC)
            return Frame(self.index, self.time, rgb=rgb, bits=self.bits)
        planes, fmt = self._planes, self._fmt
        if planes is None:
            planes, _, fmt = _av_planes(self._av)
            if planes is None:
                rgb = self._av.to_ndarray(format="rgb24")  # type: ignore[union-attr]
                rgb = cv2.resize(rgb, (width, height), interpolation=cv2.INTER_CUBIC)
                return Frame(self.index, self.time, rgb=rgb, bits=self.bits)
        y, u, v = planes
        sx = 0 if u.shape[1] == y.shape[1] else 1
        sy = 0 if u.shape[0] == y.shape[0] else 1
        cw, ch = (width + sx) >> sx, (height + sy) >> sy
        out = (cv2.resize(np.ascontiguousarray(y), (width, height), interpolation=cv2.INTER_CUBIC),
               cv2.resize(np.ascontiguousarray(u), (cw, ch), interpolation=cv2.INTER_CUBIC),
               cv2.resize(np.ascontiguousarray(v), (cw, ch), interpolation=cv2.INTER_CUBIC))
        if fmt == "nv12":
            fmt = "yuv420p"
        return Frame(self.index, self.time, planes=out, pix_fmt=fmt, matrix=self._matrix,
                     color_range=self._range, bits=self.bits)

    def _fmt_depth(self) -> int:
        if self._fmt in _PLANAR:
            return _PLANAR[self._fmt][2]
        return 10


def _crop_region(spec: ClipSpec, w: int, h: int) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1): the union of the spec's crops of a w x h frame."""
    offs = crop_offsets(spec, w, h)
    s = spec.size
    return (min(x for x, _ in offs), min(y for _, y in offs),
            max(x for x, _ in offs) + s, max(y for _, y in offs) + s)


def _slice(rgb: np.ndarray, region: tuple[int, int, int, int]) -> np.ndarray:
    x0, y0, x1, y1 = region
    return np.ascontiguousarray(rgb[y0:y1, x0:x1])


_MARGIN = 4  # luma pixels of context around a region, so chroma interpolation sees real neighbours


def _convert_region(y, u, v, region, kw) -> np.ndarray | None:
    """Convert only `region` of planar YUV, exactly as the full-frame conversion would.

    Exact when chroma is an integer subsampling of luma (even sizes for 4:2:0): the
    sub-planes start on chroma-aligned offsets, so bilinear upsampling maps every pixel as
    it does on the full plane, and a margin gives edge pixels their true neighbours.
    Returns None when that does not hold (odd sizes): the caller converts the full frame.
    """
    h, w = y.shape
    ch, cw = u.shape
    if w % cw or h % ch:
        return None
    fx, fy = w // cw, h // ch
    if fx not in (1, 2) or fy not in (1, 2):
        return None
    x0, y0, x1, y1 = region
    rx0 = max(0, x0 - _MARGIN) // fx * fx
    ry0 = max(0, y0 - _MARGIN) // fy * fy
    rx1 = min(w, -(-(x1 + _MARGIN) // fx) * fx)
    ry1 = min(h, -(-(y1 + _MARGIN) // fy) * fy)
    sub = [y[ry0:ry1, rx0:rx1], u[ry0 // fy : ry1 // fy, rx0 // fx : rx1 // fx],
           v[ry0 // fy : ry1 // fy, rx0 // fx : rx1 // fx]]
    rgb = yuv_to_rgb(*sub, out_size=(rx1 - rx0, ry1 - ry0), **kw)
    return np.ascontiguousarray(rgb[y0 - ry0 : y1 - ry0, x0 - rx0 : x1 - rx0])


def _plane_array(plane, width: int, height: int, dtype) -> np.ndarray:
    itemsize = np.dtype(dtype).itemsize
    buf = np.frombuffer(plane, dtype=dtype)
    stride = plane.line_size // itemsize
    return buf[: stride * height].reshape(height, stride)[:, :width]


def _av_planes(frame) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray] | None, int, str]:
    """Zero-copy views of a PyAV frame's Y, U, V planes (None for other formats)."""
    fmt = frame.format.name
    w, h = frame.width, frame.height
    if fmt in _PLANAR:
        sx, sy, depth = _PLANAR[fmt]
        dtype = np.uint8 if depth == 8 else np.dtype("<u2")
        cw, ch = (w + sx) >> sx, (h + sy) >> sy
        p = frame.planes
        planes = (
            _plane_array(p[0], w, h, dtype),
            _plane_array(p[1], cw, ch, dtype),
            _plane_array(p[2], cw, ch, dtype),
        )
        return planes, depth, fmt
    if fmt == "nv12":
        p = frame.planes
        y = _plane_array(p[0], w, h, np.uint8)
        uv = _plane_array(p[1], 2 * ((w + 1) // 2), (h + 1) // 2, np.uint8)
        return (y, uv[:, 0::2], uv[:, 1::2]), 8, fmt
    if fmt == "gray":
        y = _plane_array(frame.planes[0], w, h, np.uint8)
        c = np.full((1, 1), 128, np.uint8)
        return (y, np.broadcast_to(c, y.shape), np.broadcast_to(c, y.shape)), 8, fmt
    return None, 8, fmt


def check_fps(fps: float) -> float:
    """A frame rate every source and stream accepts: finite and > 0 (else UsageError)."""
    try:
        value = float(fps)
    except (TypeError, ValueError):
        raise UsageError(f"fps must be a number, got {fps!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise UsageError(f"fps must be finite and > 0, got {fps!r}")
    return value


# ---- sources ---------------------------------------------------------------------------
class VideoSource(ABC):
    """Base class: `info` plus a lazy, single-pass `frames()` iterator."""

    info: VideoInfo
    decode_errors: int = 0

    @abstractmethod
    def frames(self) -> Iterator[Frame]:
        """Yield the decoded frames in display order, once."""

    def close(self) -> None:  # noqa: B027 - optional hook: sources holding nothing skip it
        """Release the file or stream; sources that hold none keep this no-op."""

    def __enter__(self) -> VideoSource:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class PyAVSource(VideoSource):
    """Any container/codec PyAV (FFmpeg) decodes, `.y4m` included."""

    def __init__(self, path: str | os.PathLike, threads: bool | int = True):
        """`threads`: True lets FFmpeg pick (frame + slice threads on every core), False
        keeps FFmpeg's defaults, an int n >= 1 caps the decoder at n threads (1: decode in
        the calling thread only)."""
        import av

        self.path = Path(path)
        if not self.path.exists():
            raise VideoError(f"{self.path}: no such file")
        if self.path.is_dir():
            raise VideoError(f"{self.path}: is a directory, not a video")
        if self.path.stat().st_size == 0:
            raise VideoError(f"{self.path}: empty file")
        try:
            self._container = av.open(str(self.path), mode="r")
        except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as exc:
            raise VideoError(f"{self.path}: not a readable video ({_short(exc)})") from None
        if not self._container.streams.video:
            self._container.close()
            raise VideoError(f"{self.path}: has no video stream")
        self._stream = self._container.streams.video[0]
        cc = self._stream.codec_context
        if cc is None:  # a codec id FFmpeg has no decoder for (e.g. a corrupted codec tag)
            self._container.close()
            raise VideoError(f"{self.path}: video stream has an unknown or unsupported codec")
        if threads is True:
            self._stream.thread_type = "AUTO"
        elif threads is not False:
            n = int(threads)
            if n < 1:
                self._container.close()
                raise UsageError(f"decoder threads must be >= 1, got {threads!r}")
            cc.thread_count = n
            if n > 1:
                self._stream.thread_type = "AUTO"
        w, h = int(cc.width or 0), int(cc.height or 0)
        try:
            check_frame_size(w, h)
        except VideoError as exc:
            self._container.close()
            raise VideoError(f"{self.path}: {exc}") from None
        rate = self._stream.average_rate or self._stream.guessed_rate or self._stream.base_rate
        fps = float(rate) if rate else 25.0
        n = int(self._stream.frames or 0) or None
        if n is None and self._stream.duration and self._stream.time_base:
            n = max(1, round(float(self._stream.duration * self._stream.time_base) * fps)) or None
        self.info = VideoInfo(
            width=w,
            height=h,
            fps=fps,
            num_frames=n,
            pix_fmt=cc.pix_fmt or "",
            codec=cc.name or "",
            name=self.path.name,
        )
        self.decode_errors = 0

    def count_frames(self) -> int:
        """Exact frame count by demuxing packets (no decoding); rewinds the container."""
        import av

        n = 0
        try:
            for packet in self._container.demux(self._stream):
                if packet.size:
                    n += 1
            self._container.seek(0, stream=self._stream)
        except av.error.FFmpegError as exc:
            raise VideoError(f"{self.path}: cannot read ({_short(exc)})") from None
        return n

    def frames(self) -> Iterator[Frame]:
        import av

        stream = self._stream
        tb = float(stream.time_base) if stream.time_base else 0.0
        start = stream.start_time or 0
        index = 0
        sizes = _PacketSizes()
        packets = self._container.demux(stream)
        while True:
            try:
                packet = next(packets)
            except StopIteration:
                break
            except av.error.FFmpegError:
                self.decode_errors += 1
                if self.decode_errors > 50:
                    break
                continue
            if packet.size:
                sizes.add(packet.pts, packet.size)
            try:
                decoded = packet.decode()
            except av.error.FFmpegError:
                self.decode_errors += 1
                if self.decode_errors > 50 and index == 0:
                    break
                continue
            for f in decoded:
                frame = self._wrap(f, index, tb, start)
                frame.bits = sizes.take(f.pts)
                yield frame
                index += 1
        if index == 0:
            raise VideoError(f"{self.path}: no decodable video frames")

    def _wrap(self, f, index: int, tb: float, start: int) -> Frame:
        if f.width != self.info.width or f.height != self.info.height:
            check_frame_size(f.width, f.height)
        t = (f.pts - start) * tb if (f.pts is not None and tb) else index / self.info.fps
        return Frame(
            index,
            float(t),
            av_frame=f,
            pix_fmt=f.format.name,
            matrix=_AV_MATRIX.get(int(getattr(f, "colorspace", 2) or 2), "auto"),
            color_range=_AV_RANGE.get(int(getattr(f, "color_range", 0) or 0), "auto"),
        )

    def close(self) -> None:
        self._container.close()


class _PacketSizes:
    """Demuxed packet sizes waiting for the frame each one decodes to.

    Matched by presentation timestamp (decoders reorder B-frames; frame threading delays
    output), in arrival order where a container has no timestamps. Bounded: a packet that
    never yields a frame (a decoder that drops it) is forgotten after `limit` packets.
    """

    def __init__(self, limit: int = 512):
        self._by_pts: dict[int, int] = {}
        self._untimed: list[int] = []
        self._limit = limit

    def add(self, pts: int | None, size: int) -> None:
        if pts is None:
            self._untimed.append(int(size))
            del self._untimed[: max(0, len(self._untimed) - self._limit)]
            return
        self._by_pts[int(pts)] = self._by_pts.get(int(pts), 0) + int(size)
        if len(self._by_pts) > self._limit:
            del self._by_pts[min(self._by_pts)]

    def take(self, pts: int | None) -> int | None:
        """Bits of the packet that produced the frame at `pts` (None when unknown)."""
        if pts is not None and int(pts) in self._by_pts:
            return 8 * self._by_pts.pop(int(pts))
        if self._untimed:
            return 8 * self._untimed.pop(0)
        return None


class DisplaySource(VideoSource):
    """A source watched at another size: every frame upscaled (bicubic) to `display`.

    For a resolution-ladder rung (e.g. a 320x180 encode of a 640x360 title): the model
    then sees what a viewer sees and what libvmaf compared, while each frame keeps its
    coded size in bits and `info.coded_size` stays the file's (the bitstream side input
    counts bits per *coded* pixel)."""

    def __init__(self, source: VideoSource, display: tuple[int, int]):
        w, h = (int(display[0]), int(display[1]))
        check_frame_size(w, h)
        self.source = source
        i = source.info
        self.info = VideoInfo(w, h, i.fps, i.num_frames, i.pix_fmt, i.codec, i.name,
                              coded_width=i.width, coded_height=i.height)

    def frames(self) -> Iterator[Frame]:
        w, h = self.info.width, self.info.height
        for f in self.source.frames():
            yield f if f.size == (w, h) else f.upscaled(w, h)

    @property
    def decode_errors(self) -> int:
        return int(getattr(self.source, "decode_errors", 0))

    def count_frames(self) -> int:
        return self.source.count_frames()  # type: ignore[attr-defined]

    def close(self) -> None:
        self.source.close()


def raw_frame_bytes(width: int, height: int, pix_fmt: str) -> int:
    """Bytes of one raw frame of the given size and pixel format."""
    cw, ch = (width + 1) // 2, (height + 1) // 2
    if pix_fmt in ("yuv420p", "nv12"):
        return width * height + 2 * cw * ch
    if pix_fmt == "yuv420p10le":
        return 2 * (width * height + 2 * cw * ch)
    if pix_fmt == "yuv422p":
        return width * height + 2 * cw * height
    if pix_fmt == "yuv444p":
        return 3 * width * height
    raise UsageError(f"unsupported raw pixel format {pix_fmt!r} (use one of {RAW_PIX_FMTS})")


class RawYUVSource(VideoSource):
    """Headerless planar YUV from a file or a binary stream (stdin for pipe mode)."""

    def __init__(
        self,
        path_or_stream: str | os.PathLike | BinaryIO,
        width: int,
        height: int,
        pix_fmt: str = "yuv420p",
        fps: float = 25.0,
        color_matrix: str = "auto",
        color_range: str = "auto",
    ):
        check_frame_size(width, height)
        self.frame_bytes = raw_frame_bytes(width, height, pix_fmt)
        fps = check_fps(fps)
        self._own = False
        n = None
        name = "<stdin>"
        if isinstance(path_or_stream, (str, os.PathLike)):
            p = Path(path_or_stream)
            if not p.exists():
                raise VideoError(f"{p}: no such file")
            size = p.stat().st_size
            if size == 0:
                raise VideoError(f"{p}: empty file")
            if size % self.frame_bytes:
                raise VideoError(
                    f"{p}: size {size} is not a whole number of {width}x{height} {pix_fmt} frames "
                    f"({self.frame_bytes} bytes each); check --size and --pix-fmt"
                )
            n = size // self.frame_bytes
            self._fh: BinaryIO = open(p, "rb")  # noqa: SIM115 - closed in close()
            self._own = True
            name = p.name
        else:
            self._fh = path_or_stream
        self.pix_fmt = pix_fmt
        self._matrix, self._range = color_matrix, color_range
        self.info = VideoInfo(width, height, float(fps), n, pix_fmt, "rawvideo", name)
        self.truncated = False

    def _read_exact(self, n: int) -> bytes:
        chunks, got = [], 0
        while got < n:
            b = self._fh.read(n - got)
            if not b:
                break
            chunks.append(b)
            got += len(b)
        return b"".join(chunks)

    def frames(self) -> Iterator[Frame]:
        w, h = self.info.width, self.info.height
        cw, ch = (w + 1) // 2, (h + 1) // 2
        index = 0
        while True:
            buf = self._read_exact(self.frame_bytes)
            if not buf:
                break
            if len(buf) < self.frame_bytes:
                self.truncated = True
                break
            yield Frame(
                index,
                index / self.info.fps,
                planes=_split_raw(buf, w, h, cw, ch, self.pix_fmt),
                pix_fmt=self.pix_fmt,
                matrix=self._matrix,
                color_range=self._range,
            )
            index += 1
        if index == 0:
            raise VideoError(f"{self.info.name}: no complete {w}x{h} {self.pix_fmt} frame in input")

    def close(self) -> None:
        if self._own:
            self._fh.close()


def _split_raw(buf: bytes, w: int, h: int, cw: int, ch: int, fmt: str):
    if fmt == "yuv420p10le":
        a = np.frombuffer(buf, dtype="<u2")
        y = a[: w * h].reshape(h, w)
        u = a[w * h : w * h + cw * ch].reshape(ch, cw)
        v = a[w * h + cw * ch :].reshape(ch, cw)
        return y, u, v
    a = np.frombuffer(buf, dtype=np.uint8)
    y = a[: w * h].reshape(h, w)
    if fmt == "nv12":
        uv = a[w * h :].reshape(ch, 2 * cw)
        return y, uv[:, 0::2], uv[:, 1::2]
    if fmt == "yuv422p":
        u = a[w * h : w * h + cw * h].reshape(h, cw)
        return y, u, a[w * h + cw * h :].reshape(h, cw)
    if fmt == "yuv444p":
        return y, a[w * h : 2 * w * h].reshape(h, w), a[2 * w * h :].reshape(h, w)
    u = a[w * h : w * h + cw * ch].reshape(ch, cw)
    return y, u, a[w * h + cw * ch :].reshape(ch, cw)


@dataclass
class YUVPlanes:
    """An in-memory YUV frame (planes at their own resolution) for the Python API."""

    y: np.ndarray
    u: np.ndarray
    v: np.ndarray
    bit_depth: int = 8
    matrix: str = "auto"
    color_range: str = "auto"


def frame_from_array(index: int, data: np.ndarray | YUVPlanes, fps: float = 25.0) -> Frame:
    """Validate one in-memory frame (uint8 RGB (H, W, 3) or `YUVPlanes`) into a `Frame`."""
    t = index / fps
    if isinstance(data, YUVPlanes):
        if data.bit_depth not in (8, 10):
            raise VideoError(f"frame {index}: YUVPlanes bit_depth must be 8 or 10, got {data.bit_depth!r}")
        planes = (np.asarray(data.y), np.asarray(data.u), np.asarray(data.v))
        want = np.uint8 if data.bit_depth == 8 else np.uint16
        for p in planes:
            if p.ndim != 2 or p.dtype != want:
                raise VideoError(
                    f"frame {index}: YUV planes must be 2-D {np.dtype(want).name} arrays"
                )
        h, w = planes[0].shape
        check_frame_size(w, h)
        cw, ch = (w + 1) // 2, (h + 1) // 2
        if planes[1].shape != planes[2].shape or planes[1].shape not in ((ch, cw), (h, cw), (h, w)):
            raise VideoError(
                f"frame {index}: chroma planes {planes[1].shape} and {planes[2].shape} do not fit "
                f"a {w}x{h} luma plane as 4:2:0 {(ch, cw)}, 4:2:2 {(h, cw)} or 4:4:4 {(h, w)}"
            )
        if data.matrix not in MATRICES or data.color_range not in RANGES:
            raise VideoError(
                f"frame {index}: matrix must be one of {MATRICES} and color_range one of {RANGES}"
            )
        fmt = "yuv420p" if data.bit_depth == 8 else "yuv420p10le"
        return Frame(index, t, planes=planes, pix_fmt=fmt, matrix=data.matrix,
                     color_range=data.color_range)
    arr = np.asarray(data)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise VideoError(f"frame {index}: expected an (H, W, 3) RGB array, got shape {arr.shape}")
    if arr.dtype != np.uint8:
        raise VideoError(f"frame {index}: expected uint8 RGB, got {arr.dtype} (scale to 0-255)")
    check_frame_size(arr.shape[1], arr.shape[0])
    return Frame(index, t, rgb=np.ascontiguousarray(arr))


class ArraySource(VideoSource):
    """Frames already in memory: an (N, H, W, 3) uint8 array or a sequence of frames."""

    def __init__(self, frames: np.ndarray | Sequence | Iterable, fps: float = 25.0, name: str = "<frames>"):
        fps = check_fps(fps)
        if (isinstance(frames, (str, bytes)) or not isinstance(frames, (np.ndarray, Iterable))
                or (isinstance(frames, np.ndarray) and frames.ndim == 0)):
            raise VideoError(
                f"{name}: expected frames (an (N, H, W, 3) uint8 array or a sequence of frames), "
                f"got {type(frames).__name__}"
            )
        self._frames = frames
        n = len(frames) if hasattr(frames, "__len__") else None  # type: ignore[arg-type]
        first = None
        if n == 0:
            raise VideoError(f"{name}: no frames given")
        if n:
            first = frame_from_array(0, frames[0], fps)  # type: ignore[index]
        w, h = first.size if first else (0, 0)
        self.info = VideoInfo(w, h, float(fps), n, "rgb24", "memory", name)

    def frames(self) -> Iterator[Frame]:
        index = -1
        for index, data in enumerate(self._frames):
            yield frame_from_array(index, data, self.info.fps)
        if index < 0:
            raise VideoError(f"{self.info.name}: no frames given")


def open_video(
    path: str | os.PathLike,
    *,
    size: tuple[int, int] | None = None,
    pix_fmt: str | None = None,
    fps: float | None = None,
    decode_threads: int | None = None,
    display: tuple[int, int] | None = None,
) -> VideoSource:
    """Open a video file; `.yuv` (or `size` given) means headerless raw frames.

    `decode_threads` caps FFmpeg's decoder threads (None: FFmpeg picks); `display`
    upscales every frame to that size (`DisplaySource`)."""
    src = _open_video(path, size=size, pix_fmt=pix_fmt, fps=fps, decode_threads=decode_threads)
    if display is None or tuple(display) == (src.info.width, src.info.height):
        return src
    try:
        return DisplaySource(src, display)
    except BaseException:
        src.close()
        raise


def _open_video(
    path: str | os.PathLike,
    *,
    size: tuple[int, int] | None,
    pix_fmt: str | None,
    fps: float | None,
    decode_threads: int | None,
) -> VideoSource:
    p = str(path)
    if p == "-":
        if size is None:
            raise UsageError("reading raw frames from stdin needs --size WxH")
        return RawYUVSource(sys.stdin.buffer, size[0], size[1], pix_fmt or "yuv420p", 25.0 if fps is None else fps)
    if size is not None or p.lower().endswith(".yuv"):
        if size is None:
            raise UsageError(f"{p}: raw .yuv input needs --size WxH (and --pix-fmt if not yuv420p)")
        return RawYUVSource(p, size[0], size[1], pix_fmt or "yuv420p", 25.0 if fps is None else fps)
    return PyAVSource(p, threads=True if decode_threads is None else decode_threads)


# ---- windows ---------------------------------------------------------------------------
@dataclass
class Window:
    """T resized uint8 RGB frames (T, h, w, 3) plus where they came from."""

    index: int
    frame_indices: tuple[int, ...]
    times: tuple[float, ...]
    clip: np.ndarray
    flags: tuple[str, ...] = ()
    meta: dict = field(default_factory=dict)
    bits: float | None = None  # coded bits of every frame in the span (None: some unknown)
    span_frames: int = 0  # frames from the first to the last sampled frame, inclusive

    @property
    def start_frame(self) -> int:
        return self.frame_indices[0]

    @property
    def end_frame(self) -> int:
        return max(self.frame_indices)


class WindowAssembler:
    """Push frames one at a time, get complete windows back (the streaming core).

    Converts only frames some window samples and keeps only what open windows still
    need, plus the latest frame (a trailing partial window may repeat it).
    """

    def __init__(self, spec: ClipSpec, total_frames: int | None = None, crop_only: bool = False):
        self.spec = spec
        self.crop_only = crop_only
        if spec.sampling == "uniform":
            if not total_frames:
                raise UsageError("uniform sampling needs the frame count; use windows sampling")
            self._plans: list[WindowPlan] | None = spec.plan_windows(total_frames)
            self._needed = {i for p in self._plans for i in p.frame_indices}
            self._planner = None
        else:
            self._plans = None
            self._planner = WindowPlanner(spec)
        self._cache: dict[int, tuple[np.ndarray, float]] = {}
        self._bits: dict[int, int | None] = {}  # every frame's coded size, not just sampled ones
        self._last: Frame | None = None
        self._size: tuple[int, int] | None = None

    def _convert(self, frame: Frame) -> tuple[np.ndarray, float]:
        if frame.index not in self._cache:
            if self._size is None:
                self._size = frame.size
            elif frame.size != self._size:
                raise VideoError(
                    f"frame {frame.index} is {frame.size[0]}x{frame.size[1]}, earlier frames "
                    f"were {self._size[0]}x{self._size[1]}; resolution changes are not supported"
                )
            self._cache[frame.index] = (frame.to_rgb(self.spec, self.crop_only), frame.time)
        return self._cache[frame.index]

    def _make(self, plan: WindowPlan) -> Window:
        got = [self._cache[i] for i in plan.frame_indices]
        clip = np.stack([g[0] for g in got])
        span = range(min(plan.frame_indices), max(plan.frame_indices) + 1)
        sizes = [self._bits.get(i) for i in span]
        bits = None if any(b is None for b in sizes) else float(sum(sizes))  # type: ignore[arg-type]
        return Window(plan.index, plan.frame_indices, tuple(g[1] for g in got), clip, plan.flags,
                      bits=bits, span_frames=len(span))

    def push(self, frame: Frame) -> list[Window]:
        self._last = frame
        self._bits[frame.index] = frame.bits
        if self._planner is not None:
            if self._planner.needed(frame.index):
                self._convert(frame)
            plans = self._planner.frame_arrived(frame.index)
        else:
            if frame.index in self._needed:
                self._convert(frame)
            plans = [p for p in self._plans if p.last == frame.index]  # type: ignore[union-attr]
        out = [self._make(p) for p in plans]
        if out:
            self._evict(frame.index)
        return out

    def _evict(self, current: int) -> None:
        """Drop converted frames that no window still to come can use."""
        if self._planner is not None:
            keep_from = self._planner._next_window * self.spec.hop
            stale = [i for i in self._cache if i < keep_from]
        else:
            todo = [p for p in self._plans if p.last > current]  # type: ignore[union-attr]
            pending = {i for p in todo for i in p.frame_indices}
            stale = [i for i in self._cache if i not in pending]
            keep_from = min((p.first for p in todo), default=current + 1)
        for i in stale:
            del self._cache[i]
        for i in [i for i in self._bits if i < keep_from]:
            del self._bits[i]

    def finish(self) -> list[Window]:
        if self._last is None:
            return []
        if self._planner is not None:
            plans = self._planner.finish()
            if plans:
                self._convert(self._last)
            for p in plans:
                for i in p.frame_indices:
                    if i not in self._cache:  # pragma: no cover - planner guarantees this
                        raise RuntimeError(f"frame {i} missing for window {p.index}")
            return [self._make(p) for p in plans]
        # uniform: the video ended before the planned frame count (e.g. a short stream)
        done = self._last.index
        out = []
        for p in self._plans:  # type: ignore[union-attr]
            if p.last > done:
                idx = tuple(min(i, done) for i in p.frame_indices)
                self._convert(self._last)
                for i in idx:
                    if i not in self._cache:
                        raise VideoError(
                            f"video ended at frame {done}, before its declared frame count"
                        )
                out.append(self._make(WindowPlan(p.index, idx, (*p.flags, "truncated"))))
        return out


def iter_windows(source: VideoSource, spec: ClipSpec, crop_only: bool = False) -> Iterator[Window]:
    """All windows of a source, streamed (memory bounded by one window's frames).

    `crop_only=True`: each window holds only the band its crops cover (see
    `Frame.to_rgb`); `windows_to_input` gives the same model input either way.
    """
    total = source.info.num_frames
    if spec.sampling == "uniform" and isinstance(source, (PyAVSource, DisplaySource)) and \
            hasattr(getattr(source, "source", source), "count_frames"):
        total = source.count_frames()
    asm = WindowAssembler(spec, total, crop_only=crop_only)
    for frame in source.frames():
        yield from asm.push(frame)
    yield from asm.finish()


def read_windows(path: str | os.PathLike, spec: ClipSpec, **open_kw) -> list[Window]:
    """Convenience: open a file and return all its windows."""
    with open_video(path, **open_kw) as src:
        return list(iter_windows(src, spec))


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:200]
