"""Scoring: windows from any video source -> engine -> per-window scores -> pooled result.

`Scorer` loads a bundle and its engine once. For one input, a background thread decodes
and preprocesses windows (`iter_windows` + `windows_to_input`) into a bounded queue of two
batches while the calling thread runs inference, so the slower side sets the pace and
memory stays bounded; an exception in the decoding thread is re-raised in the caller.

Each window's crops are averaged, then mapped to the bundle's score scale
(`multiplier * output + offset`). A non-finite model output flags its window
``nonfinite`` (no score, left out of pooling); if no window is finite, scoring fails.

Cores are split between the two stages (`pipeline_threads`) instead of letting FFmpeg's
frame threads and ONNX Runtime's pool each take every core: measured on 2 cores (1080p
H.264, INT8 vit_s), both stages on both cores ran *slower* end to end than the sum of the
stages alone (0.72 s vs 0.65 s: the pools preempt each other and ORT spins), while one
core each with one-window CPU batches (so inference starts after one window, not four)
took 0.58 s. On a CPU engine the default batch is therefore one window; GPU engines keep
`DEFAULT_BATCH`.

Limits per input (off by default; `vqa-score --max-seconds/--max-frames`): `max_seconds`
bounds the wall time from the start of decoding to the last engine call, `max_frames` the
decoded frames. Both are checked after every decoded frame and every engine call, so a
hostile file (millions of tiny frames, a pathologically slow bitstream) ends in a
`VideoError` within one frame's decode time of the limit instead of holding a batch. A
single FFmpeg call that never returns cannot be interrupted from Python; run untrusted
input under a process-level watchdog if that matters.

`ScoreStream` is the incremental, libvmaf-like API for embedding: push frames one at a
time, get each window's score back from the `push` that completed it, `flush()` at the end
for the trailing partial window and the pooled result; `score_at(i)`, `pooled` and
`write_log(path)` as in libvmaf.

Thread-safety: a `Scorer` keeps no per-call mutable state (the ONNX Runtime session's
`run` is thread-safe; the TensorRT backend locks), so one Scorer may be shared by many
threads scoring different inputs. A `ScoreStream` is single-producer: push/flush it from
one thread at a time (use one stream per video).
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Iterable, Iterator, Sequence

import numpy as np

from internvqa.runtime.backend import Backend, create_backend
from internvqa.runtime.bitstream import side_vector
from internvqa.runtime.bundle import Bundle, load_bundle
from internvqa.runtime.clipspec import single_threaded_opencv, windows_to_input
from internvqa.runtime.errors import InternVQAError, UsageError, VideoError
from internvqa.runtime.scorelog import ScoreResult, WindowScore
from internvqa.runtime.video import (
    ArraySource,
    Frame,
    VideoInfo,
    VideoSource,
    Window,
    WindowAssembler,
    YUVPlanes,
    check_fps,
    frame_from_array,
    iter_windows,
    open_video,
)

DEFAULT_BATCH = 4  # windows per engine call on a GPU engine
CPU_BATCH = 1  # on a CPU engine: inference starts as soon as one window is decoded
QUEUE_BATCHES = 2  # decoded batches waiting for the engine, per input


def available_cores() -> int:
    """CPUs this process may run on (the affinity mask, e.g. a container's cpuset)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def pipeline_threads(cores: int) -> tuple[int, int]:
    """(decoder threads, CPU engine threads) for one input scored on `cores` CPUs.

    Up to 4 cores: one decoder thread, the rest to the engine (at least one each). Above
    that the decoder gets a quarter (FFmpeg frame threads scale well up to a few cores).
    """
    if cores <= 4:
        return 1, max(1, cores - 1)
    dec = max(1, cores // 4)
    return dec, cores - dec


class ModelOutputError(InternVQAError):
    """The engine returned no finite score for any window of an input."""


class Scorer:
    """A loaded bundle + engine. `backend`: "auto", "cpu", "cuda", or a `Backend` object."""

    def __init__(
        self,
        bundle_path: str | os.PathLike | Bundle | None = None,
        precision: str | None = None,
        backend: str | Backend = "auto",
        threads: int | None = None,
        batch_size: int | None = None,
        verify: bool = True,
        max_seconds: float | None = None,
        max_frames: int | None = None,
        decode_threads: int | None = None,
        bitstream: bool = True,
    ):
        """`bitstream=False` scores a hybrid model in its pixel-only mode (its side input
        all zeros), as for raw frames; a pixel-only model ignores it."""
        single_threaded_opencv()  # preprocessing parallelism is ours, not OpenCV's (clipspec)
        self.bitstream = bool(bitstream)
        if bundle_path is None:  # the default model shipped with the package
            from internvqa.runtime.bundle import default_bundle

            bundle_path = default_bundle()
            if bundle_path is None:
                raise UsageError("this install has no default model; give a bundle directory")
        if isinstance(bundle_path, Bundle):
            self.bundle = bundle_path
        else:
            self.bundle = load_bundle(bundle_path, precision=precision, verify=verify)
        self.spec = self.bundle.clip_spec
        if decode_threads is not None and decode_threads < 1:
            raise UsageError("decode_threads must be >= 1")
        auto_dec, auto_engine = pipeline_threads(available_cores())
        self.decode_threads = decode_threads or auto_dec
        if isinstance(backend, str):
            self.backend = create_backend(self.bundle, device=backend,
                                          threads=threads or auto_engine)
        else:
            self.backend = backend
        crops = self.spec.crops_per_window
        cap = max(1, (self.backend.max_batch or 1 << 30) // crops)
        if batch_size is not None and batch_size < 1:
            raise UsageError("batch_size must be >= 1")
        on_cpu = list(self.backend.providers)[:1] == ["CPUExecutionProvider"]
        self.batch_size = min(batch_size or (CPU_BATCH if on_cpu else DEFAULT_BATCH), cap)
        if max_seconds is not None and not max_seconds > 0:
            raise UsageError("max_seconds must be > 0 (or None for no limit)")
        if max_frames is not None and max_frames < 1:
            raise UsageError("max_frames must be >= 1 (or None for no limit)")
        self.max_seconds, self.max_frames = max_seconds, max_frames

    # ---- public API ------------------------------------------------------------------
    def score_file(
        self,
        path: str | os.PathLike,
        size: tuple[int, int] | None = None,
        pix_fmt: str | None = None,
        fps: float | None = None,
        display: tuple[int, int] | None = None,
    ) -> ScoreResult:
        """Score a video file (raw `.yuv` when `size` is given or the suffix says so).

        `display`: the size the video is watched at, when that is not its coded size (a
        resolution-ladder rung): frames are upscaled to it before scoring."""
        with open_video(path, size=size, pix_fmt=pix_fmt, fps=fps,
                        decode_threads=self.decode_threads, display=display) as source:
            return self.score_source(source, name=str(path))

    def score_frames(
        self, frames: np.ndarray | Sequence[np.ndarray | YUVPlanes], fps: float = 25.0
    ) -> ScoreResult:
        """Score in-memory frames: uint8 RGB (N, H, W, 3) / list of (H, W, 3), or YUVPlanes."""
        return self.score_source(ArraySource(frames, fps=fps))

    def score_source(self, source: VideoSource, name: str | None = None) -> ScoreResult:
        return self.finish(self.start(source, name))

    def start(self, source: VideoSource, name: str | None = None) -> ScoreJob:
        """Begin decoding `source` in the background; `finish(job)` scores it."""
        return ScoreJob(self, source, name or source.info.name)

    def finish(self, job: ScoreJob) -> ScoreResult:
        """Run inference on a started job's windows as they arrive; close its feed."""
        scores: list[WindowScore] = []
        try:
            for windows, x in job.feed:
                scores.extend(self._score(windows, x, job.source.info))
                job.counted.check_time()
        finally:
            job.feed.close()
        src = job.source
        return self._result(scores, job.counted.count, src.info, job.name, job.t0,
                            getattr(src, "decode_errors", 0), getattr(src, "truncated", False))

    def model_info(self) -> dict:
        b = self.bundle
        return {
            "name": b.model_name,
            "precision": b.precision,
            "backend": self.backend.name,
            "providers": list(self.backend.providers),
            "bundle": str(b.path),
            "score_scale": b.score_scale,
            "inputs": ["pixels", "bitstream"] if self.uses_bitstream else ["pixels"],
        }

    # ---- internals -------------------------------------------------------------------
    @property
    def uses_bitstream(self) -> bool:
        """Whether the engine reads the `side` input (a hybrid model, not forced to pixels)."""
        return self.bitstream and getattr(self.backend, "side_dim", None) is not None

    def _side(self, windows: list[Window], info: VideoInfo) -> np.ndarray:
        """Each window's side vector, repeated for its crops (rows of the engine batch)."""
        cw, ch = info.coded_size
        display = (info.width, info.height)
        rows = [side_vector(w.bits, w.span_frames, cw, ch, info.codec, display) for w in windows]
        return np.repeat(np.stack(rows), self.spec.crops_per_window, axis=0)

    def _score(self, windows: list[Window], x: np.ndarray, info: VideoInfo) -> list[WindowScore]:
        fps = info.fps
        if self.uses_bitstream:
            side = self._side(windows, info)
            raw, _ = self.backend.run(x, side)
            used = side[:: self.spec.crops_per_window, 0] > 0.5
        else:
            raw, _ = self.backend.run(x)
            used = np.zeros(len(windows), dtype=bool)
        raw = np.asarray(raw, dtype=np.float64).reshape(len(windows), self.spec.crops_per_window)
        out = []
        for w, r, bits in zip(windows, raw, used, strict=True):
            flags = tuple(w.flags) if bits or not self.uses_bitstream else (*w.flags, "pixels_only")
            if np.all(np.isfinite(r)):
                score: float | None = self.bundle.to_score(float(r.mean()))
            else:
                score, flags = None, (*flags, "nonfinite")
            out.append(WindowScore(w.index, w.start_frame, w.end_frame, float(w.times[0]),
                                   float(max(w.times)) + 1.0 / fps, score, flags))
        return out

    def _score_windows(self, windows: list[Window], info: VideoInfo) -> list[WindowScore]:
        out = []
        for i in range(0, len(windows), self.batch_size):
            part = windows[i : i + self.batch_size]
            out.extend(self._score(part, windows_to_input(self.spec, [w.clip for w in part]), info))
        return out

    def _result(
        self,
        scores: list[WindowScore],
        frames: int,
        info: VideoInfo,
        name: str,
        t0: float,
        decode_errors: int = 0,
        truncated: bool = False,
    ) -> ScoreResult:
        flags: list[str] = []
        for w in scores:
            flags.extend(f for f in w.flags if f not in flags)
        if decode_errors:
            flags.append("decode_errors")
        if truncated:
            flags.append("truncated")
        if scores and all(w.score is None for w in scores):
            raise ModelOutputError(f"{name}: the model returned NaN/inf for every window")
        return ScoreResult(
            windows=scores,
            frames=frames,
            input={"name": name, "width": info.width, "height": info.height,
                   "fps": round(info.fps, 6), "pix_fmt": info.pix_fmt, "codec": info.codec,
                   **({"coded_width": info.coded_width, "coded_height": info.coded_height}
                      if info.coded_width else {})},
            model=self.model_info(),
            flags=flags,
            elapsed_s=time.perf_counter() - t0,
        )


class _CountingSource(VideoSource):
    """Passes frames through, counts them (the frame count of streamed input), and
    enforces the per-input limits and the feed's stop request after every frame."""

    def __init__(self, source: VideoSource, name: str, stop: threading.Event,
                 max_seconds: float | None = None, max_frames: int | None = None):
        self.source, self.info, self.count, self.name = source, source.info, 0, name
        self._stop, self._max_frames, self._max_seconds = stop, max_frames, max_seconds
        self._deadline = None if max_seconds is None else time.perf_counter() + max_seconds

    def check_time(self) -> None:
        if self._deadline is not None and time.perf_counter() > self._deadline:
            raise VideoError(f"{self.name}: gave up after {self._max_seconds:g} s "
                             f"(per-input time limit; {self.count} frames decoded)")

    def frames(self) -> Iterator[Frame]:
        for f in self.source.frames():
            if self._stop.is_set():
                raise _Stopped
            self.count += 1
            if self._max_frames is not None and self.count > self._max_frames:
                raise VideoError(f"{self.name}: more than {self._max_frames} frames "
                                 "(per-input frame limit)")
            self.check_time()
            yield f


class _Stopped(Exception):
    pass


class WindowFeed:
    """Decode + preprocess in a thread; iterate (windows, input tensor) batches, bounded."""

    def __init__(self, source: VideoSource, scorer: Scorer, depth: int = QUEUE_BATCHES,
                 stop: threading.Event | None = None):
        self._source, self._spec, self._per = source, scorer.spec, scorer.batch_size
        self._q: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = stop or threading.Event()
        self._thread = threading.Thread(target=self._produce, name="internvqa-decode", daemon=True)
        self._thread.start()

    def _put(self, item: tuple) -> None:
        while not self._stop.is_set():
            try:
                self._q.put(item, timeout=0.1)
                return
            except queue.Full:
                continue
        raise _Stopped

    def _produce(self) -> None:
        try:
            pending: list[Window] = []
            for w in iter_windows(self._source, self._spec, crop_only=True):
                pending.append(w)
                if len(pending) == self._per:
                    self._put(("batch", pending, windows_to_input(self._spec, [p.clip for p in pending])))
                    pending = []
            if pending:
                self._put(("batch", pending, windows_to_input(self._spec, [p.clip for p in pending])))
            self._put(("end", None, None))
        except _Stopped:
            return
        except BaseException as exc:  # noqa: BLE001 - handed to the consuming thread
            try:
                self._put(("error", exc, None))
            except _Stopped:
                return

    def __iter__(self) -> Iterator[tuple[list[Window], np.ndarray]]:
        while True:
            kind, a, b = self._q.get()
            if kind == "end":
                return
            if kind == "error":
                raise a
            yield a, b

    def close(self) -> None:
        """Stop the producer (it exits at its next put) and wait for it."""
        self._stop.set()
        while True:
            try:
                self._q.get_nowait()
            except queue.Empty:
                break
        self._thread.join()


class ScoreJob:
    """An input whose windows are being decoded ahead of inference."""

    def __init__(self, scorer: Scorer, source: VideoSource, name: str):
        self.source, self.name = source, name
        self.t0 = time.perf_counter()
        stop = threading.Event()
        self.counted = _CountingSource(source, name, stop, scorer.max_seconds, scorer.max_frames)
        self.feed = WindowFeed(self.counted, scorer, stop=stop)


class ScoreStream:
    """Push frames, get window scores as soon as each window is complete (single producer).

    Frames: uint8 RGB (H, W, 3), `YUVPlanes`, or `Frame` objects from a `VideoSource`.
    """

    def __init__(self, scorer: Scorer, fps: float = 25.0, name: str = "<stream>",
                 codec: str | None = None):
        """`codec`: the encoder's codec ('h264', 'hevc', 'vp9', 'av1', ...) when frames come
        with their coded sizes (`push(frame, bits=...)`); a hybrid model reads both."""
        if scorer.spec.sampling != "windows":
            raise UsageError("streaming needs a bundle with 'windows' sampling")
        self.scorer, self.fps, self.name = scorer, check_fps(fps), name
        self.codec = codec or ""
        self._asm = WindowAssembler(scorer.spec, crop_only=True)
        self._scores: list[WindowScore] = []
        self._n = 0
        self._size: tuple[int, int] | None = None
        self._result: ScoreResult | None = None
        self._t0 = time.perf_counter()

    @property
    def frames_pushed(self) -> int:
        return self._n

    def push(self, frame: np.ndarray | YUVPlanes | Frame, bits: int | None = None) -> list[WindowScore]:
        """Add the next frame; returns the windows it completed (usually none or one).

        `bits`: the frame's coded size in bits, if the caller encoded it (a `Frame` from a
        file source already carries its packet's size); without it, pixel-only mode."""
        if self._result is not None:
            raise UsageError("push after flush: start a new ScoreStream")
        if bits is not None and (not isinstance(bits, (int, float)) or not bits > 0):
            raise UsageError(f"frame {self._n}: bits must be a positive number, got {bits!r}")
        if isinstance(frame, Frame):
            f = frame.renumbered(self._n, self._n / self.fps, bits)
        else:
            f = frame_from_array(self._n, frame, self.fps)
            f.bits = None if bits is None else int(bits)
        self._size = self._size or f.size
        done = self._asm.push(f)
        self._n += 1
        scored = self.scorer._score_windows(done, self._info()) if done else []
        self._scores.extend(scored)
        return scored

    def push_many(self, frames: Iterable[np.ndarray | YUVPlanes | Frame]) -> list[WindowScore]:
        out = []
        for f in frames:
            out.extend(self.push(f))
        return out

    def flush(self) -> ScoreResult:
        """Score the trailing partial window (if any) and return the whole result."""
        if self._result is None:
            if self._n == 0:
                raise UsageError(f"{self.name}: no frames were pushed")
            tail = self._asm.finish()
            tail_scores = self.scorer._score_windows(tail, self._info()) if tail else []
            self._scores.extend(tail_scores)
            self._result = self.scorer._result(self._scores, self._n, self._info(), self.name,
                                               self._t0)
        return self._result

    def _info(self) -> VideoInfo:
        w, h = self._size or (0, 0)
        return VideoInfo(w, h, self.fps, self._n, "stream", self.codec or "stream", self.name)

    def score_at(self, index: int) -> WindowScore:
        for w in self._scores:
            if w.index == index:
                return w
        raise IndexError(f"window {index} is not scored yet")

    @property
    def scores(self) -> list[WindowScore]:
        return list(self._scores)

    @property
    def pooled(self) -> dict:
        from internvqa.runtime.scorelog import pool

        return pool([w.score for w in self._scores])

    def write_log(self, path: str | os.PathLike) -> None:
        """Write the VMAF-shaped JSON log (flushes first)."""
        from internvqa.runtime.atomic import atomic_write_text

        atomic_write_text(path, self.flush().to_json() + "\n")
