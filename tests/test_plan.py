"""Choosing channels: one global threshold, floors, equal halves, rounding, JSON round trip."""

import json
import math

import pytest
import torch

from slim import budget, ultra
from slim.errors import UsageError
from slim.groups import analyze
from slim.plan import PruningPlan, build_plan, gamma_scores, threshold_for_ratio
from slim.surgery import prune_model
from tests.models import random_bn_model


@pytest.fixture(scope="module")
def model():
    return random_bn_model("yolov8n.yaml")


def test_ratio_removes_that_fraction_of_prunable_channels(model):
    graph = analyze(model)
    plan = build_plan(model, graph, ratio=0.4, min_channels=1, min_fraction=0.0)
    # equal halves can keep a few extra channels; nothing else does with floors off
    assert 0.37 <= plan.removed_fraction <= 0.4
    scores = gamma_scores(model, graph)
    for name, keep in plan.keep.items():
        if graph.parts.get(name, 1) == 1:
            kept = set(keep)
            assert all((float(s) >= plan.threshold) == (i in kept) for i, s in enumerate(scores[name]))


def test_threshold_is_global_not_per_layer(model):
    graph = analyze(model)
    scores = torch.cat(list(gamma_scores(model, graph).values()))
    t = threshold_for_ratio(gamma_scores(model, graph), 0.5)
    assert abs(float((scores < t).float().mean()) - 0.5) < 1e-3


def test_floor_keeps_every_layer_alive_and_is_reported(model):
    graph = analyze(model)
    plan = build_plan(model, graph, ratio=0.95, min_channels=8, min_fraction=0.1)
    for name, keep in plan.keep.items():
        n = plan.channels[name]
        assert len(keep) >= min(n, max(8, math.ceil(0.1 * n // graph.parts.get(name, 1))))
    assert plan.floored  # at 95% many layers sit at their floor, and the plan says which


def test_halves_keep_equal_counts(model):
    graph = analyze(model)
    plan = build_plan(model, graph, ratio=0.6)
    for name, parts in graph.parts.items():
        if name in plan.keep:
            half = plan.channels[name] // parts
            first = [i for i in plan.keep[name] if i < half]
            assert len(first) * 2 == len(plan.keep[name])


def test_round_to_gives_multiples(model):
    graph = analyze(model)
    plan = build_plan(model, graph, ratio=0.5, round_to=8)
    for name, keep in plan.keep.items():
        per_part = len(keep) // graph.parts.get(name, 1)
        assert per_part % 8 == 0 or per_part == plan.channels[name] // graph.parts.get(name, 1)


@pytest.mark.parametrize("ratio", [0.0, 1.0, -0.1, 1.5, float("nan")])
def test_ratio_outside_open_interval_is_refused(model, ratio):
    with pytest.raises(UsageError, match="ratio"):
        build_plan(model, analyze(model), ratio=ratio)


@pytest.mark.parametrize("threshold, words", [(1e-9, "removes nothing"), (1e9, "removes every channel")])
def test_threshold_that_removes_nothing_or_everything_is_refused(model, threshold, words):
    with pytest.raises(UsageError, match=words):
        build_plan(model, analyze(model), threshold=threshold)


def test_plan_json_round_trip(model):
    plan = build_plan(model, analyze(model), ratio=0.5)
    again = PruningPlan.from_dict(json.loads(plan.to_json()))
    assert again == plan


def test_ratio_is_exact_when_gammas_tie():
    """A freshly built model has every gamma at exactly 1.0: a value threshold would remove nothing."""
    from ultralytics import YOLO

    model = YOLO("yolov8n.yaml").model
    plan = build_plan(model, analyze(model), ratio=0.5, min_channels=1, min_fraction=0.0)
    assert 0.48 <= plan.removed_fraction <= 0.5


# --- a GFLOPs budget ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("target", [0.6, 0.4, 0.25])
def test_gflops_target_is_met_removing_the_fewest_channels(model, target):
    """Met, and one channel fewer (the largest |gamma| removed put back) would miss it: within one channel."""
    graph = analyze(model)
    plan = build_plan(model, graph, target_gflops=target, imgsz=128)
    assert plan.target_gflops == target and plan.gflops_fraction <= target
    everything = torch.cat(list(gamma_scores(model, graph).values()))
    largest_removed = float(everything[everything < plan.threshold].max())
    one_fewer = build_plan(model, graph, threshold=largest_removed)  # removes exactly those below it
    costs = budget.layer_costs(model, graph, 128)
    assert budget.gflops_fraction(costs, graph, one_fewer.keep) > target


@pytest.mark.slow
@pytest.mark.parametrize("yaml", ["yolov8n.yaml", "yolo11n.yaml", "yolov8n-seg.yaml"])
def test_planner_gflops_agree_with_ultralytics_count_of_the_pruned_model(yaml):
    """Tolerance 0.01 of the model's GFLOPs: ultralytics (thop) also counts BN, upsampling and the head's DFL, which
    the planner leaves out (they are about 1-2% of a YOLOv8n; measured 0.4 -> 0.404, 0.25 -> 0.257 on yolo11n)."""
    model = random_bn_model(yaml)
    full = ultra.model_size(model, 160)["gflops"]
    for target in (0.5, 0.3):
        plan = build_plan(model, analyze(model), target_gflops=target, imgsz=160)
        pruned = ultra.model_size(prune_model(model, plan), 160)["gflops"]
        assert abs(pruned / full - plan.gflops_fraction) <= 0.01


def test_unreachable_gflops_target_names_the_smallest_reachable(model):
    with pytest.raises(UsageError, match=r"cannot be met.*ask for at least 0\.\d+"):
        build_plan(model, analyze(model), target_gflops=0.01, imgsz=128)


@pytest.mark.parametrize("target", [0.0, 1.0, float("nan")])
def test_gflops_target_outside_open_interval_is_refused(model, target):
    with pytest.raises(UsageError, match="target GFLOPs"):
        build_plan(model, analyze(model), target_gflops=target)


def test_two_cuts_at_once_are_refused(model):
    with pytest.raises(UsageError, match="exactly one"):
        build_plan(model, analyze(model), ratio=0.5, target_gflops=0.4)


def test_gflops_plan_json_round_trip_keeps_target_and_fraction(model):
    plan = build_plan(model, analyze(model), target_gflops=0.4, imgsz=128)
    again = PruningPlan.from_dict(json.loads(plan.to_json()))
    assert again == plan and again.gflops_fraction == plan.gflops_fraction
