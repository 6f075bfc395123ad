"""Rebuild the class-dependent outputs of a head for another class count; the rest of the model stays as it is.

Pure torch, duck-typed on the attribute names of ultralytics' heads: Detect and its Segment, Pose and OBB
subclasses (the last conv of every `cv3` branch, `one2one_cv3` of end-to-end heads, Proto26's `semseg`),
and Classify (its `linear`). Box, mask-coefficient, keypoint and angle outputs do not depend on the classes.
"""

from __future__ import annotations

import math

from torch import nn

# the detect-head prior of ultralytics' Detect.bias_init: about 5 objects per 640x640 image, spread over the classes
_OBJECTS, _IMAGE = 5, 640


def rebuild_class_outputs_(head: nn.Module, nc: int) -> list[str]:
    """Give `head` fresh output layers for `nc` classes, in place; every other layer keeps its weights and widths.

    Args:
        head: the model's last layer (a Detect-family head with `cv3`, or a Classify head with `linear`).
        nc: the new class count.

    Returns:
        Names of the rebuilt layers, relative to `head` (e.g. "cv3.0.2", "linear").

    Raises:
        ValueError: `head` has no class-dependent output this function knows, or nc < 1.
    """
    if nc < 1:
        raise ValueError(f"nc must be at least 1, got {nc}")
    if isinstance(getattr(head, "linear", None), nn.Linear):
        head.linear = _fresh_linear(head.linear, nc)
        return ["linear"]
    if not isinstance(getattr(head, "cv3", None), nn.ModuleList):
        raise ValueError(f"{type(head).__name__} has neither detection class branches (cv3) nor a linear classifier")
    rebuilt = []
    for branches in ("cv3", "one2one_cv3"):
        for i, branch in enumerate(getattr(head, branches, None) or []):
            branch[-1] = _fresh_class_conv(branch[-1], nc, _prior_bias(head, i, nc))
            rebuilt.append(f"{branches}.{i}.{len(branch) - 1}")
    semseg = getattr(getattr(head, "proto", None), "semseg", None)  # Segment26's auxiliary semantic-mask branch
    if isinstance(semseg, nn.Sequential):
        semseg[-1] = _fresh_class_conv(semseg[-1], nc, 0.0)
        rebuilt.append(f"proto.semseg.{len(semseg) - 1}")
    head.no = head.no - head.nc + nc  # box (and DFL) outputs first, then the classes
    head.nc = nc
    return rebuilt


def _prior_bias(head: nn.Module, level: int, nc: int) -> float:
    """The class-score bias Detect.bias_init gives: a low prior objectness, so early training is not flooded."""
    stride = float(head.stride[level]) if getattr(head, "stride", None) is not None else 0.0
    if stride <= 0:  # a head never built by ultralytics has no strides yet; fall back to the coarsest level
        stride = 32.0
    return math.log(_OBJECTS / nc / (_IMAGE / stride) ** 2)


def _fresh_class_conv(old: nn.Module, nc: int, bias: float) -> nn.Conv2d:
    """A new conv like `old` (same input width, kernel, device, dtype) with `nc` output channels."""
    if not isinstance(old, nn.Conv2d):
        raise ValueError(f"expected the class branch to end in a Conv2d, found {type(old).__name__}")
    new = nn.Conv2d(old.in_channels, nc, old.kernel_size, old.stride, old.padding, old.dilation, old.groups,
                    bias=old.bias is not None)
    new = new.to(device=old.weight.device, dtype=old.weight.dtype)
    if new.bias is not None:
        nn.init.constant_(new.bias, bias)
    new.weight.requires_grad_(old.weight.requires_grad)
    return new


def _fresh_linear(old: nn.Linear, nc: int) -> nn.Linear:
    new = nn.Linear(old.in_features, nc, bias=old.bias is not None)
    return new.to(device=old.weight.device, dtype=old.weight.dtype)

