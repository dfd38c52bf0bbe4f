"""Benchmark one engine: latency, throughput, memory, accuracy vs MOS and vs the teacher.

What `vqa-bench` measures for each engine (a bundle precision, or a PyTorch checkpoint):

- **Latency** of one engine call at each batch size (`--batch 1,8,32`): a few warm-up
  calls, then timed calls until both `min_iters` calls and `duration` seconds are done
  (trtexec's rule: a duration and a minimum count). Statistics are trtexec's set: min,
  mean, median, p90, p95, p99 in milliseconds. Percentiles are *nearest-rank* (the
  smallest sample with at least p% of the samples at or below it), so every reported
  figure is a latency that was actually observed. Batch sizes above the engine's maximum
  (a TensorRT profile's max, a static ONNX batch) are skipped and the reason recorded.
- **Throughput**: clips/s = batch * calls / total timed seconds; frames/s = clips/s x T
  (frames the network sees per clip). A "clip" is one model input (one crop of one
  window), the unit trtexec's qps counts.
- **Memory**: peak host RSS sampled every 10 ms while the engine loads, runs and scores
  (psutil when installed, else /proc), and peak device memory in use on a GPU run.
- **Accuracy**: every video of the split is scored through the runtime's `Scorer` (the
  same clip spec, windows, crops and pooled mean as `vqa-score`), then
  `metrics.evaluate` against MOS (SRCC, KRCC, PLCC linear-rescaled and logistic, RMSE)
  and RD-order accuracy per (source, codec, resolution) ladder. The same pass times the
  end-to-end cost per video (decode + preprocess + inference).
- **Recorded**: the accuracy figures the export step wrote into bundle.json, shown next to
  the measured ones.
- **Teacher agreement**: SRCC / PLCC / MAE between this engine's scores and the teacher's
  (`teacher_predictions.csv`, found from the bundle's source checkpoint provenance or given
  explicitly), plus the teacher's own accuracy on the same videos.

Engines. `open_backend` is the one factory that turns what `--engine` names into a
backend + bundle: a bundle (or a model file inside one) through the runtime's
`create_backend` (ONNX Runtime, or TensorRT for a plan); a project checkpoint through
`internvqa.distill.torch_backend` (PyTorch; the one torch `Backend`, which export's parity
check uses too). The runtime itself keeps only the ONNX Runtime and TensorRT backends. This
module imports no torch: the PyTorch branch imports it inside the call, so benchmarking an
ONNX bundle stays torch-free. Videos are scored by `score_rows`
(`internvqa.distill.row_scoring`, torch-free), the loop export's recorded accuracy runs.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from internvqa.distill.row_scoring import coded_input as coded_input  # re-exported
from internvqa.distill.row_scoring import score_rows
from internvqa.runtime.bundle import META_NAME, Bundle, load_bundle
from internvqa.runtime.clipspec import ClipSpec, windows_to_input
from internvqa.runtime.errors import InternVQAError, UsageError
from internvqa.runtime.manifest import ManifestRow
from internvqa.runtime.metrics import plcc, srcc, video_accuracy
from internvqa.runtime.workspace import CHECKPOINT_FORMAT, CONFIG_FILE
from internvqa.runtime.workspace import TEACHER_PREDICTIONS as TEACHER_PREDS

LATENCY_KEYS = ("min", "mean", "median", "p90", "p95", "p99")
ACCURACY_KEYS = ("srcc", "krcc", "plcc_linear", "plcc_logistic", "rmse_logistic", "rmse",
                 "rd_order_accuracy", "within_source_srcc")


# ---- statistics ------------------------------------------------------------------------
def nearest_rank(sorted_values: Sequence[float], p: float) -> float:
    """The p-th percentile by nearest rank: sorted_values[ceil(p/100 * n) - 1]."""
    n = len(sorted_values)
    if n == 0:
        raise ValueError("no samples")
    k = max(1, math.ceil(p / 100.0 * n - 1e-9))
    return float(sorted_values[min(k, n) - 1])


def latency_stats(seconds: Sequence[float]) -> dict[str, float]:
    """trtexec's latency set in milliseconds from per-call durations in seconds."""
    if len(seconds) == 0:
        raise ValueError("no latency samples")
    ms = sorted(float(s) * 1000.0 for s in seconds)
    return {
        "min": ms[0],
        "mean": float(np.mean(ms)),
        "median": float(np.median(ms)),
        "p90": nearest_rank(ms, 90),
        "p95": nearest_rank(ms, 95),
        "p99": nearest_rank(ms, 99),
    }


