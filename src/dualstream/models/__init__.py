"""Models: self-attention fusion, dual-stream networks and the registry."""

from . import early_fusion  # noqa: F401  (registers the builders)
from .attention import SelfAttention2d
from .registry import create_model, list_models, register_model

__all__ = ["SelfAttention2d", "create_model", "list_models", "register_model"]
