"""The network-slimming L1 penalty on BatchNorm gammas: its subgradient, its schedule and its statistics.

Pure torch. Which BNs are penalised comes from slim.groups (the same analysis the pruner uses); when the
penalty is applied (after AMP unscaling and gradient clipping, once per optimizer step) is slim.ultra's job.
"""

from __future__ import annotations

import torch
from torch import nn

SCHEDULES = ("linear", "constant")
SMALL_GAMMA = 1e-2  # |gamma| below this counts as "near zero" in the statistics


def sr_at(sr: float, epoch: int, epochs: int, schedule: str = "linear") -> float:
    """Penalty strength at an epoch: the reference's linear decay sr * (1 - 0.9 * epoch / epochs), or constant."""
    if schedule == "constant":
        return sr
    if schedule == "linear":
        return sr * (1 - 0.9 * epoch / max(epochs, 1))
    raise ValueError(f"unknown sparsity schedule {schedule!r}; use one of {SCHEDULES}")


@torch.no_grad()
def add_bn_l1_grad_(bns: list, strength: float) -> None:
    """Add the L1 subgradient strength * sign(gamma) to each BN weight's gradient, in place.

    Args:
        bns: BatchNorm2d modules to penalise; their weight.grad must already hold the loss gradient
            (unscaled: a term added to AMP-scaled gradients would be divided by the loss scale later).
    """
    for bn in bns:
        if bn.weight.grad is not None:
            bn.weight.grad.add_(torch.sign(bn.weight), alpha=strength)


def register_l1_hook(optimizer: torch.optim.Optimizer, bns: list, strength) -> object:
    """Apply add_bn_l1_grad_(bns, strength()) right before every optimizer.step(); returns the hook handle.

    A step pre-hook runs inside GradScaler.step(), after unscale_() and after any gradient clipping, and
    once per step however many backward passes were accumulated into it.
    """
    return optimizer.register_step_pre_hook(lambda *_: add_bn_l1_grad_(bns, strength()))


@torch.no_grad()
def gamma_stats(bns: list) -> dict:
    """Mean |gamma| and the fraction of gammas below SMALL_GAMMA over the given BNs."""
    if not bns:
        return {"gamma_mean": float("nan"), "gamma_small": float("nan")}
    gammas = torch.cat([bn.weight.detach().abs().float().flatten() for bn in bns])
    return {"gamma_mean": float(gammas.mean()), "gamma_small": float((gammas < SMALL_GAMMA).float().mean())}


def all_gammas(model: nn.Module) -> dict:
    """|gamma| of every BatchNorm2d in a model, by module name (for plots and reports)."""
    return {n: m.weight.detach().abs().float().cpu() for n, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)}
