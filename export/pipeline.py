"""The export pipeline, top to bottom: checkpoint -> ONNX graphs -> checks -> bundle.

    load checkpoint (clip spec + score scale come from it, never re-declared)
    -> FP32 ONNX, parity vs PyTorch on real clips
    -> FP16 ONNX (FP32 I/O), parity vs FP32
    -> INT8 Q/DQ ONNX calibrated on streamed training clips, TensorRT Q/DQ rules checked,
       accuracy on the held-out split vs FP32, ORT CPU latency vs FP32
    -> TensorRT engine where TensorRT and a GPU exist
    -> bundle (write_bundle, atomic) + `bundles/latest` (the CLI, `workspace.point_latest`)
       + optional Triton repository

Every input is validated before the slow work starts, every file is built in a temporary
directory, and the bundle appears only complete (`write_bundle` renames a finished dir).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from internvqa.runtime.atomic import scratch_directory
from internvqa.runtime.backend import Backend
from internvqa.runtime.backend_ort import OrtBackend
from internvqa.runtime.clipspec import ClipSpec
from internvqa.runtime.errors import InternVQAError, ManifestError, UsageError
from internvqa.runtime.manifest import check_videos_exist, read_manifest
from internvqa.runtime.workspace import bundle_name

from . import calibration, parity
from .fp16 import convert_fp16
from .onnx_export import OPSET, export_onnx, side_dim_of
from .qdq_rules import check_qdq

Log = Callable[[str], None]


class ExportError(InternVQAError):
    """The exported graph failed a check (parity bound, Q/DQ rules)."""


@dataclass
class ExportOptions:
    checkpoint: Path
    out: Path
    work: Path
    manifest: Path | None = None
    expect_architecture: str | None = None
    int8: bool = False
    fp16: bool = True
    engine: bool | None = None  # None: build where TensorRT and a GPU exist
    calib_clips: int = 512
    calib_method: str = "minmax"
    quantizer: str = "auto"  # auto | ort | modelopt
    parity_clips: int = 8
    eval_videos: int = 0  # 0: every held-out video
    latency_runs: int = 20
    max_batch: int = 8
    triton: Path | None = None
    progress: bool = True


@dataclass
class ExportResult:
    bundle: Path
    meta: dict
    engine_note: str = ""
    triton: list[Path] = field(default_factory=list)


def check_writable(out: Path) -> None:
    """UsageError unless `out` can be created (or replaced) by this user."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"output {out} exists and is not a directory")
    parent = out.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"output {out} is not writable ({parent} is read-only)")
    if out.exists() and not os.access(out.parent, os.W_OK | os.X_OK):
        raise UsageError(f"output {out} is not writable ({out.parent} is read-only)")


def _batches(clips: Iterable[calibration.Feeds], size: int) -> Iterator[calibration.Feeds]:
    """Group batch-1 feeds into batches of `size` (exercises the dynamic batch axis)."""
    buf: list[calibration.Feeds] = []
    for c in clips:
        buf.append(c)
        if len(buf) == size:
            yield calibration.concat_feeds(buf)
            buf = []
    if buf:
        yield calibration.concat_feeds(buf)


def _bar(total: int, desc: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="clip", leave=False, disable=not enabled,
                dynamic_ncols=True)


def _versions() -> dict:
    import onnx
    import onnxruntime
    import torch

    from .tensorrt_build import tensorrt_status

    ok, _ = tensorrt_status()
    trt = None
    if ok:
        import tensorrt

        trt = tensorrt.__version__
    return {"torch": torch.__version__, "onnx": onnx.__version__,
            "onnxruntime": onnxruntime.__version__, "opset": OPSET, "tensorrt": trt}


def _opset(path: Path) -> int:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


def load_inputs(opts: ExportOptions):
    """Checkpoint, clip spec, manifest rows: every user input checked before slow work."""
    from internvqa.distill.checkpoint import load_checkpoint

    model, config = load_checkpoint(opts.checkpoint, expect_architecture=opts.expect_architecture)
    spec = ClipSpec.from_dict(config["clip_spec"])
    manifest = opts.manifest or (config.get("provenance") or {}).get("manifest")
    if not manifest:
        raise UsageError(f"{opts.checkpoint}: checkpoint records no training manifest; "
                         "pass --manifest CSV for calibration and parity clips")
    rows = read_manifest(manifest)
    if not rows:
        raise ManifestError(f"{manifest}: no videos")
    check_videos_exist(rows)
    check_writable(opts.out)
    if opts.triton is not None:
        check_writable(opts.triton)
    return model, config, spec, Path(manifest), rows