def throughput(batch: int, seconds: Sequence[float], frames_per_clip: int) -> dict[str, float]:
    """clips/s and frames/s over the timed calls (total work / total time)."""
    total = float(sum(seconds))
    clips = batch * len(seconds) / total if total > 0 else float("inf")
    return {"clips_per_s": clips, "frames_per_s": clips * frames_per_clip}


def parse_batches(text: str) -> list[int]:
    """'1,8,32' -> [1, 8, 32] (sorted, unique, positive)."""
    try:
        values = sorted({int(v) for v in str(text).split(",") if v.strip()})
    except ValueError:
        raise UsageError(f"bad --batch {text!r}: expected sizes like 1,8,32") from None
    if not values or values[0] < 1:
        raise UsageError(f"bad --batch {text!r}: sizes must be >= 1")
    return values


# ---- memory ----------------------------------------------------------------------------
def _rss_bytes() -> int:
    try:
        import psutil

        return int(psutil.Process().memory_info().rss)
    except ImportError:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _device_used_bytes() -> int | None:
    """Bytes in use on GPU 0 (all processes), or None where no CUDA runtime is usable."""
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        return None
    try:
        err, free, total = cudart.cudaMemGetInfo()
    except Exception:  # noqa: BLE001 - no driver / no device
        return None
    if err != cudart.cudaError_t.cudaSuccess:
        return None
    return int(total) - int(free)


class MemorySampler:
    """Peak host RSS (and device memory when `device=True`) over a block, sampled in a thread."""

    def __init__(self, interval_s: float = 0.01, device: bool = False):
        self.interval_s, self.device = interval_s, device
        self.start_rss = self.peak_rss = _rss_bytes()
        self.start_device = self.peak_device = _device_used_bytes() if device else None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="internvqa-mem", daemon=True)

    def _sample(self) -> None:
        self.peak_rss = max(self.peak_rss, _rss_bytes())
        if self.device:
            d = _device_used_bytes()
            if d is not None:
                self.peak_device = max(self.peak_device or 0, d)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample()

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def summary(self) -> dict[str, float | None]:
        mb = 1024.0 * 1024.0
        out: dict[str, float | None] = {
            "peak_rss_mb": self.peak_rss / mb,
            "start_rss_mb": self.start_rss / mb,
            "peak_device_mb": None,
            "device_delta_mb": None,
        }
        if self.peak_device is not None:
            out["peak_device_mb"] = self.peak_device / mb
            out["device_delta_mb"] = (self.peak_device - (self.start_device or 0)) / mb
        return out


# ---- engines ---------------------------------------------------------------------------
@dataclass
class EngineRef:
    """What the user asked to benchmark: a path plus an optional precision."""

    path: Path
    precision: str | None = None
    kind: str = "bundle"  # bundle | checkpoint

    @property
    def label(self) -> str:
        name = self.path.name if self.path.name not in ("", ".") else str(self.path)
        if self.path.is_file():
            name = f"{self.path.parent.name}/{self.path.name}"
        elif self.kind == "checkpoint":
            # runs keep their checkpoints in best/ and last/: name them by their architecture
            try:
                cfg = json.loads((self.path / CONFIG_FILE).read_text(encoding="utf-8"))
                name = str(cfg["model"]["architecture"])
            except (OSError, ValueError, KeyError, TypeError):
                name = f"{self.path.parent.name}/{self.path.name}"
        return f"{name}:{self.precision}" if self.precision else name


def distinct_labels(results: list[dict[str, Any]]) -> None:
    """Give engines that share a label (two runs of one architecture) their path as well."""
    counts: dict[str, int] = {}
    for r in results:
        counts[r["label"]] = counts.get(r["label"], 0) + 1
    for r in results:
        if counts[r["label"]] > 1:
            r["label"] = f"{r['label']} ({r['engine']})"


def is_checkpoint_dir(path: Path) -> bool:
    """A project checkpoint (config.json with the checkpoint format), not a bundle."""
    cfg = path / CONFIG_FILE
    if not path.is_dir() or (path / META_NAME).exists() or not cfg.is_file():
        return False
    try:
        return json.loads(cfg.read_text(encoding="utf-8")).get("format") == CHECKPOINT_FORMAT
    except (ValueError, OSError, AttributeError):
        return False


