"""Model registry: names, unknown names, duplicates, builder defaults (interface for the trainer)."""

from __future__ import annotations

import pytest
from torch import nn

from dualstream.models import create_model, list_models, register_model


def test_list_models_is_sorted_and_contains_paper_models() -> None:
    """The trainer lists models by name; both paper models and the small demo model are there."""
    names = list_models()
    assert names == sorted(names)
    assert {"early_fusion", "early_fusion_small"} <= set(names)


def test_unknown_name_raises_value_error_listing_choices() -> None:
    """A typo must fail loudly and say what exists."""
    with pytest.raises(ValueError, match="early_fusion_small"):
        create_model("early_fusoin", num_classes=3)


def test_duplicate_name_raises() -> None:
    """Registering a second builder under an existing name is an error, not a silent override."""

    def early_fusion(**kwargs) -> nn.Module:  # same name as the paper model
        return nn.Identity()

    with pytest.raises(ValueError, match="already registered"):
        register_model(early_fusion)
    assert create_model("early_fusion_small", num_classes=3).default_cfg["name"] == "early_fusion_small"


def test_unknown_kwarg_raises_type_error() -> None:
    """Builders only fill in keyword arguments; a wrong one reaches the constructor and fails."""
    with pytest.raises(TypeError):
        create_model("early_fusion_small", num_classes=3, widht=8)


def test_default_cfg_records_name_size_and_frames() -> None:
    """default_cfg tells the trainer which input the model was built for; kwargs override defaults."""
    model = create_model("early_fusion_small", num_classes=4, frames=6, input_size=32)
    assert model.default_cfg == {"name": "early_fusion_small", "input_size": 32, "frames": 6}
    assert create_model("early_fusion", num_classes=4).default_cfg == {
        "name": "early_fusion",
        "input_size": 224,
        "frames": 10,
    }