def run_export(opts: ExportOptions, log: Log) -> ExportResult:
    """Run the whole export; raises an InternVQAError subclass on any user-facing problem."""
    model, config, spec, manifest, rows = load_inputs(opts)
    arch = config["model"]["architecture"]
    clip_shape = (3, spec.num_frames, spec.size, spec.size)
    scale = config["score_scale"]
    log(f"checkpoint {opts.checkpoint} ({arch}), clip {'x'.join(map(str, clip_shape))}, "
        f"manifest {manifest} ({len(rows)} videos)")

    with scratch_directory(opts.out) as tmp:
        files: dict[str, Path] = {}
        meta_files: dict[str, dict] = {}
        parity_report: dict = {"clips_from": str(manifest), "bounds": parity.BOUNDS}

        # 1. FP32 graph and parity against PyTorch.
        log("exporting FP32 ONNX (torch.onnx dynamo, opset 18)")
        fp32 = export_onnx(model, clip_shape, tmp / "model.onnx", max_batch=max(opts.max_batch, 64))
        files["model.onnx"] = fp32
        meta_files["model.onnx"] = {"precision": "fp32"}
        ort_fp32 = OrtBackend(fp32)
        clips = list(calibration.manifest_clips(rows, spec, opts.parity_clips, seed=1))
        if not clips:
            raise ManifestError(f"{manifest}: no clip could be read for the parity check")
        from internvqa.distill.torch_backend import TorchBackend

        got = parity.compare(TorchBackend(model), {"fp32": ort_fp32}, _batches(clips, 4))
        parity_report["pytorch_vs_fp32"] = got["fp32"]
        _check_bound("FP32 ONNX vs PyTorch", got["fp32"], parity.BOUNDS["fp32"])
        log(f"FP32 parity: score |diff| max {got['fp32']['score_abs_max']:.2e}, "
            f"feature cosine min {got['fp32']['feature_cos_min']:.6f}")

        # 2. FP16 graph.
        engines: dict[str, Backend] = {}
        if opts.fp16:
            log("converting to FP16 (FP32 I/O, norms and softmax in FP32)")
            files["model.fp16.onnx"] = convert_fp16(fp32, tmp / "model.fp16.onnx")
            meta_files["model.fp16.onnx"] = {"precision": "fp16"}
            engines["fp16"] = OrtBackend(files["model.fp16.onnx"])

        # 3. INT8 graph.
        quant_meta: dict = {}
        if opts.int8:
            int8_path, quant_meta = _quantize(opts, fp32, rows, spec, tmp, log)
            files["model.int8.onnx"] = int8_path
            meta_files["model.int8.onnx"] = {"precision": "int8", "quantization": quant_meta}
            engines["int8"] = OrtBackend(int8_path)

        if engines:
            got = parity.compare(ort_fp32, engines, _batches(clips, 4))
            for name, st in got.items():
                parity_report[f"{name}_vs_fp32"] = st
                log(f"{name.upper()} parity vs FP32: score |diff| max {st['score_abs_max']:.2e}, "
                    f"feature cosine min {st['feature_cos_min']:.6f}")
            if "fp16" in got:
                try:
                    _check_bound("FP16 ONNX vs FP32", got["fp16"], parity.BOUNDS["fp16"])
                except ExportError as exc:
                    # A graph that fails its bound is not shipped; the rest of the bundle is
                    # still good (FP32 is the reference, INT8 is held to its accuracy drop).
                    log(f"FP16 graph left out of the bundle: {exc}")
                    parity_report["fp16_dropped"] = str(exc)
                    files.pop("model.fp16.onnx").unlink()
                    meta_files.pop("model.fp16.onnx")
                    engines.pop("fp16")

        graphs = {"fp32": fp32, **{n: files[f"model.{n}.onnx"] for n in engines}}
        accuracy = _accuracy(opts, rows, spec, graphs, scale, log)
        latency: dict = {}
        if opts.int8 and opts.latency_runs > 0:
            from .latency import ort_latency

            log(f"timing FP32 vs INT8 on ONNX Runtime CPU, batch 1, {opts.latency_runs} runs")
            latency = ort_latency({"fp32": str(fp32), "int8": str(files["model.int8.onnx"])},
                                  clip_shape, runs=opts.latency_runs)
            log(f"latency: FP32 {latency['fp32']['median_ms']:.1f} ms, INT8 "
                f"{latency['int8']['median_ms']:.1f} ms (x{latency['int8_speedup_vs_fp32']:.2f})")

        versions = _versions()
        versions["opset"] = max(_opset(p) for p in files.values())
        engine_note, plan = _engine(opts, files, meta_files, clip_shape, tmp, versions, log,
                                    side_dim_of(model))
        meta = {
            "model": {"name": arch, "config": config["model"].get("config", {})},
            "clip_spec": spec.to_dict(),
            "inputs": _inputs_meta(model, clip_shape),
            "outputs": [{"name": "score", "shape": ["batch"], "dtype": "float32"},
                        {"name": "feature", "shape": ["batch", 768], "dtype": "float32"}],
            "score_scale": scale,
            "files": meta_files,
            "default_precision": _default_precision(opts.int8, latency, log),
            "versions": versions,
            "parity": parity_report,
            "accuracy": accuracy,
            "latency_cpu": latency,
            "engine": {"built": plan is not None, "note": engine_note},
            "source_checkpoint": str(Path(opts.checkpoint).resolve()),
            "checkpoint_metrics": config.get("metrics", {}),
        }
        from internvqa.runtime.bundle import write_bundle

        bundle = write_bundle(opts.out, files, meta)
        triton = []
        if opts.triton is not None:
            from .triton import write_triton_repo

            onnx_name = "model.int8.onnx" if opts.int8 else "model.onnx"
            triton = write_triton_repo(opts.triton, bundle_name(arch), bundle / onnx_name,
                                       clip_shape, opts.max_batch,
                                       bundle / plan if plan else None,
                                       side_dim=side_dim_of(model))
    import json

    written = json.loads((bundle / "bundle.json").read_text(encoding="utf-8"))
    return ExportResult(bundle, written, engine_note, triton)


