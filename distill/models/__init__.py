"""Models: the InternVideo2 family, timm students, and the registry that builds them by name.

Every model maps a clip (B, 3, T, H, W) to `(feature (B, 768), score (B,))`.
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