def resolve_engines(paths: Sequence[str | os.PathLike], precisions: str | None) -> list[EngineRef]:
    """Expand `--engine` values and `--precision a,b` into a list of engines.

    A bundle directory gets one engine per asked precision (its default when none); a model
    file inside a bundle is that file's precision; a checkpoint directory is PyTorch.
    """
    wanted = [p.strip() for p in (precisions or "").split(",") if p.strip()]
    out: list[EngineRef] = []
    for raw in paths:
        p = Path(raw)
        if not p.exists():
            raise UsageError(f"--engine {raw}: no such file or directory")
        if is_checkpoint_dir(p):
            out.append(EngineRef(p, "pytorch", "checkpoint"))
        elif p.is_file():
            if p.suffix not in (".onnx", ".plan"):
                raise UsageError(f"--engine {raw}: expected a .onnx/.plan file inside a bundle, "
                                 "a bundle directory, or a checkpoint directory")
            out.append(EngineRef(p, None, "bundle"))
        elif p.is_dir():
            if not (p / META_NAME).is_file():
                raise UsageError(f"--engine {raw}: not a bundle ({META_NAME} missing) "
                                 "nor a checkpoint (config.json missing)")
            out.extend(EngineRef(p, q, "bundle") for q in (wanted or [None]))
        else:
            raise UsageError(f"--engine {raw}: not a file or directory")
    return out


def preflight(refs: Sequence[EngineRef], verify: bool = True) -> None:
    """Load every bundle's metadata (hashes, versions, precision) so bad engines fail early."""
    for ref in refs:
        if ref.kind == "bundle":
            load_bundle(ref.path, precision=ref.precision, verify=verify)


def torch_backend(checkpoint: str | os.PathLike, device: str = "auto",
                  threads: int | None = None) -> tuple[Any, Bundle]:
    """A project checkpoint run with PyTorch, as a backend + pseudo-bundle.

    `internvqa.distill.torch_backend` imports torch; it is imported only here, when a
    checkpoint is benchmarked.
    """
    try:
        from internvqa.distill.torch_backend import load_torch_backend
    except ImportError as exc:
        raise UsageError(f"benchmarking a PyTorch checkpoint needs torch ({exc.name} missing); "
                         "install the train extra") from None
    return load_torch_backend(checkpoint, device, threads)


def open_backend(ref: EngineRef, device: str = "auto", threads: int | None = None,
                 verify: bool = True) -> tuple[Any, Bundle]:
    """The backend factory of the bench layer: (backend, bundle) for any engine reference.

    A bundle gets the runtime's backend for its precision (ONNX Runtime, TensorRT for a
    plan); a checkpoint gets PyTorch. Engine latency is timed with the engine alone on the
    machine, so an ONNX engine gets every core by default (a `Scorer` on its own gives
    some of them to the decoder).
    """
    if ref.kind == "checkpoint":
        return torch_backend(ref.path, device, threads)
    from internvqa.runtime.backend import create_backend
    from internvqa.runtime.scorer import available_cores

    bundle = load_bundle(ref.path, precision=ref.precision, verify=verify)
    return create_backend(bundle, device=device, threads=threads or available_cores()), bundle


def open_engine(ref: EngineRef, device: str = "auto", threads: int | None = None,
                verify: bool = True):
    """A `Scorer` over the engine's backend (`open_backend`): same windows, crops and
    pooling as `vqa-score`, whatever runs the network."""
    from internvqa.runtime.scorer import Scorer

    backend, bundle = open_backend(ref, device, threads, verify)
    return Scorer(bundle, backend=backend)


# ---- timing ----------------------------------------------------------------------------
def sample_clips(spec: ClipSpec, rows: Sequence[ManifestRow], want: int = 32,
                 seed: int = 0) -> np.ndarray:
    """Real model inputs from the first videos (random ones when there is no video)."""
    from internvqa.runtime.video import read_windows

    parts: list[np.ndarray] = []
    have = 0
    for row in rows[:4]:
        if have >= want:
            break
        try:
            windows = read_windows(row.abspath, spec)
        except InternVQAError:
            continue
        if windows:
            x = windows_to_input(spec, [w.clip for w in windows])
            parts.append(x)
            have += x.shape[0]
    if parts:
        return np.concatenate(parts)[:want]
    rng = np.random.default_rng(seed)
    return rng.standard_normal((min(want, 4), *spec.input_shape(1)[1:])).astype(np.float32)


def _batch_of(pool: np.ndarray, batch: int) -> np.ndarray:
    reps = math.ceil(batch / pool.shape[0])
    return np.ascontiguousarray(np.concatenate([pool] * reps)[:batch])


