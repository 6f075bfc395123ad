"""The oracle: in eval mode a pruned model computes what the original computes with its removed channels silenced."""

import copy

import pytest
import torch

from slim.groups import analyze
from slim.plan import PruningPlan, build_plan
from slim.surgery import prune_model, silence_
from tests.models import max_difference, outputs, random_bn_model, saved_and_loaded

ARCHITECTURES = [
    "yolov8{}.yaml",
    "yolov8{}-seg.yaml",
    "yolov8{}-pose.yaml",
    "yolov8{}-obb.yaml",
    "yolov8{}-cls.yaml",
    "yolo11{}.yaml",
    "yolo11{}-seg.yaml",
    "yolov5{}u.yaml",
    "yolo26{}.yaml",
]
MODELS = [arch.format(scale) for arch in ARCHITECTURES for scale in ("n", "s")]
# float32 accumulated over ~60 layers: differences of a few 1e-7 of the output scale are rounding, not bugs
RTOL = 1e-5


SOURCES = ["yaml", "checkpoint"]  # built in memory, and saved + loaded the way scripts/prune.py loads users' models


def _image(seed: int = 1) -> torch.Tensor:
    return torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(seed))


def _model(yaml: str, source: str, tmp_path) -> torch.nn.Module:
    model = random_bn_model(yaml)
    return model if source == "yaml" else saved_and_loaded(model, tmp_path)


def _random_plan(model: torch.nn.Module, seed: int = 0) -> PruningPlan:
    """Keep a random count of random channels per layer: a different set in each half of a split (same count).

    Irregular on purpose: a regular pattern (every third channel) can hide an offset or a half-swapped index.
    """
    graph, g = analyze(model), torch.Generator().manual_seed(seed)
    keep, channels = {}, {}
    for name in graph.prunable:
        width, parts = graph.producers[name], graph.parts.get(name, 1)
        part = width // parts
        count = int(torch.randint(1, part, (1,), generator=g)) if part > 1 else 1
        keep[name] = sorted(p * part + int(i) for p in range(parts) for i in torch.randperm(part, generator=g)[:count])
        channels[name] = width
    return PruningPlan(keep, channels, threshold=0.0, ratio=None, floored=[])


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("yaml", MODELS)
def test_zero_gamma_and_beta_channels_are_removed_exactly(yaml, source, tmp_path):
    """Oracle 1: channels with gamma = beta = 0 are exactly the ones removed, and the output does not move."""
    model = _model(yaml, source, tmp_path)
    graph = analyze(model)
    modules = dict(model.named_modules())
    chosen = {}
    with torch.no_grad():  # zero every third channel of every prunable layer (both halves alike where split)
        for name in graph.prunable:
            bn = modules[name].bn
            part = bn.num_features // graph.parts.get(name, 1)
            dead = torch.arange(bn.num_features) % part % 3 == 1
            bn.weight[dead], bn.bias[dead] = 0.0, 0.0
            chosen[name] = (~dead).nonzero().flatten().tolist()
    plan = build_plan(model, graph, threshold=1e-12, min_channels=1, min_fraction=0.0)
    assert plan.keep == chosen
    pruned = prune_model(model, plan)
    diff, scale = max_difference(model, pruned, _image())
    assert diff <= RTOL * scale
    assert sum(p.numel() for p in pruned.parameters()) < sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("yaml", MODELS)
