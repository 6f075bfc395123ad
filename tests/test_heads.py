"""Rebuilding a head's class outputs (slim/heads.py): shapes, forward, nc attributes, everything else untouched."""

import pytest
import torch
from ultralytics import YOLO

from slim import ultra
from slim.heads import rebuild_class_outputs_
from tests.models import outputs

# model yaml -> the rebuilt layers' names for 3 classes; yolo26n has one-to-one class branches too
CASES = {
    "yolov8n.yaml": ["cv3.0.2", "cv3.1.2", "cv3.2.2"],
    "yolov8n-seg.yaml": ["cv3.0.2", "cv3.1.2", "cv3.2.2"],
    "yolov8n-pose.yaml": ["cv3.0.2", "cv3.1.2", "cv3.2.2"],
    "yolov8n-obb.yaml": ["cv3.0.2", "cv3.1.2", "cv3.2.2"],
    "yolov8n-cls.yaml": ["linear"],
    "yolo26n.yaml": ["cv3.0.2", "cv3.1.2", "cv3.2.2", "one2one_cv3.0.2", "one2one_cv3.1.2", "one2one_cv3.2.2"],
}
NC = 3


def _params(model, skip=()):
    """name -> shape of every parameter not under one of the `skip` prefixes."""
    return {n: tuple(p.shape) for n, p in model.named_parameters() if not n.startswith(tuple(skip))}


def _check_rebuilt(model, yaml_name):
    head_name = f"model.{len(model.model) - 1}"
    before = {n: p.clone() for n, p in model.named_parameters()}
    names = {i: f"c{i}" for i in range(NC)}
    message = ultra.adapt_classes_(model, names)
    rebuilt = [f"{head_name}.{r}" for r in CASES[yaml_name]]
    assert message and str(NC) in message and "rebuilt" in message
    after = dict(model.named_parameters())
    kept = _params(model, rebuilt)
    assert kept == {n: tuple(p.shape) for n, p in before.items() if not n.startswith(tuple(rebuilt))}
    assert all(torch.equal(after[n], before[n]) for n in kept)  # weights too, not only shapes
    head = model.model[-1]
    out_dim = {n: p.shape[0] for n, p in after.items() if n.startswith(tuple(rebuilt))}
    assert out_dim and set(out_dim.values()) == {NC}
    assert model.names == names and model.yaml["nc"] == NC
    if hasattr(head, "cv3"):
        assert head.nc == NC and head.no == NC + 4 * head.reg_max
    model.eval()
    imgsz = 64
    with torch.no_grad():
        y = outputs(model(torch.zeros(1, 3, imgsz, imgsz)))
    if hasattr(head, "cv3"):
        extra = getattr(head, "nm", 0) + getattr(head, "nk", 0) + getattr(head, "ne", 0)  # masks, keypoints, angle
        assert y[0].shape[1] == 4 + NC + extra, [t.shape for t in y]
    else:
        assert y[0].shape == (1, NC)
    assert ultra.adapt_classes_(model, names) is None  # same count: nothing changes


@pytest.mark.parametrize("yaml_name", list(CASES))
def test_rebuild_on_models_from_yaml(yaml_name):
    _check_rebuilt(YOLO(yaml_name).model.float(), yaml_name)


@pytest.mark.parametrize("yaml_name", ["yolov8n-seg.yaml", "yolov8n-cls.yaml", "yolo26n.yaml"])
def test_rebuild_on_saved_and_loaded_checkpoints(yaml_name, tmp_path):
    path = tmp_path / "m.pt"
    YOLO(yaml_name).save(str(path))
    model, _ = ultra.load_model(path)
    _check_rebuilt(model, yaml_name)


def test_detect_class_bias_follows_the_ultralytics_prior():
    head = YOLO("yolov8n.yaml").model.model[-1]
    rebuild_class_outputs_(head, NC)
    # Detect.bias_init: log(5 / nc / (640 / stride) ** 2), for stride 8 at level 0
    assert torch.allclose(head.cv3[0][-1].bias, torch.full((NC,), -8.2532), atol=1e-3)


def test_unknown_head_and_bad_count_are_refused():
    with pytest.raises(ValueError, match="neither"):
        rebuild_class_outputs_(torch.nn.Conv2d(3, 3, 1), NC)
    with pytest.raises(ValueError, match="at least 1"):
        rebuild_class_outputs_(YOLO("yolov8n.yaml").model.model[-1], 0)
