"""TensorRT backend: run a serialized plan with the TensorRT 10/11 named-tensor API.

GPU hosts only (needs `tensorrt` and `cuda-python`, imported when a backend is created).
Shape of the code, as in NVIDIA's Python samples:

- deserialize the plan with `trt.Runtime`, make one execution context;
- find the I/O tensors by name (`num_io_tensors`, `get_tensor_name`, `get_tensor_mode`);
- allocate pinned host buffers (`cudaMallocHost`) and device buffers (`cudaMalloc`) ONCE,
  sized for the largest batch of optimization profile 0, and reuse them for every call;
- per call: copy the batch into the pinned input, `set_input_shape`, async H2D copy,
  `execute_async_v3`, async D2H copies, one stream synchronise.

Batches larger than the profile's maximum are split. One context, one stream and one set
of buffers serve every caller, so `run` holds a lock (TensorRT contexts are not
re-entrant); for concurrency on one GPU create one backend per thread.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import threading

import numpy as np

from internvqa.runtime.backend import SIDE_INPUT, check_outputs, side_input
from internvqa.runtime.errors import BundleError


def _cuda(result):
    """Unpack a cuda-python call's `(err, *values)`; raise on any error."""
    from cuda.bindings import runtime as cudart

    err, values = result[0], result[1:]
    if err != cudart.cudaError_t.cudaSuccess:
        name = cudart.cudaGetErrorName(err)[1]
        raise RuntimeError(f"CUDA error {name.decode() if isinstance(name, bytes) else name}")
    if not values:
        return None
    return values[0] if len(values) == 1 else values


class _Buffer:
    """A pinned host array and a device allocation of the same size, for one tensor."""

    def __init__(self, name: str, dtype: np.dtype, max_shape: tuple[int, ...]):
        from cuda.bindings import runtime as cudart

        self.name, self.dtype = name, np.dtype(dtype)
        self.nbytes = int(np.prod(max_shape)) * self.dtype.itemsize
        self.host_ptr = _cuda(cudart.cudaMallocHost(self.nbytes))
        self.device_ptr = _cuda(cudart.cudaMalloc(self.nbytes))
        raw = (ctypes.c_byte * self.nbytes).from_address(int(self.host_ptr))
        self.host = np.frombuffer(raw, dtype=self.dtype)  # flat view of the pinned memory

    def free(self) -> None:
        from cuda.bindings import runtime as cudart

        if self.device_ptr is not None:
            _cuda(cudart.cudaFree(self.device_ptr))
            _cuda(cudart.cudaFreeHost(self.host_ptr))
            self.device_ptr = self.host_ptr = None


