"""The channel graph: tied channels follow the structure, for every architecture slim supports."""

import pytest
from ultralytics import YOLO

from slim.groups import RESIDUAL, analyze, prunable_bns
from slim.plan import gamma_scores
from slim.report import prunable_gammas


@pytest.mark.parametrize(
    "yaml, residual",
    # residual-tied BN counts from ../shared/NOTES.md, which counted them off the ultralytics source
    [("yolov8n.yaml", 10), ("yolo11n.yaml", 22), ("yolo26n.yaml", 28), ("yolov8s.yaml", 10)],
)
def test_residual_tied_counts_match_the_structure(yaml, residual):
    graph = analyze(YOLO(yaml).model)
    assert len(graph.residual_tied) == residual


def test_yolov8_residual_set_is_c2f_cv1_and_bottleneck_cv2():
    graph = analyze(YOLO("yolov8n.yaml").model)
    # backbone C2f layers 2, 4, 6, 8 have shortcut bottlenecks (1, 2, 2, 1 of them at scale n)
    expected = {f"model.{i}.cv1" for i in (2, 4, 6, 8)}
    expected |= {f"model.{i}.m.{j}.cv2" for i, n in ((2, 1), (4, 2), (6, 2), (8, 1)) for j in range(n)}
    assert set(graph.residual_tied) == expected
    assert all(graph.tied[name] == RESIDUAL for name in expected)


def test_neck_c2f_without_shortcut_is_prunable_with_equal_halves():
    graph = analyze(YOLO("yolov8n.yaml").model)
    assert "model.12.cv1" in graph.prunable and graph.parts["model.12.cv1"] == 2
    assert graph.split_owner["model.12.cv1"] == "model.12"


def test_depthwise_and_attention_are_tied_in_yolo11():
    graph = analyze(YOLO("yolo11n.yaml").model)
    reasons = set(graph.tied.values())
    assert {"depthwise conv", "attention", RESIDUAL} <= reasons
    assert "model.10.m.0.ffn.0" in graph.prunable  # the PSA feed-forward hidden layer is internal


def test_fixed_width_outputs_are_never_producers_or_are_tied():
    graph = analyze(YOLO("yolov8n-seg.yaml").model)
    assert graph.tied["model.22.proto.cv3"] == "model output"  # mask prototypes: fixed count
    assert not any(name.endswith((".cv2.0.2", ".cv3.0.2")) for name in graph.producers)  # plain Conv2d heads


def test_consumers_cover_concat_offsets():
    graph = analyze(YOLO("yolov8n.yaml").model)
    # layer 12 reads Concat(upsampled layer 9, layer 6): layer 6's channels start at 256 (yolov8n widths)
    reads = graph.consumers["model.12.cv1.conv"]
    offsets = {span.producer: offset for offset, span in reads}
    assert offsets["model.9.cv2"] == 0 and offsets["model.6.cv2"] == 256


def test_unknown_module_is_left_whole_with_a_warning():
    from torch import nn

    model = YOLO("yolov8n.yaml").model

    class Mystery(nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            return self.inner(x)

    old = model.model[3]
    wrapped = Mystery(old)
    wrapped.f, wrapped.i, wrapped.type, wrapped.np = old.f, old.i, "Mystery", old.np
    model.model[3] = wrapped
    with pytest.warns(UserWarning, match="Mystery"):
        graph = analyze(model)
    assert graph.tied["model.3.inner"] == "unknown module Mystery"
    assert graph.tied["model.2.cv2"] == "unknown module Mystery"  # its input's producer stays whole too


def test_prunable_bns_are_the_prunable_producers_bns():
    model = YOLO("yolov8n.yaml").model
    bns = prunable_bns(model)
    assert len(bns) == len(analyze(model).prunable) == 47


def test_the_graph_names_the_prunable_bns_every_caller_uses():
    """One list: ChannelGraph.prunable_bns is what sparsity penalises, plan ranks and report plots."""
    model = YOLO("yolov8n.yaml").model
    graph = analyze(model)
    named = graph.prunable_bns(model)
    assert list(named) == graph.prunable
    assert all(named[name] is module.bn for name, module in model.named_modules() if name in named)
    ids = [id(bn) for bn in named.values()]
    assert [id(bn) for bn in prunable_bns(model, graph)] == [id(bn) for bn in prunable_bns(model)] == ids
    assert list(gamma_scores(model, graph)) == list(named) == list(prunable_gammas(model))
