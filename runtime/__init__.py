"""Torch-free runtime of InternVQA: clip spec, video IO, metrics, bundles and scoring.

This package must never import torch, timm or onnx (a test enforces it): it is what an
encoder farm embeds.
"""

from internvqa.runtime.errors import (
    BundleError,
    CheckpointError,
    InternVQAError,
    ManifestError,
    UsageError,
    VideoError,
)

__all__ = [
    "Bundle",
    "BundleError",
    "CheckpointError",
    "InternVQAError",
    "ManifestError",
    "UsageError",
    "VideoError",
    "ClipSpec",
    "Scorer",
    "ScoreStream",
    "ScoreResult",
    "WindowScore",
    "load_bundle",
]

# Scoring API, imported on first use so `import internvqa.runtime` stays light
# (no numpy/cv2/onnxruntime until a name below is touched).
_LAZY = {
    "ClipSpec": "internvqa.runtime.clipspec",
    "Scorer": "internvqa.runtime.scorer",
    "ScoreStream": "internvqa.runtime.scorer",
    "ScoreResult": "internvqa.runtime.scorelog",
    "WindowScore": "internvqa.runtime.scorelog",
    "Bundle": "internvqa.runtime.bundle",
    "load_bundle": "internvqa.runtime.bundle",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
