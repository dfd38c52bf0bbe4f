"""Models: the InternVideo2 family, timm students, and the registry that builds them by name.

Every model maps a clip (B, 3, T, H, W) (+ `side` (B, K) for a hybrid student) to
`(score (B,), feature (B, 768))`: score first, the order of the exported graph's outputs
(`score`, `feature`; `internvqa.export.onnx_export`) and of the runtime's `Backend.run`.
One order end to end: training, distillation losses, export and the engines read it as is.
"""

from .registry import (
    TIMM_EXAMPLES,
    create_from_config,
    create_model,
    list_models,
    model_config,
    register_model,
)

__all__ = [
    "TIMM_EXAMPLES",
    "create_from_config",
    "create_model",
    "list_models",
    "model_config",
    "register_model",
]