class TensorRTBackend:
    """A deserialized TensorRT engine: input `video` (+ `side` for a hybrid model), outputs
    `score`, `feature`."""

    def __init__(self, plan_path: str | os.PathLike, device: int = 0):
        try:
            import tensorrt as trt
            from cuda.bindings import runtime as cudart
        except ImportError as exc:
            raise BundleError(
                f"{plan_path}: running a TensorRT plan needs tensorrt and cuda-python "
                f"({exc.name} missing); use an ONNX precision or the runtime docker image"
            ) from None
        self._trt = trt
        _cuda(cudart.cudaSetDevice(device))
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        with open(plan_path, "rb") as fh:
            self.engine = self._runtime.deserialize_cuda_engine(fh.read())
        if self.engine is None:
            raise BundleError(f"{plan_path}: TensorRT could not deserialize the plan "
                              "(other TensorRT version or GPU?)")
        self.context = self.engine.create_execution_context()
        self.stream = _cuda(cudart.cudaStreamCreate())
        self._lock = threading.Lock()
        self.name = "tensorrt"
        self.providers = [f"TensorRT {trt.__version__}"]

        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        is_input = {n: self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT for n in names}
        inputs = [n for n in names if is_input[n]]
        outputs = [n for n in names if not is_input[n]]
        side = [n for n in inputs if n == SIDE_INPUT]
        pixels = [n for n in inputs if n != SIDE_INPUT]
        if len(pixels) != 1 or len(outputs) < 2:
            raise BundleError(f"{plan_path}: expected input video (+ side) and 2 outputs, got {names}")
        self._input = pixels[0]
        self._side = side[0] if side else None
        self._outputs = ["score", "feature"] if {"score", "feature"} <= set(outputs) else outputs[:2]

        # Largest input shape the engine accepts: profile 0's max for a dynamic batch axis.
        shape = tuple(self.engine.get_tensor_shape(self._input))
        if shape[0] == -1:
            max_shape = tuple(self.engine.get_tensor_profile_shape(self._input, 0)[2])
        else:
            max_shape = shape
        self.max_batch = int(max_shape[0])
        self._sample_shape = tuple(int(d) for d in max_shape[1:])

        # Output shapes at the max batch tell every buffer's size.
        self.context.set_input_shape(self._input, max_shape)
        self.side_dim = None
        side_max: tuple[int, ...] = ()
        if self._side is not None:
            s_shape = tuple(self.engine.get_tensor_shape(self._side))
            side_max = (tuple(self.engine.get_tensor_profile_shape(self._side, 0)[2])
                        if s_shape[0] == -1 else s_shape)
            self.side_dim = int(side_max[1])
            self.context.set_input_shape(self._side, side_max)
        self._buffers: dict[str, _Buffer] = {}
        try:
            ins = [self._input] + ([self._side] if self._side else [])
            for n in [*ins, *self._outputs]:
                dims = {self._input: max_shape, self._side: side_max}.get(n) or tuple(
                    self.context.get_tensor_shape(n))
                if any(d < 0 for d in dims):
                    raise BundleError(f"{plan_path}: output {n} has unresolved shape {dims}")
                dtype = trt.nptype(self.engine.get_tensor_dtype(n))
                self._buffers[n] = _Buffer(n, dtype, dims)
                self.context.set_tensor_address(n, int(self._buffers[n].device_ptr))
        except BaseException:
            self.close()
            raise

    def run(self, x: np.ndarray, side: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        if tuple(x.shape[1:]) != self._sample_shape:
            raise ValueError(f"input {x.shape} does not match engine {self._sample_shape}")
        if self.side_dim is not None:
            side = side_input(side, x.shape[0], self.side_dim)
        scores, feats = [], []
        for start in range(0, x.shape[0], self.max_batch):
            part = None if side is None or self.side_dim is None else side[start : start + self.max_batch]
            s, f = self._run_chunk(x[start : start + self.max_batch], part)
            scores.append(s)
            feats.append(f)
        return np.concatenate(scores), np.concatenate(feats)

    def _run_chunk(self, x: np.ndarray, side: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        from cuda.bindings import runtime as cudart

        h2d = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        d2h = cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        batch = x.shape[0]
        with self._lock:
            inp = self._buffers[self._input]
            n_in = x.size
            inp.host[:n_in] = x.astype(inp.dtype, copy=False).ravel()
            self.context.set_input_shape(self._input, tuple(x.shape))
            _cuda(cudart.cudaMemcpyAsync(inp.device_ptr, inp.host_ptr, n_in * inp.dtype.itemsize,
                                         h2d, self.stream))
            if self._side is not None and side is not None:
                sbuf = self._buffers[self._side]
                sbuf.host[: side.size] = side.astype(sbuf.dtype, copy=False).ravel()
                self.context.set_input_shape(self._side, tuple(side.shape))
                _cuda(cudart.cudaMemcpyAsync(sbuf.device_ptr, sbuf.host_ptr,
                                             side.size * sbuf.dtype.itemsize, h2d, self.stream))
            if not self.context.execute_async_v3(int(self.stream)):
                raise RuntimeError("TensorRT execute_async_v3 failed")
            results = []
            for n in self._outputs:
                buf = self._buffers[n]
                count = int(np.prod(tuple(self.context.get_tensor_shape(n))))
                _cuda(cudart.cudaMemcpyAsync(buf.host_ptr, buf.device_ptr,
                                             count * buf.dtype.itemsize, d2h, self.stream))
                results.append((buf, count))
            _cuda(cudart.cudaStreamSynchronize(self.stream))
            # Copy out of the pinned buffers before the lock is released.
            score, feature = (b.host[:c].astype(np.float32) for b, c in results)
        return check_outputs(score, feature, batch)

    def close(self) -> None:
        from cuda.bindings import runtime as cudart

        for buf in getattr(self, "_buffers", {}).values():
            buf.free()
        self._buffers = {}
        if getattr(self, "stream", None) is not None:
            _cuda(cudart.cudaStreamDestroy(self.stream))
            self.stream = None

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # interpreter shutdown: CUDA may be gone
            self.close()