def time_backend(backend, pool: np.ndarray, batch: int, frames_per_clip: int,
                 warmup: int = 2, min_iters: int = 5, duration: float = 2.0,
                 max_iters: int = 1000,
                 clock: Callable[[], float] = time.perf_counter) -> dict[str, Any]:
    """Warm up, then time `backend.run` at one batch size; latency stats + throughput."""
    x = _batch_of(pool, batch)
    for _ in range(warmup):
        backend.run(x)
    samples: list[float] = []
    start = clock()
    while len(samples) < max_iters and (len(samples) < min_iters or clock() - start < duration):
        t0 = clock()
        backend.run(x)
        samples.append(clock() - t0)
    return {
        "batch": batch,
        "iterations": len(samples),
        "warmup": warmup,
        "latency_ms": latency_stats(samples),
        **throughput(batch, samples, frames_per_clip),
    }


# ---- accuracy --------------------------------------------------------------------------
# The one video-level evaluation lives in the runtime (training reports use it too); videos
# are scored by `score_rows` (`internvqa.distill.row_scoring`), the loop export's recorded
# accuracy runs too.
accuracy = video_accuracy


def recorded_accuracy(meta: dict[str, Any], precision: str) -> dict[str, Any] | None:
    """The accuracy the export step wrote for this precision (bundle.json "accuracy").

    Accepts {precision: {metric: v}} or one flat {metric: v} block (then it applies to fp32).
    """
    acc = meta.get("accuracy")
    if not isinstance(acc, dict) or not acc:
        return None
    for key in (precision, "plan" if precision == "plan" else None):
        if key and isinstance(acc.get(key), dict):
            return acc[key]
    per = acc.get("precisions") or acc.get("by_precision")
    if isinstance(per, dict) and isinstance(per.get(precision), dict):
        return {**{k: v for k, v in acc.items() if not isinstance(v, dict)}, **per[precision]}
    if any(k in acc for k in ("srcc", "plcc")) and precision in ("fp32", "pytorch"):
        return acc
    return None


# ---- teacher ---------------------------------------------------------------------------
def _path_values(obj: Any, key_hint: str) -> list[str]:
    """String values under keys containing `key_hint`, searched recursively."""
    found: list[str] = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if key_hint in str(k).lower() and isinstance(v, str):
                found.append(v)
            found.extend(_path_values(v, key_hint))
    elif isinstance(obj, list):
        for v in obj:
            found.extend(_path_values(v, key_hint))
    return found


def _preds_in(d: Path) -> Path | None:
    for cand in (d / TEACHER_PREDS, d / "best" / TEACHER_PREDS, d.parent / TEACHER_PREDS):
        if cand.is_file():
            return cand
    return None


def find_teacher_predictions(meta: dict[str, Any], bundle_dir: Path | None = None
                             ) -> tuple[Path | None, str]:
    """Locate teacher_predictions.csv from the engine's provenance; (path, how it was found).

    Order: the source checkpoint's config.json provenance (any key naming a teacher), then
    the bundle's own meta, then a single `teacher-*/best` beside the student's run folder.
    """
    bases = [bundle_dir] if bundle_dir else []
    src = meta.get("source_checkpoint")
    if isinstance(src, dict):
        src = src.get("path")
    roots: list[Path] = []
    if isinstance(src, str) and src:
        p = Path(src)
        roots += [p] if p.is_absolute() else [b / p for b in bases] + [Path.cwd() / p]
    provenance: list[str] = _path_values(meta, "teacher")
    for root in roots:
        cfg = root / "config.json"
        if cfg.is_file():
            with contextlib.suppress(ValueError):
                provenance += _path_values(json.loads(cfg.read_text(encoding="utf-8")), "teacher")
    for value in provenance:
        p = Path(value)
        for cand in ([p] if p.is_absolute() else [Path.cwd() / p, *(r / p for r in roots)]):
            if cand.is_file() and cand.name.endswith(".csv"):
                return cand, f"provenance ({value})"
            if cand.is_dir() and (hit := _preds_in(cand)):
                return hit, f"provenance ({value})"
    for root in roots:
        runs = root.resolve().parent.parent if root.name == "best" else root.resolve().parent
        hits = sorted(runs.glob(f"teacher-*/best/{TEACHER_PREDS}"))
        if len(hits) == 1:
            return hits[0], f"beside the source checkpoint ({runs})"
    return None, "no teacher predictions found (give --teacher-preds CSV or --teacher CKPT)"


def match_teacher(rows: Sequence[ManifestRow], table: dict[str, float]) -> list[float | None]:
    out: list[float | None] = []
    for r in rows:
        keys = [r.path, str(r.abspath), "/".join(Path(r.path).parts[-2:])]
        out.append(next((table[k] for k in keys if k in table), None))
    return out