def test_pruned_equals_original_with_removed_channels_silenced(yaml, source, tmp_path):
    """Oracle 2: random nonzero gammas, a global ratio, no folding: pruned == silenced original."""
    model = _model(yaml, source, tmp_path)
    plan = build_plan(model, analyze(model), ratio=0.5)
    pruned = prune_model(model, plan, fold_beta=False)
    silenced = silence_(copy.deepcopy(model), plan)
    diff, scale = max_difference(silenced, pruned, _image())
    assert diff <= RTOL * scale
    # and the silencing matters: the unsilenced original differs, so the comparison above has teeth
    assert max_difference(model, pruned, _image())[0] > 10 * RTOL * scale


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("yaml", MODELS)
def test_random_irregular_plan_matches_the_oracle(yaml, source, tmp_path):
    """Oracle 3: random kept sets per layer and per half of every split, random nonzero betas on kept channels."""
    model = _model(yaml, source, tmp_path)
    plan = _random_plan(model)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    pruned = prune_model(model, plan, fold_beta=False)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # the input is never touched
    diff, scale = max_difference(silence_(copy.deepcopy(model), plan), pruned, _image())
    assert diff <= RTOL * scale


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("yaml", MODELS)
def test_folding_never_changes_kept_channels(yaml, source, tmp_path):
    """With folding on, every kept channel's BN (gamma, beta, statistics) is copied unchanged."""
    model = _model(yaml, source, tmp_path)
    plan = _random_plan(model, seed=1)
    pruned = dict(prune_model(model, plan, fold_beta=True).named_modules())
    modules = dict(model.named_modules())
    for name, keep in plan.keep.items():
        assert torch.equal(pruned[name].bn.weight, modules[name].bn.weight[keep]), name
        assert torch.equal(pruned[name].bn.bias, modules[name].bn.bias[keep]), name


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("yaml", ["yolov8n.yaml", "yolo11n.yaml", "yolov8n-cls.yaml"])
def test_folding_beta_keeps_the_constant_removed_channels_sent(yaml, source, tmp_path):
    """gamma = 0 but beta != 0: the removed channel still sent act(beta). Folding restores most of it."""
    model = _model(yaml, source, tmp_path)
    plan = build_plan(model, analyze(model), ratio=0.3)
    original = silence_(copy.deepcopy(model), plan, keep_beta=True)  # what a sparse model really computes
    folded, _ = max_difference(original, prune_model(model, plan, fold_beta=True), _image())
    dropped, _ = max_difference(original, prune_model(model, plan, fold_beta=False), _image())
    assert folded < 0.5 * dropped  # exact for 1x1 readers; 3x3 readers differ only at padded borders


def test_input_model_is_untouched_and_c2f_split_size_follows():
    model = random_bn_model("yolov8n.yaml")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    plan = build_plan(model, analyze(model), ratio=0.5)
    pruned = prune_model(model, plan)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    c2f = pruned.model[12]
    assert c2f.c == c2f.cv1.conv.out_channels // 2 < model.model[12].c
    with torch.no_grad():  # forward_split (used at ONNX export) reads c: it must agree with chunk(2)
        x = torch.rand(1, c2f.cv1.conv.in_channels, 8, 8)
        assert torch.allclose(c2f.forward_split(x), c2f(x))


@pytest.mark.parametrize("yaml", ["yolov8n.yaml", "yolov8n-seg.yaml", "yolov8n-cls.yaml", "yolo11n.yaml"])
def test_pruned_model_trains_one_step(yaml):
    model = random_bn_model(yaml)
    pruned = prune_model(model, build_plan(model, analyze(model), ratio=0.6)).train()
    optimizer = torch.optim.SGD(pruned.parameters(), lr=0.01)
    before = [p.detach().clone() for p in pruned.parameters()]
    loss = sum(o.float().pow(2).mean() for o in outputs(pruned(_image())))
    loss.backward()
    optimizer.step()
    changed = [not torch.equal(b, p) for b, p in zip(before, pruned.parameters())]
    assert torch.isfinite(loss) and sum(changed) > 0.9 * len(changed)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16])
def test_analysis_and_surgery_keep_the_models_dtype(dtype):
    """A double or half model is analysed and pruned in its own dtype (the width probe once fed it float32)."""
    model = random_bn_model("yolov8n.yaml").to(dtype)
    plan = _random_plan(model)
    pruned = prune_model(model, plan, fold_beta=True)
    assert {p.dtype for p in pruned.parameters()} == {dtype}
    if dtype == torch.float64:  # half convolutions are too coarse for the oracle; double is exact to 1e-12
        diff, scale = max_difference(silence_(copy.deepcopy(model), plan), prune_model(model, plan, fold_beta=False),
                                     _image().to(dtype))
        assert diff <= 1e-10 * scale


def test_prune_model_uses_the_graph_it_is_given(monkeypatch):
    """The prune stage has traced the model already: prune_model takes that graph and does not trace again."""
    model = random_bn_model("yolov8n.yaml")
    graph = analyze(model)
    plan = build_plan(model, graph, ratio=0.5)
    traced = prune_model(model, plan).state_dict()
    monkeypatch.setattr("slim.surgery.analyze", lambda m: pytest.fail("prune_model traced a model it had a graph of"))
    given = prune_model(model, plan, graph=graph).state_dict()
    assert given.keys() == traced.keys() and all(torch.equal(given[k], traced[k]) for k in traced)
