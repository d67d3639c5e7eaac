"""Model registry: small named builders that only fill in keyword arguments (timm style).

A builder is a function ``builder(**kwargs) -> nn.Module`` decorated with
:func:`register_model`; its ``__name__`` is the model name.  :func:`register` makes one from a
class and its default arguments, so that every model gets the same ``default_cfg`` record.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

__all__ = ["register_model", "register", "create_model", "list_models"]

Builder = Callable[..., nn.Module]
_MODELS: dict[str, Builder] = {}


def register_model(fn: Builder) -> Builder:
    """Register ``fn`` under ``fn.__name__``; a name registered twice raises ``ValueError``."""
    name = fn.__name__
    if name in _MODELS:
        raise ValueError(f"model {name!r} is already registered")
    _MODELS[name] = fn
    return fn


def list_models() -> list[str]:
    """The registered model names, sorted."""
    return sorted(_MODELS)


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build the registered model ``name``; ``kwargs`` override the builder's defaults.

    Raises ``ValueError`` (listing the choices) for an unknown name; an unknown
    keyword argument raises ``TypeError`` from the model's constructor.
    """
    if name not in _MODELS:
        raise ValueError(f"unknown model {name!r}; choices: {', '.join(list_models())}")
    return _MODELS[name](**kwargs)


def register(name: str, cls: Callable[..., nn.Module], defaults: dict[str, Any]) -> None:
    """Register a builder ``name`` of ``cls`` with ``defaults`` updated by the caller's kwargs.

    The model gets ``default_cfg == {"name", "input_size", "frames"}`` as built, so callers (training,
    summary table) know the registry name and the input the model was configured for.
    """
    def builder(**kwargs: Any) -> nn.Module:
        model = cls(**{**defaults, **kwargs})
        model.default_cfg = {"name": name, "input_size": model.input_size, "frames": model.frames}
        model.name = name
        return model

    builder.__name__ = name
    register_model(builder)
