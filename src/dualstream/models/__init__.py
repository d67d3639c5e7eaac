"""Models: self-attention fusion, dual-stream networks and the registry.

Use :func:`create_model` with a name from :func:`list_models`; every model is
called as ``model(rgb, flow)`` with ``rgb`` of shape ``(B, 3 * frames, S, S)``
and ``flow`` of shape ``(B, 2 * frames, S, S)`` and returns class scores
``(B, num_classes)``.

Conventions:

* ``model.default_cfg == {"name", "input_size", "frames"}`` as built.
* Fusion models expose ``model.attention``: one :class:`SelfAttention2d` for
  early fusion, an ``nn.ModuleList`` ``[rgb, flow]`` for late fusion, ``None``
  for ``concat_fusion``.  Set ``layer.record = True`` to keep the (B, N, N)
  weights in ``layer.last_attention``; set ``layer.fused = False`` before export.
* ``two_stream_average`` returns log-probabilities (softmax and cross-entropy
  treat them like logits).
* :func:`format_model_table` lists parameters and GFLOPs of every model.
"""

# importing the model modules registers their builders
from . import baselines as _baselines  # noqa: F401
from . import early_fusion as _early_fusion  # noqa: F401
from . import late_fusion as _late_fusion  # noqa: F401
from .attention import SelfAttention2d
from .registry import create_model, list_models, register_model
from .summary import format_model_table, summary_rows

__all__ = [
    "SelfAttention2d",
    "create_model",
    "format_model_table",
    "list_models",
    "register_model",
    "summary_rows",
]