def _graph_inputs(path: Path) -> list[str]:
    import onnx

    return [i.name for i in onnx.load(str(path), load_external_data=False).graph.input]


def _inputs_meta(model, clip_shape: tuple[int, ...]) -> list[dict]:
    inputs = [{"name": "video", "shape": ["batch", *clip_shape], "dtype": "float32"}]
    side = side_dim_of(model)
    if side:
        from internvqa.runtime.bitstream import SIDE_NAMES, SIDE_VERSION

        inputs.append({"name": "side", "shape": ["batch", side], "dtype": "float32",
                       "features": list(SIDE_NAMES), "version": SIDE_VERSION,
                       "optional": "all zeros = pixel-only mode"})
    return inputs


def _default_precision(int8: bool, latency: dict, log) -> str:
    """INT8 when it was asked for, unless the CPU timing above measured it slower than FP32
    (depthwise-conv CNNs such as EfficientNet-Lite0 ran ~5x slower as ORT Q/DQ here): then
    FP32 is the default and the INT8 graph stays in the bundle for TensorRT."""
    if not int8:
        return "fp32"
    speedup = latency.get("int8_speedup_vs_fp32")
    if speedup is not None and speedup < 1.0:
        log(f"default precision fp32: INT8 ran x{speedup:.2f} of FP32's speed on this CPU")
        return "fp32"
    return "int8"


def _check_bound(what: str, stats: dict, bound: dict) -> None:
    if stats["score_abs_max"] > bound["score_abs"] or stats["feature_cos_min"] < bound.get(
        "feature_cos", -1.0
    ):
        raise ExportError(
            f"{what} parity failed: score |diff| {stats['score_abs_max']:.3g} (bound "
            f"{bound['score_abs']}), feature cosine {stats['feature_cos_min']:.6f}"
        )