def agreement(preds: Sequence[float | None], teacher: Sequence[float | None],
              rows: Sequence[ManifestRow]) -> dict[str, Any]:
    """Student vs teacher on the videos both scored: SRCC, PLCC, MAE; teacher vs MOS too."""
    both = [(p, t, r) for p, t, r in zip(preds, teacher, rows, strict=True)
            if p is not None and t is not None]
    if len(both) < 2:
        return {"n": len(both), "note": "fewer than two videos matched the teacher's"}
    a = np.array([p for p, _, _ in both])
    b = np.array([t for _, t, _ in both])
    out: dict[str, Any] = {"n": len(both), "srcc": srcc(a, b), "plcc": plcc(a, b),
                           "mae": float(np.mean(np.abs(a - b)))}
    out["teacher_vs_mos"] = accuracy(list(b), [r for _, _, r in both])
    return out


# ---- the whole run ---------------------------------------------------------------------
@dataclass
class BenchOptions:
    batches: list[int] = field(default_factory=lambda: [1, 8, 32])
    warmup: int = 2
    min_iters: int = 5
    duration: float = 2.0
    device: str = "auto"
    threads: int | None = None
    accuracy: bool = True
    progress: bool = True
    verify: bool = True


def bench_engine(ref: EngineRef, rows: Sequence[ManifestRow], opts: BenchOptions,
                 teacher_table: dict[str, float] | None = None,
                 teacher_source: str = "") -> dict[str, Any]:
    """Every figure for one engine, as a JSON-ready dict."""
    on_gpu = opts.device == "cuda" or ref.precision == "plan"
    with MemorySampler(device=on_gpu) as mem:
        t0 = time.perf_counter()
        scorer = open_engine(ref, opts.device, opts.threads, opts.verify)
        load_s = time.perf_counter() - t0
        bundle, backend, spec = scorer.bundle, scorer.backend, scorer.spec
        gpu = any("CUDA" in p or "TensorRT" in p for p in backend.providers) or (
            backend.name == "pytorch" and "cuda" in backend.providers[0])
        if gpu and not mem.device:
            mem.device = True
            mem.start_device = mem.peak_device = _device_used_bytes()
        pool = sample_clips(spec, rows, want=max(opts.batches))
        timing, skipped = [], []
        for b in opts.batches:
            if backend.max_batch is not None and b > backend.max_batch:
                skipped.append({"batch": b, "reason": f"above the engine's max batch "
                                                      f"{backend.max_batch}"})
                continue
            timing.append(time_backend(backend, pool, b, spec.num_frames, opts.warmup,
                                       opts.min_iters, opts.duration))
        label = ref.label
        if ref.kind == "bundle" and ref.precision is None and ref.path.is_dir():
            label = f"{label}:{bundle.precision}"
        result: dict[str, Any] = {
            "label": label,
            "engine": str(ref.path),
            "kind": ref.kind,
            "model": bundle.model_name,
            "precision": bundle.precision,
            "backend": backend.name,
            "providers": list(backend.providers),
            "max_batch": backend.max_batch,
            "clip_spec": spec.to_dict(),
            "load_s": load_s,
            "note": bundle.note,
            "timing": timing,
            "skipped_batches": skipped,
        }
        if opts.accuracy and rows:
            preds, secs, failures = score_rows(scorer, rows, opts.progress, label)
            result["scores"] = [{"path": r.path, "mos": r.mos, "pred": p}
                                for r, p in zip(rows, preds, strict=True)]
            result["failures"] = failures
            result["accuracy"] = accuracy(preds, rows)
            result["e2e_s_per_video"] = float(np.mean(secs)) if secs else None
            result["recorded_accuracy"] = recorded_accuracy(bundle.meta, bundle.precision)
            if teacher_table is not None:
                agree = agreement(preds, match_teacher(rows, teacher_table), rows)
                result["teacher_agreement"] = {"source": teacher_source, **agree}
    result["memory"] = mem.summary()
    return result


def machine_info() -> dict[str, Any]:
    """CPU model, cores, RAM and library versions, for the record."""
    info: dict[str, Any] = {"python": platform.python_version(), "platform": platform.platform(),
                            "cpu": platform.processor() or platform.machine(),
                            "cores": os.cpu_count()}
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo") as fh:
            kb = int(fh.readline().split()[1])
            info["ram_gb"] = round(kb / 1024 / 1024, 1)
    except OSError:
        pass
    versions = {}
    from importlib.metadata import PackageNotFoundError, version

    for pkg in ("numpy", "onnxruntime", "onnxruntime-gpu", "av", "opencv-python-headless",
                "tensorrt", "torch", "internvqa"):
        try:
            versions[pkg] = version(pkg)
        except PackageNotFoundError:
            continue
    info["versions"] = versions
    return info
