import pytest
import torch

from dualstream.inference.package import load_model
from dualstream.engine.checkpoint import save_model_package
from dualstream.inference.package import ModelPackageError
from dualstream.models import create_model


def _spec(classes):
    return {"name": "early_fusion_small", "kwargs": {"widths": [8, 4, 8]}, "classes": classes, "frames": 4, "input_size": 32}


def test_model_package_roundtrip(tmp_path):
    model = create_model("early_fusion_small", num_classes=3, frames=4, input_size=32, widths=[8, 4, 8]).eval()
    save_model_package(tmp_path, model, _spec(["a", "b", "c"]))
    loaded, spec = load_model(tmp_path)
    rgb, flow = torch.randn(2, 12, 32, 32), torch.randn(2, 8, 32, 32)
    assert spec["classes"] == ["a", "b", "c"]
    assert torch.equal(model(rgb, flow), loaded(rgb, flow))


def test_weights_for_another_class_count_fail_clearly(tmp_path):
    model = create_model("early_fusion_small", num_classes=3, frames=4, input_size=32, widths=[8, 4, 8])
    save_model_package(tmp_path, model, _spec(["a", "b", "c"]))
    (tmp_path / "model.json").write_text((tmp_path / "model.json").read_text().replace('"c"', '"c", "d"'))
    with pytest.raises(ModelPackageError, match="do not fit"):
        load_model(tmp_path)


def test_not_a_run(tmp_path):
    with pytest.raises(ModelPackageError, match="model.json"):
        load_model(tmp_path)
