"""Apply a PruningPlan: rebuild every touched layer physically smaller, with the kept weights copied in.

Only stock torch/ultralytics modules are resized in place (Conv2d, BatchNorm2d, Linear, ConvTranspose2d), so
the result is an ordinary ultralytics model that loads with plain `YOLO("pruned.pt")`.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from slim.groups import ChannelGraph, analyze
from slim.plan import PruningPlan


def prune_model(model: nn.Module, plan: PruningPlan, fold_beta: bool = True,
                graph: ChannelGraph | None = None) -> nn.Module:
    """Return a pruned copy of `model`; the input model is not modified.

    Args:
        fold_beta: a removed channel still sends the constant act(beta) to its readers; fold that constant into
            each reader's BN running mean (or bias). Exact for 1x1 readers, approximate at the padded borders
            of 3x3 ones. Without it the result equals the original with removed channels set to zero.
        graph: analyze(model), when the caller has it already (the plan was built from it); traced here otherwise.
    """
    model = copy.deepcopy(model)
    graph = graph if graph is not None else analyze(model)  # on the copy: its probe forward leaves `model` as it was
    modules = dict(model.named_modules())
    for name, reads in graph.consumers.items():
        _shrink_inputs(modules, name, reads, plan.keep, fold_beta)
    for name, keep in plan.keep.items():
        _shrink_outputs(modules[name], torch.tensor(keep))
    for name, owner in graph.split_owner.items():
        if name in plan.keep:  # C2f / C2PSA split cv1's output by self.c (forward_split, used at ONNX export)
            modules[owner].c = len(plan.keep[name]) // graph.parts[name]
    return model


def _shrink_inputs(modules: dict, name: str, reads: list, keep: dict, fold_beta: bool) -> None:
    """Drop the input channels of one reader (Conv2d, ConvTranspose2d or Linear) whose producers lost them."""
    layer = modules[name]
    width = layer.in_features if isinstance(layer, nn.Linear) else layer.in_channels
    kept = torch.ones(width, dtype=torch.bool)
    constant = torch.zeros(width)  # what each removed input channel still carried: act(beta)
    for offset, span in reads:
        if span.producer not in keep:
            continue
        producer = modules[span.producer]
        gone = torch.ones(span.length, dtype=torch.bool)
        survivors = [k - span.start for k in keep[span.producer] if span.start <= k < span.start + span.length]
        gone[survivors] = False
        kept[offset : offset + span.length] &= ~gone
        constant[offset : offset + span.length] = torch.where(gone, _activated_beta(producer, span), 0.0)
    if kept.all():
        return
    if fold_beta:
        _fold_constant(modules, name, layer, constant)
    idx = kept.nonzero().flatten()
    dim = 0 if isinstance(layer, nn.ConvTranspose2d) else 1
    layer.weight = nn.Parameter(layer.weight.detach().index_select(dim, idx).clone())
    if isinstance(layer, nn.Linear):
        layer.in_features = len(idx)
    else:
        layer.in_channels = len(idx)


@torch.no_grad()
def _activated_beta(producer: nn.Module, span) -> torch.Tensor:
    """act(beta) of the span's channels: what each would still send with gamma = 0. Shape (span.length,), fp32.

    The activation runs on a copy: checkpoints loaded by ultralytics have in-place activations, and a slice of
    the BN bias (even after .detach() or .float() on an fp32 model) is a view that act would overwrite.
    """
    beta = producer.bn.bias.detach()[span.start : span.start + span.length].to(device="cpu", dtype=torch.float32, copy=True)
    return producer.act(beta)


@torch.no_grad()
def _fold_constant(modules: dict, name: str, layer: nn.Module, constant: torch.Tensor) -> None:
    """Add the reader's response to the constant input into its BN running mean or its bias."""
    w = layer.weight.detach().float()
    constant = constant.to(w)
    if isinstance(layer, nn.Linear):
        shift = w @ constant
    elif isinstance(layer, nn.ConvTranspose2d):  # (in, out, kh, kw): each output pixel sees one tap; use the mean
        shift = torch.einsum("iohw,i->o", w, constant) / (w.shape[2] * w.shape[3])
    else:  # (out, in, kh, kw): a constant input adds the same sum at every (non-border) pixel
        shift = torch.einsum("oihw,i->o", w, constant)
    parent = modules.get(name.rpartition(".")[0])
    bn = getattr(parent, "bn", None) if getattr(parent, "conv", None) is layer else None
    if bn is not None:
        bn.running_mean.sub_(shift.to(bn.running_mean))
    elif layer.bias is not None:
        layer.bias.add_(shift.to(layer.bias))
    # a reader with neither BN nor bias cannot absorb the constant: it is dropped, as without folding


def _shrink_outputs(conv: nn.Module, keep: torch.Tensor) -> None:
    """Keep only the `keep` output channels of an ultralytics Conv (its conv and its BatchNorm)."""
    c, bn = conv.conv, conv.bn
    c.weight = nn.Parameter(c.weight.detach()[keep].clone())
    if c.bias is not None:
        c.bias = nn.Parameter(c.bias.detach()[keep].clone())
    c.out_channels = len(keep)
    bn.weight = nn.Parameter(bn.weight.detach()[keep].clone())
    bn.bias = nn.Parameter(bn.bias.detach()[keep].clone())
    bn.running_mean = bn.running_mean[keep].clone()
    bn.running_var = bn.running_var[keep].clone()
    bn.num_features = len(keep)


def silence_(model: nn.Module, plan: PruningPlan, keep_beta: bool = False) -> nn.Module:
    """Set gamma (and beta unless keep_beta) to zero on every channel the plan removes, in place.

    This is the oracle's other side: in eval mode, prune_model(model) computes what silence_(model) computes.
    """
    modules = dict(model.named_modules())
    with torch.no_grad():
        for name, keep in plan.keep.items():
            bn = modules[name].bn
            gone = torch.ones(bn.num_features, dtype=torch.bool)
            gone[keep] = False
            bn.weight[gone] = 0.0
            if not keep_beta:
                bn.bias[gone] = 0.0
    return model

