"""PruningPlan: which channels of each prunable layer survive, chosen by one global |gamma| threshold.

The plan is plain data (layer name -> sorted kept indices) so it can travel in a checkpoint and as JSON.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

from slim import budget
from slim.errors import UsageError
from slim.groups import ChannelGraph


@dataclass
class PruningPlan:
    """Kept channels per producer (a Conv module name), and how they were chosen.

    Attributes:
        keep: producer name -> sorted list of kept output channel indices (prunable producers only).
        channels: producer name -> channel count before pruning.
        threshold: the global |gamma| threshold; channels below it are removed unless a floor keeps them.
        ratio: the requested fraction of prunable channels to remove (None when a threshold was given).
        floored: producers whose kept count was raised to the per-layer floor.
        target_gflops: the requested fraction of the model's GFLOPs (None when a ratio or threshold was given).
        gflops_fraction: the fraction of the model's GFLOPs the plan keeps, by the planner's own count
            (slim.budget; set for a GFLOPs target).
    """

    keep: dict
    channels: dict
    threshold: float
    ratio: float | None
    floored: list
    target_gflops: float | None = None
    gflops_fraction: float | None = None

    @property
    def removed_fraction(self) -> float:
        """The fraction of prunable channels actually removed (floors and rounding keep some)."""
        total = sum(self.channels.values())
        return 1 - sum(len(k) for k in self.keep.values()) / total

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def from_dict(cls, d: dict) -> PruningPlan:
        return cls(**d)


def gamma_scores(model: nn.Module, graph: ChannelGraph) -> dict:
    """|gamma| of every prunable producer's BN: name -> tensor of shape (channels,).

    A producer whose BN was fused into its conv has no gamma to rank by and is left out (kept whole).
    """
    return {name: bn.weight.detach().abs().float().cpu() for name, bn in graph.prunable_bns(model).items()}


def threshold_for_ratio(scores: dict, ratio: float) -> float:
    """The |gamma| value below which `ratio` of all prunable channels lie."""
    if not 0 < ratio < 1 or math.isnan(ratio):
        raise UsageError(f"prune ratio must be between 0 and 1 (exclusive), got {ratio}")
    everything = torch.cat(list(scores.values())).sort().values
    return float(everything[int(ratio * len(everything))])


def build_plan(
    model: nn.Module,
    graph: ChannelGraph,
    ratio: float | None = None,
    threshold: float | None = None,
    min_channels: int = 8,
    min_fraction: float = 0.05,
    round_to: int = 1,
    target_gflops: float | None = None,
    imgsz: int = 640,
) -> PruningPlan:
    """Choose the channels to keep with one global |gamma| threshold, per-layer floors and rounding.

    Args:
        ratio: fraction of all prunable channels to remove; the threshold is the |gamma| at that quantile.
        threshold: alternative to ratio: remove channels whose |gamma| is below it.
        min_channels, min_fraction: a layer keeps at least max(min_channels, ceil(min_fraction * channels)).
        round_to: kept counts are rounded up to a multiple of this (by keeping the next-largest gammas),
            because hardware runs channel counts like 8 or 16 faster than odd ones.
        target_gflops: alternative to ratio and threshold: remove the fewest lowest-|gamma| channels that bring
            the model to at most this fraction of its GFLOPs at imgsz (counted by slim.budget, floors included).
        imgsz: the image size GFLOPs are counted at (target_gflops only).
    """
    if sum(x is not None for x in (ratio, threshold, target_gflops)) != 1:
        raise UsageError("give exactly one of a prune ratio, a threshold or a GFLOPs target")
    scores = gamma_scores(model, graph)
    if not scores:
        raise UsageError("this model has no prunable BatchNorm channels (no BN layers, or all are tied)")
    floors = (min_channels, min_fraction, round_to)
    if target_gflops is not None:
        return _plan_for_gflops(model, graph, scores, target_gflops, imgsz, floors)
    if threshold is None:
        threshold_for_ratio(scores, ratio)  # checks the ratio
        threshold, survives = _lowest_removed(scores, int(ratio * sum(len(s) for s in scores.values())))
    else:
        _check_threshold(scores, threshold)
        survives = {name: score >= threshold for name, score in scores.items()}
    keep, floored = _keep_all(scores, graph, survives, floors)
    return PruningPlan(keep, _channels(scores), float(threshold), ratio, floored)


def _channels(scores: dict) -> dict:
    return {name: len(score) for name, score in scores.items()}


def _keep_all(scores: dict, graph: ChannelGraph, survives: dict, floors: tuple) -> tuple:
    """Kept indices of every prunable layer from its survivors mask, with floors and rounding; (keep, floored)."""
    keep, floored = {}, []
    for name, score in scores.items():
        parts = graph.parts.get(name, 1)
        wanted = int(survives[name].view(parts, -1).sum(1).max())
        kept, was_floored = _keep_layer(score.view(parts, -1), wanted, *floors)
        keep[name] = kept
        if was_floored:
            floored.append(name)
    return keep, floored


def _lowest_removed(scores: dict, count: int) -> tuple:
    """Mark the `count` globally smallest |gamma| channels removed; (threshold, name -> survives mask).

    The threshold is the smallest surviving |gamma|. Ranking rather than comparing with the threshold value keeps
    the count exact when many gammas are equal (a model that never had sparsity training has most of them at
    exactly 1.0); ties go in model order.
    """
    flat = torch.cat(list(scores.values()))
    order = flat.argsort(stable=True)
    threshold = float(flat[order[min(count, len(flat) - 1)]])
    removed = torch.zeros(len(flat), dtype=torch.bool)
    removed[order[:count]] = True
    survives = dict(zip(scores, (~removed).split([len(s) for s in scores.values()])))
    return threshold, survives


def _plan_for_gflops(model: nn.Module, graph: ChannelGraph, scores: dict, target: float, imgsz: int,
                     floors: tuple) -> PruningPlan:
    """The plan removing the fewest lowest-|gamma| channels whose GFLOPs fraction is at most `target`.

    The fraction never rises as more channels go (kept counts only fall), so a bisection over the count finds it.
    """
    if not 0 < target < 1 or math.isnan(target):
        raise UsageError(f"target GFLOPs must be a fraction of the model's, between 0 and 1 (exclusive), got {target}")
    costs = budget.layer_costs(model, graph, imgsz)

    def plan_removing(count: int) -> tuple:
        threshold, survives = _lowest_removed(scores, count)
        keep, floored = _keep_all(scores, graph, survives, floors)
        return PruningPlan(keep, _channels(scores), threshold, None, floored, target,
                           budget.gflops_fraction(costs, graph, keep))

    low, high = 0, sum(len(s) for s in scores.values())  # removing `low` misses the target, `high` meets it
    smallest = plan_removing(high)
    if smallest.gflops_fraction > target:
        raise UsageError(f"target GFLOPs {target:g} cannot be met: with the per-layer floors the smallest this model "
                         f"prunes to is {smallest.gflops_fraction:.3f} of its GFLOPs (the rest is in layers slim does "
                         f"not prune); ask for at least {math.ceil(smallest.gflops_fraction * 1000) / 1000:g}")
    while high - low > 1:
        middle = (low + high) // 2
        if plan_removing(middle).gflops_fraction <= target:
            high = middle
        else:
            low = middle
    return plan_removing(high)


def _check_threshold(scores: dict, threshold: float) -> None:
    everything = torch.cat(list(scores.values()))
    low, high = float(everything.min()), float(everything.max())
    fix = (f"pass a threshold above {low:.4g} and at most {high:.4g}, or a --prune-ratio instead" if low < high
           else "all are equal, so no threshold separates them: pass a --prune-ratio instead")
    if not (everything < threshold).any():
        raise UsageError(f"threshold {threshold:g} removes nothing: the smallest prunable |gamma| is {low:.4g}; {fix}")
    if (everything < threshold).all():
        raise UsageError(f"threshold {threshold:g} removes every channel: the largest prunable |gamma| is {high:.4g}; "
                         f"{fix}")


def _keep_layer(score: torch.Tensor, wanted: int, min_channels: int, min_fraction: float, round_to: int):
    """Kept indices for one layer whose output is `parts` equal parts (score: parts x part_size).

    Every part keeps the same count (C2f's chunk(2) needs equal halves): `wanted` is the largest count any
    part wants; floors and rounding can raise it. Each part keeps its highest-|gamma| channels.
    """
    parts, size = score.shape
    floor = min(size, max(min_channels // parts, math.ceil(min_fraction * size), 1))
    count = max(wanted, floor)
    count = min(size, math.ceil(count / round_to) * round_to)
    keep = []
    for p in range(parts):
        top = score[p].argsort(descending=True, stable=True)[:count]
        keep += sorted(int(i) + p * size for i in top)
    return keep, wanted < floor