def _quantize(opts: ExportOptions, fp32: Path, rows, spec: ClipSpec, tmp: Path, log: Log):
    from . import quantize as q

    use_modelopt = opts.quantizer == "modelopt" or (
        opts.quantizer == "auto" and q.modelopt_available()
    )
    if opts.quantizer == "modelopt" and not q.modelopt_available():
        raise UsageError("--quantizer modelopt: nvidia-modelopt[onnx] is not importable here")
    calib_rows = calibration.calibration_rows(rows)
    tool = "modelopt" if use_modelopt else "onnxruntime"
    log(f"calibrating INT8 ({tool}, {opts.calib_method}) on up to {opts.calib_clips} clips "
        f"from {len(calib_rows)} training videos (streamed)")
    bar = _bar(opts.calib_clips, "calibration", opts.progress)
    reader = calibration.ClipCalibrationReader(calib_rows, spec, opts.calib_clips,
                                               input_names=_graph_inputs(fp32),
                                               progress=bar.update)
    out = tmp / "model.int8.onnx"
    try:
        if use_modelopt:
            q.quantize_int8_modelopt(fp32, out, reader, opts.calib_method)
        else:
            q.quantize_int8_ort(fp32, out, reader, opts.calib_method)
    finally:
        bar.close()
    violations = check_qdq(out)
    if violations:
        raise ExportError(f"INT8 graph breaks TensorRT's Q/DQ rules ({len(violations)}): "
                          f"{violations[0]}")
    if tool == "modelopt":
        import modelopt

        version = modelopt.__version__
    else:
        import onnxruntime

        version = onnxruntime.__version__
    meta = {"tool": tool, "tool_version": version, "format": "QDQ", "scheme":
            "int8 symmetric, per-channel weights, MatMul/Gemm/Conv inputs only, float bias",
            "calibration": {"method": opts.calib_method, "clips": reader.count,
                            "clips_requested": opts.calib_clips, "videos": len(calib_rows)},
            "qdq_rules": "passed"}
    return out, meta


def _accuracy(opts, rows, spec, graphs: dict[str, Path], scale, log: Log) -> dict:
    split, held = calibration.held_out_rows(rows)
    if len(graphs) < 2 or not held:
        return {"note": "no held-out split with MOS in the manifest" if not held else
                "only the FP32 graph was exported"}
    if opts.eval_videos:
        held = held[: opts.eval_videos]
    log(f"scoring {len(held)} held-out ({split}) videos with {', '.join(graphs)} "
        "(the runtime's Scorer)")
    bar = _bar(len(held), "accuracy", opts.progress)
    try:
        scores = parity.video_scores(held, spec, {k: str(v) for k, v in graphs.items()}, scale,
                                     progress=bar.update)
    finally:
        bar.close()
    mos = np.asarray([r.mos for r in held], dtype=np.float64)
    report = parity.accuracy_report(scores, mos, split)
    if "int8" in report:
        i8 = report["int8"]
        log(f"INT8 on {split}: SRCC {i8['srcc']:.4f} (drop {i8['srcc_drop']:+.4f}), PLCC "
            f"{i8['plcc']:.4f} (drop {i8['plcc_drop']:+.4f}), score MAE vs FP32 "
            f"{i8['score_mae_vs_fp32']:.3f}")
    return report


def _engine(opts, files, meta_files, clip_shape, tmp: Path, versions: dict, log: Log,
            side_dim: int = 0):
    """Build the TensorRT plan when asked/possible; returns (note, plan name or None)."""
    from . import tensorrt_build as tb

    source = "model.int8.onnx" if "model.int8.onnx" in files else (
        "model.fp16.onnx" if "model.fp16.onnx" in files else "model.onnx")
    if opts.engine is False:
        return "engine step disabled (--no-engine)", None
    ok, why = tb.tensorrt_status()
    hint = tb.rebuild_hint(opts.out, source, clip_shape, opts.max_batch, side_dim)
    if not ok:
        if opts.engine:
            raise UsageError(f"--engine: cannot build a TensorRT engine here: {why}")
        note = f"TensorRT engine skipped: {why}. To build it on a GPU host: {hint}"
        log(note)
        return note, None
    precision = meta_files[source]["precision"]
    gpu = tb.gpu_name() or "gpu"
    import tensorrt

    name = tb.engine_name(precision, gpu, tensorrt.__version__)
    log(f"building TensorRT engine {name} from {source} (strongly typed, batch 1..{opts.max_batch})")
    info = tb.build_engine(files[source], tmp / name, clip_shape, opts.max_batch,
                           timing_cache=opts.work / "trt_timing.cache")
    files[name] = tmp / name
    meta_files[name] = {"precision": precision, **info}
    return f"engine {name} built", name
