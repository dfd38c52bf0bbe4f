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
    "BundleError",
    "CheckpointError",
    "InternVQAError",
    "ManifestError",
    "UsageError",
    "VideoError",
]
