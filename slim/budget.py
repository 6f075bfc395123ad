"""What a pruning plan costs: every conv's multiply-adds at the model's image size, counted from the kept channels.

One forward pass records each layer's spatial size; after that the cost of any plan is arithmetic, so the search
for the cut that meets a GFLOPs budget never rebuilds the model.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

import torch
from torch import nn

from slim.groups import ChannelGraph


@dataclass(frozen=True)
class LayerCost:
    """One Conv2d, ConvTranspose2d or Linear layer.

    Attributes:
        name: the layer's module name (e.g. model.2.cv1.conv).
        producer: the ultralytics Conv whose BN owns this layer's output channels (model.2.cv1), or None.
        cin, cout: channel counts before pruning.
        per_pair: multiply-adds per (input channel, output channel) pair: kh * kw * H * W / groups, at the spatial
            size the layer computes on (its output; its input for a transposed conv).
    """

    name: str
    producer: str | None
    cin: int
    cout: int
    per_pair: float


def layer_costs(model: nn.Module, graph: ChannelGraph, imgsz: int) -> list:
    """Every conv and linear layer's LayerCost, from one eval-mode forward pass of a 1 x 3 x imgsz x imgsz image.

    imgsz is rounded up to the model's largest stride, as ultralytics does for training and validation.
    """
    stride = int(max(getattr(model, "stride", torch.tensor([32])).max(), 32))
    size = -(-imgsz // stride) * stride
    spatial, hooks = {}, []

    def record(name):
        return lambda mod, inp, out: spatial.update({name: _cells(mod, inp[0], out)})

    for name, m in model.named_modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            hooks.append(m.register_forward_hook(record(name)))
    weight = next(model.parameters())
    was_training = model.training
    model.eval()  # no BN running-statistics update when called on a model in training
    try:
        with torch.no_grad():
            model(torch.zeros(1, 3, size, size, device=weight.device, dtype=weight.dtype))
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    modules = dict(model.named_modules())
    costs = []
    for name, cells in spatial.items():
        m, parent = modules[name], name.rpartition(".")[0]
        producer = parent if parent in graph.producers and getattr(modules[parent], "conv", None) is m else None
        if isinstance(m, nn.Linear):
            costs.append(LayerCost(name, producer, m.in_features, m.out_features, float(cells)))
        else:
            kernel = m.kernel_size[0] * m.kernel_size[1]
            costs.append(LayerCost(name, producer, m.in_channels, m.out_channels, kernel * cells / m.groups))
    return costs


def _cells(m: nn.Module, x: torch.Tensor, out: torch.Tensor) -> int:
    """Positions the kernel is applied at: output pixels (input pixels for a transposed conv), rows for Linear."""
    if isinstance(m, nn.Linear):
        return out.numel() // out.shape[-1]
    ref = x if isinstance(m, nn.ConvTranspose2d) else out
    return ref.shape[-1] * ref.shape[-2]


def macs(costs: list, graph: ChannelGraph, keep: dict | None = None) -> float:
    """Multiply-adds of the model with only `keep`'s channels (producer -> sorted kept indices); all when None."""
    keep = keep or {}
    total = 0.0
    for c in costs:
        cout = len(keep[c.producer]) if c.producer in keep else c.cout
        cin = c.cin - sum(_removed(span, keep) for _, span in graph.consumers.get(c.name, ()))
        total += c.per_pair * cin * cout
    return total


def _removed(span, keep: dict) -> int:
    """How many of a span's channels the plan removes."""
    if span.producer not in keep:
        return 0
    kept = keep[span.producer]
    return span.length - (bisect.bisect_left(kept, span.start + span.length) - bisect.bisect_left(kept, span.start))


def gflops_fraction(costs: list, graph: ChannelGraph, keep: dict) -> float:
    """The planned model's multiply-adds as a fraction of the whole model's."""
    return macs(costs, graph, keep) / macs(costs, graph)
