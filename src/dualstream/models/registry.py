"""Model registry: small named builders that only fill in keyword arguments (timm style).

A builder is a function ``builder(**kwargs) -> nn.Module`` decorated with
:func:`register_model`; its ``__name__`` is the model name.  Builders use
:func:`build` so that every model gets the same ``default_cfg`` record.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

__all__ = ["register_model", "create_model", "list_models", "build"]

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
    try:
        builder = _MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; choices: {', '.join(list_models())}") from None
    return builder(**kwargs)


def build(cls: Callable[..., nn.Module], name: str, defaults: dict[str, Any], kwargs: dict[str, Any]) -> nn.Module:
    """Instantiate ``cls`` with ``defaults`` updated by ``kwargs`` and attach ``default_cfg``.

    ``default_cfg`` is ``{"name", "input_size", "frames"}`` as built, so callers
    (training, summary table) know the registry name and the input the model
    was configured for.
    """
    cfg = {**defaults, **kwargs}
    model = cls(**cfg)
    model.default_cfg = {
        "name": name,
        "input_size": getattr(model, "input_size"),
        "frames": getattr(model, "frames"),
    }
    model.name = name
    return model
