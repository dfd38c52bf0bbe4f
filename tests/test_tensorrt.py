"""TensorRT engine build from the INT8 and FP16 graphs (GPU hosts with TensorRT only).

TensorRT cannot be installed on the project's CPU machines (REFERENCE section 5: the
PyPI wheel downloads from NVIDIA's index), so this module skips there. No fake tensorrt
module stands in for it: a build that was never run proves nothing.
"""

from __future__ import annotations

import numpy as np
import pytest

trt = pytest.importorskip(
    "tensorrt", reason="tensorrt is not installed (CPU host); run on a GPU host or in the "
    "runtime docker image"
)

from internvqa.distill.models import create_model  # noqa: E402
from internvqa.export import tensorrt_build as tb  # noqa: E402
from internvqa.export.fp16 import convert_fp16  # noqa: E402
from internvqa.export.onnx_export import export_onnx  # noqa: E402
from internvqa.export.quantize import quantize_int8_ort  # noqa: E402

pytestmark = [pytest.mark.tensorrt, pytest.mark.slow]


@pytest.fixture(scope="module")
def graphs(tmp_path_factory):
    if not tb.tensorrt_status()[0]:
        pytest.skip(tb.tensorrt_status()[1])
    d = tmp_path_factory.mktemp("trt")
    model = create_model("vit_tiny").eval()
    shape = model.default_clip_shape
    fp32 = export_onnx(model, shape, d / "model.onnx")

    class Clips:
        i = 0

        def get_next(self):
            self.i += 1
            return None if self.i > 4 else {
                "video": np.random.default_rng(self.i).standard_normal((1, *shape)).astype(np.float32)}

    return {"dir": d, "shape": shape, "fp32": fp32,
            "fp16": convert_fp16(fp32, d / "model.fp16.onnx"),
            "int8": quantize_int8_ort(fp32, d / "model.int8.onnx", Clips())}


@pytest.mark.parametrize("precision", ["int8", "fp16"])
def test_strongly_typed_build(graphs, precision):
    d = graphs["dir"]
    name = tb.engine_name(precision, tb.gpu_name(), trt.__version__)
    cache = d / "timing.cache"
    info = tb.build_engine(graphs[precision], d / name, graphs["shape"], max_batch=4,
                           timing_cache=cache)
    assert (d / name).stat().st_size > 0 and cache.stat().st_size > 0
    assert info["tensorrt_version"] == trt.__version__ and info["profile"]["max"] == 4
    runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
    engine = runtime.deserialize_cuda_engine((d / name).read_bytes())
    names = {engine.get_tensor_name(i) for i in range(engine.num_io_tensors)}
    assert names == {"video", "score", "feature"}
