"""TensorRT engine from an FP16 or INT8 ONNX graph: a strongly-typed build.

Precision lives in the graph (REFERENCE section 5): FP16 initializers/ops or explicit
Q/DQ nodes. So there are no precision builder flags and no calibrator here: TensorRT 11
removed both, and on TensorRT 10 the network is created STRONGLY_TYPED so it follows the
graph's types exactly as 11 does by default. The rest is NVIDIA's sample shape: parse the
ONNX file, set a workspace limit, one optimization profile for batch 1..max, reuse and
update a timing cache on disk, serialize.

Engines are specific to the GPU and TensorRT version, so the file name says both:
`model.int8.h100.trt10.16.plan`.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from internvqa.runtime.atomic import atomic_write_bytes
from internvqa.runtime.errors import InternVQAError

from .onnx_export import INPUT_NAME, SIDE_NAME


class EngineBuildError(InternVQAError):
    """TensorRT could not parse or build the graph."""


def tensorrt_status() -> tuple[bool, str]:
    """(can build here, why not): needs the tensorrt package and a CUDA GPU."""
    try:
        import tensorrt as trt
    except Exception as exc:  # noqa: BLE001 - ImportError or a broken CUDA install
        return False, f"the tensorrt package is not installed ({type(exc).__name__})"
    if gpu_name() is None:
        return False, f"tensorrt {trt.__version__} is installed but no CUDA GPU is visible"
    return True, ""


def gpu_name() -> str | None:
    """Name of GPU 0, or None without a usable GPU."""
    try:
        import torch

        if torch.cuda.is_available():
            return torch.cuda.get_device_name(0)
    except Exception:  # noqa: BLE001 - a CPU-only or broken torch
        pass
    smi = shutil.which("nvidia-smi")
    if smi:
        import subprocess

        out = subprocess.run([smi, "--query-gpu=name", "--format=csv,noheader"],
                             capture_output=True, text=True, check=False)
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.splitlines()[0].strip()
    return None


def gpu_tag(name: str) -> str:
    """'NVIDIA H100 80GB HBM3' -> 'h100'; 'NVIDIA GeForce RTX 4090' -> 'rtx4090'."""
    words = [w for w in re.split(r"[\s_-]+", name) if w.lower() not in ("nvidia", "geforce", "tesla")]
    for i, w in enumerate(words):
        if w.upper() == "RTX" and i + 1 < len(words):
            return ("rtx" + words[i + 1]).lower()
        if re.fullmatch(r"[A-Za-z]+\d+[A-Za-z]*", w):
            return w.lower()
    return re.sub(r"[^a-z0-9]+", "", name.lower())[:16] or "gpu"


def trt_tag(version: str) -> str:
    """'10.16.0.72' -> 'trt10.16'."""
    return "trt" + ".".join(version.split(".")[:2])


def engine_name(precision: str, gpu: str, trt_version: str) -> str:
    return f"model.{precision}.{gpu_tag(gpu)}.{trt_tag(trt_version)}.plan"


def build_engine(
    onnx_path: str | Path,
    plan_path: str | Path,
    clip_shape: tuple[int, int, int, int],
    max_batch: int = 8,
    workspace_gib: float = 4.0,
    timing_cache: str | Path | None = None,
) -> dict:
    """Build and write a serialized engine; returns what bundle.json records about it."""
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    major = int(trt.__version__.split(".")[0])
    flags = 0
    if major < 11:  # 11.x networks are strongly typed by default (and the flag is gone)
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise EngineBuildError(f"TensorRT could not parse {onnx_path}: {errors}")

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gib * (1 << 30)))

    profile = builder.create_optimization_profile()
    opt = max(1, min(max_batch, 4))
    profile.set_shape(INPUT_NAME, (1, *clip_shape), (opt, *clip_shape), (max_batch, *clip_shape))
    for i in range(network.num_inputs):  # a hybrid model's bitstream side input (B, K)
        tensor = network.get_input(i)
        if tensor.name == SIDE_NAME:
            k = int(tensor.shape[1])
            profile.set_shape(SIDE_NAME, (1, k), (opt, k), (max_batch, k))
    config.add_optimization_profile(profile)

    cache_path = Path(timing_cache) if timing_cache else None
    cache_bytes = cache_path.read_bytes() if cache_path and cache_path.is_file() else b""
    cache = config.create_timing_cache(cache_bytes)
    config.set_timing_cache(cache, ignore_mismatch=False)

    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise EngineBuildError(f"TensorRT failed to build an engine from {onnx_path}")
    plan_path = Path(plan_path)
    atomic_write_bytes(plan_path, bytes(serialized))
    if cache_path is not None:
        atomic_write_bytes(cache_path, bytes(config.get_timing_cache().serialize()))
    return {
        "tensorrt_version": trt.__version__,
        "gpu": gpu_name() or "",
        "strongly_typed": True,
        "profile": {"min": 1, "opt": opt, "max": max_batch},
        "built_from": Path(onnx_path).name,
    }


def rebuild_hint(bundle_dir: str | Path, onnx_name: str, clip_shape: tuple[int, ...],
                 max_batch: int, side_dim: int = 0) -> str:
    """The commands that build the engine on a GPU host (printed when this host can't)."""
    dims = "x".join(str(d) for d in clip_shape)
    opt = min(4, max_batch)

    def shapes(batch: int) -> str:
        side = f",{SIDE_NAME}:{batch}x{side_dim}" if side_dim else ""
        return f"{INPUT_NAME}:{batch}x{dims}{side}"

    return (
        f"vqa-export --engine-only {bundle_dir}   (on a GPU host with TensorRT, e.g. the "
        f"runtime docker image), or: trtexec --onnx={Path(bundle_dir) / onnx_name} "
        f"--stronglyTyped --minShapes={shapes(1)} --optShapes={shapes(opt)} "
        f"--maxShapes={shapes(max_batch)} "
        f"--saveEngine=model.plan   (TensorRT 10: keep --stronglyTyped; 11: it is the default; "
        f"no --int8/--fp16 flags, precision comes from the graph)"
    )
