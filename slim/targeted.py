"""Targeted sparsity: only the channels a prune budget removes are driven to exactly zero, by a proximal step.

The channels are chosen by the prune stage's own planner (slim.plan) at the same budget, so the prune at that
budget removes what was driven to zero. The shrink is a soft threshold applied after optimizer.step(): decoupled
from the optimizer (Adam does not rescale it) and from the AMP loss scale, and it reaches exact zeros. It takes
gamma and beta both: a channel with gamma = beta = 0 outputs act(0) = 0, so removing it changes nothing, even at
the padded borders of a 3x3 reader where folding act(beta) into the reader is only approximate.
Pure torch; when it runs during training is slim.ultra's job.
"""

from __future__ import annotations

import torch
from torch import nn

from slim.groups import ChannelGraph
from slim.plan import PruningPlan, build_plan


def select_removed(model: nn.Module, graph: ChannelGraph, budget: dict) -> tuple:
    """The channels the prune at `budget` would remove from `model` now.

    Args:
        budget: build_plan's keyword arguments: ratio or target_gflops, min_channels, min_fraction, round_to, imgsz.

    Returns:
        (producer name -> bool mask of shape (channels,), True where removed; the PruningPlan).
    """
    plan = build_plan(model, graph, **budget)
    return removed_masks(plan), plan


def removed_masks(plan: PruningPlan) -> dict:
    """producer name -> bool mask (channels,), True for the channels the plan removes."""
    masks = {}
    for name, channels in plan.channels.items():
        mask = torch.ones(channels, dtype=torch.bool)
        mask[plan.keep[name]] = False
        masks[name] = mask
    return masks


def shrink_at(shrink: float, progress: float) -> float:
    """The shrink per epoch at `progress` (0 at the start of the run, 1 at its end): a linear ramp up to `shrink`.

    Weak at first, so a selected channel the task needs can hold its gamma up and be rescued when the selection is
    redone; strong at the end, so the rest reach zero.
    """
    return shrink * min(max(progress, 0.0), 1.0)


@torch.no_grad()
def prox_shrink_(selected: list, amount: float) -> None:
    """Soft-threshold gamma and beta of the selected channels, in place: x <- sign(x) * max(|x| - amount, 0).

    Args:
        selected: (BatchNorm2d, bool mask of shape (channels,) on the BN's device) pairs; other channels untouched.
    """
    for bn, mask in selected:
        for p in (bn.weight, bn.bias):
            x = p[mask]
            p[mask] = x.sign() * (x.abs() - amount).clamp(min=0)


@torch.no_grad()
def zero_selected_(selected: list) -> None:
    """Set gamma and beta of the selected channels to exactly zero, in place."""
    for bn, mask in selected:
        bn.weight[mask] = 0.0
        bn.bias[mask] = 0.0


def bind(model: nn.Module, masks: dict) -> list:
    """(BatchNorm2d of producer, mask on its device) pairs of `model` for the producer -> mask mapping."""
    modules = dict(model.named_modules())
    return [(modules[name].bn, mask.to(modules[name].bn.weight.device)) for name, mask in masks.items()]


def register_prox_hook(optimizer: torch.optim.Optimizer, after_step) -> object:
    """Call after_step() after every optimizer.step(); returns the hook handle.

    A step post-hook runs inside GradScaler.step() only when the optimizer really steps: on inf/NaN gradients the
    scaler skips optimizer.step() and its hooks with it. It runs once per step whatever the gradient accumulation.
    """
    return optimizer.register_step_post_hook(lambda *_: after_step())


@torch.no_grad()
def selected_stats(selected: list) -> dict:
    """Mean |gamma| of the selected channels, the fraction of them exactly zero, and mean |gamma| of the kept ones."""
    chosen = [bn.weight[mask].abs().float() for bn, mask in selected]
    kept = [bn.weight[~mask].abs().float() for bn, mask in selected]
    chosen, kept = torch.cat(chosen), torch.cat(kept)
    return {
        "selected": len(chosen),
        "selected_gamma_mean": float(chosen.mean()) if len(chosen) else 0.0,
        "selected_zero": float((chosen == 0).float().mean()) if len(chosen) else 1.0,
        "kept_gamma_mean": float(kept.mean()) if len(kept) else float("nan"),
    }
