"""Which BatchNorm channels of an ultralytics model can be removed, and who reads them.

A symbolic forward pass walks the model with channel layouts instead of tensors. Each layout is a tuple of
Spans naming the Conv (the "producer": conv + BN + act) whose BN made those channels. Every plain conv or
linear layer that reads a layout is recorded as a consumer of those channels. Anything that ties channels
together in a way a smaller stock module cannot express (residual adds, depthwise convs, attention heads,
fixed-width outputs, modules we do not know) marks the producers involved as tied: they are never pruned
and never penalised by sparsity training. This is the one source of truth for both stages.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import torch
from torch import nn
from slim.ultra.modules import (
    C2PSA,
    OBB,
    SPP,
    SPPF,
    Attention,
    Bottleneck,
    C2f,
    C3,
    C3k,
    C3k2,
    Classify,
    Concat,
    Conv,
    Detect,
    DWConv,
    Pose,
    Proto,
    PSABlock,
    Segment,
)

RESIDUAL = "residual add"
PASS_THROUGH = (nn.Upsample, nn.MaxPool2d, nn.AdaptiveAvgPool2d, nn.Dropout, nn.Identity, nn.SiLU, nn.ReLU)
HEAD_BRANCHES = ("cv2", "cv3", "cv4", "one2one_cv2", "one2one_cv3", "one2one_cv4")
HEAD_TYPES = (Detect, Segment, Pose, OBB)


@dataclass(frozen=True)
class Span:
    """A run of channels in a feature map: channels [start, start + length) of one producer's output.

    producer is None for channels slim cannot remove (image input, outputs of plain convs).
    """

    producer: str | None
    start: int
    length: int


Layout = tuple  # tuple[Span, ...]: the channel layout of a feature map, in order


@dataclass
class ChannelGraph:
    """The result of the analysis.

    Attributes:
        producers: Conv module name -> its output channel count, for every BN-carrying Conv reached.
        consumers: plain layer name (Conv2d, ConvTranspose2d, Linear) -> list of (input offset, Span) it reads.
        tied: producer name -> why it may not be pruned (e.g. "residual add", "depthwise conv").
        parts: producer name -> number of equal parts its output is split into (C2f chunk, C2PSA split).
        split_owner: producer name -> the block whose `c` attribute is the size of one part.
    """

    producers: dict = field(default_factory=dict)
    consumers: dict = field(default_factory=dict)
    tied: dict = field(default_factory=dict)
    parts: dict = field(default_factory=dict)
    split_owner: dict = field(default_factory=dict)

    @property
    def prunable(self) -> list:
        """Producers whose channels can be removed, in model order."""
        return [p for p in self.producers if p not in self.tied]

    @property
    def residual_tied(self) -> list:
        """Producers whose channels feed a residual add."""
        return [p for p, why in self.tied.items() if why == RESIDUAL]

    def prunable_bns(self, model: nn.Module) -> dict:
        """The BatchNorm2d of every prunable producer, by producer name, in model order: the BNs sparsity training
        penalises and whose |gamma| ranks the channels for pruning.

        Args:
            model: the model this graph was traced from, or a copy of it (the names are looked up in it).

        A producer whose BN was fused into its conv has no gamma: it is left out, and stays whole.
        """
        modules = dict(model.named_modules())
        bns = {name: getattr(modules[name], "bn", None) for name in self.prunable}
        return {name: bn for name, bn in bns.items() if isinstance(bn, nn.BatchNorm2d)}


def analyze(model: nn.Module) -> ChannelGraph:
    """Trace an ultralytics model (DetectionModel, SegmentationModel, ..., ClassificationModel) symbolically."""
    return _Tracer(model).run()


def prunable_bns(model: nn.Module, graph: ChannelGraph | None = None) -> list:
    """The BatchNorm2d modules of every prunable producer, in model order (ChannelGraph.prunable_bns).

    Args:
        graph: analyze(model), when the caller has it already; traced here otherwise.
    """
    return list((graph if graph is not None else analyze(model)).prunable_bns(model).values())


class _Tracer:
    def __init__(self, model: nn.Module):
        self.model = model
        self.names = {m: n for n, m in model.named_modules()}
        self.graph = ChannelGraph()
        self.widths = _output_widths(model)
        self.warned = set()

    def run(self) -> ChannelGraph:
        layers = self.model.model
        x = (Span(None, 0, 3),)  # the image: fixed width
        saved = []
        for layer in layers:
            if layer.f != -1:
                x = saved[layer.f] if isinstance(layer.f, int) else [x if j == -1 else saved[j] for j in layer.f]
            x = self.trace(layer, x)
            saved.append(x)
        self.tie(x, "model output")
        return self.graph

    # --- bookkeeping -------------------------------------------------------------------------------------
    def produce(self, conv: Conv) -> Layout:
        name = self.names[conv]
        self.graph.producers[name] = conv.conv.out_channels
        return (Span(name, 0, conv.conv.out_channels),)

    def consume(self, layer: nn.Module, x: Layout) -> None:
        name, offset = self.names[layer], 0
        reads = self.graph.consumers.setdefault(name, [])
        for span in x:
            if span.producer is not None:
                reads.append((offset, span))
            offset += span.length
        expected = layer.in_features if isinstance(layer, nn.Linear) else layer.in_channels
        if offset != expected:  # the symbolic model disagrees with the real one: never guess
            self.tie(x, f"channel count mismatch at {name}")

    def tie(self, x, reason: str) -> None:
        for span in _flatten(x):
            if span.producer is not None and (reason == RESIDUAL or span.producer not in self.graph.tied):
                self.graph.tied[span.producer] = reason  # a residual add is reported over any other reason

    def tie_inside(self, module: nn.Module, reason: str) -> None:
        for m in module.modules():
            if isinstance(m, Conv):
                self.produce(m)
                self.graph.tied.setdefault(self.names[m], reason)

    def opaque(self, module: nn.Module, x, reason: str) -> Layout:
        """A module whose channel flow we do not model: keep everything it touches whole."""
        self.tie(x, reason)
        self.tie_inside(module, reason)
        return (Span(None, 0, self.widths.get(self.names[module], 0)),)

    # --- the symbolic forward ----------------------------------------------------------------------------
    def trace(self, m: nn.Module, x):
        kind = type(m)
        if kind in (Conv, DWConv):
            return self.trace_conv(m, x)
        if kind in (nn.Conv2d, nn.ConvTranspose2d, nn.Linear):
            if getattr(m, "groups", 1) != 1:
                return self.opaque(m, x, "grouped conv")
            self.consume(m, x)
            return (Span(None, 0, m.out_features if kind is nn.Linear else m.out_channels),)
        if kind is nn.Sequential:
            for child in m:
                x = self.trace(child, x)
            return x
        if isinstance(m, PASS_THROUGH):
            return x
        if kind is Concat and m.d == 1:
            return _cat(x)
        handler = _HANDLERS.get(kind)
        if handler is not None:
            return handler(self, m, x)
        if kind in HEAD_TYPES and _is_plain_head(m):
            return self.trace_head(m, x)
        return self.unknown(m, x)

    def unknown(self, m: nn.Module, x) -> Layout:
        name = type(m).__name__
        if name not in self.warned:
            self.warned.add(name)
            warnings.warn(f"slim does not know module {name}: its channels and its inputs' channels stay unpruned")
        return self.opaque(m, x, f"unknown module {name}")

    def trace_conv(self, m: Conv, x: Layout) -> Layout:
        if m.conv.groups != 1:  # depthwise: input and output channels are one and the same
            out = self.produce(m)
            self.tie(x, "depthwise conv")
            self.tie(out, "depthwise conv")
            return out
        self.consume(m.conv, x)
        return self.produce(m)

    def trace_bottleneck(self, m: Bottleneck, x: Layout) -> Layout:
        y = self.trace(m.cv2, self.trace(m.cv1, x))
        if not m.add:
            return y
        self.tie(x, RESIDUAL)
        self.tie(y, RESIDUAL)
        return x

    def trace_split(self, block: nn.Module, cv1: Conv, x: Layout) -> tuple:
        """cv1 followed by chunk(2)/split((c, c)): both halves must keep equal channel counts."""
        (a,) = self.trace(cv1, x)
        name, half = a.producer, a.length // 2
        self.graph.parts[name] = 2
        self.graph.split_owner[name] = self.names[block]
        return (Span(name, 0, half),), (Span(name, half, half),)

    def trace_c2f(self, m: C2f, x: Layout) -> Layout:
        y = list(self.trace_split(m, m.cv1, x))
        for block in m.m:
            y.append(self.trace(block, y[-1]))
        return self.trace(m.cv2, _cat(y))

    def trace_c3(self, m: C3, x: Layout) -> Layout:
        a = self.trace(m.m, self.trace(m.cv1, x))
        b = self.trace(m.cv2, x)
        return self.trace(m.cv3, a + b)

    def trace_sppf(self, m: nn.Module, x: Layout) -> Layout:
        a = self.trace(m.cv1, x)
        copies = getattr(m, "n", 3) + 1 if isinstance(m, SPPF) else len(m.m) + 1  # max-pooling keeps channels
        y = self.trace(m.cv2, a * copies)
        if getattr(m, "add", False):
            self.tie(x, RESIDUAL)
            self.tie(y, RESIDUAL)
        return y

    def trace_c2psa(self, m: C2PSA, x: Layout) -> Layout:
        a, b = self.trace_split(m, m.cv1, x)
        return self.trace(m.cv2, a + self.trace(m.m, b))

    def trace_psablock(self, m: PSABlock, x: Layout) -> Layout:
        for branch in (m.attn, m.ffn):
            y = self.trace(branch, x)
            if m.add:
                self.tie(x, RESIDUAL)
                self.tie(y, RESIDUAL)
            else:
                x = y
        return x

    def trace_attention(self, m: Attention, x: Layout) -> Layout:
        # q, k, v are read per head and pe is depthwise: the channels inside stay whole
        self.consume(m.qkv.conv, x)
        self.tie_inside(m, "attention")
        return (Span(self.names[m.proj], 0, m.proj.conv.out_channels),)

    def trace_proto(self, m: Proto, x: Layout) -> Layout:
        return self.trace(m.cv3, self.trace(m.cv2, self.trace(m.upsample, self.trace(m.cv1, x))))

    def trace_classify(self, m: Classify, x) -> Layout:
        x = _cat(x) if isinstance(x, list) else x
        return self.trace(m.linear, self.trace(m.conv, x))

    def trace_head(self, m: Detect, xs: list) -> Layout:
        for branch in HEAD_BRANCHES:
            convs = getattr(m, branch, None)
            for i, seq in enumerate(convs or ()):
                self.tie(self.trace(seq, xs[i]), "model output")
        if isinstance(m, Segment):
            self.tie(self.trace(m.proto, xs[0]), "model output")
        return (Span(None, 0, 0),)


_HANDLERS = {
    Bottleneck: _Tracer.trace_bottleneck,
    C2f: _Tracer.trace_c2f,
    C3k2: _Tracer.trace_c2f,
    C3: _Tracer.trace_c3,
    C3k: _Tracer.trace_c3,
    SPPF: _Tracer.trace_sppf,
    SPP: _Tracer.trace_sppf,
    C2PSA: _Tracer.trace_c2psa,
    PSABlock: _Tracer.trace_psablock,
    Attention: _Tracer.trace_attention,
    Proto: _Tracer.trace_proto,
    Classify: _Tracer.trace_classify,
}


def _is_plain_head(m: nn.Module) -> bool:
    """A Detect-family head built only from the branches slim knows (YOLO26 pose/seg heads add others)."""
    known = set(HEAD_BRANCHES) | {"dfl", "proto"}
    return all(name in known for name, _ in m.named_children()) and (
        not isinstance(m, Segment) or type(m.proto) is Proto
    )


def _cat(xs) -> Layout:
    return tuple(span for x in xs for span in x)


def _flatten(x):
    if isinstance(x, Span):
        yield x
    else:
        for item in x:
            yield from _flatten(item)


@torch.no_grad()
def _output_widths(model: nn.Module) -> dict:
    """Channel count of every module's output, from one real forward pass (for modules traced as opaque)."""
    widths, hooks = {}, []
    for name, m in model.named_modules():
        hooks.append(m.register_forward_hook(lambda mod, inp, out, name=name: _record(widths, name, out)))
    was_training = model.training
    model.eval()
    try:
        weight = next(model.parameters())  # probe in the model's own dtype: a half or double model rejects fp32
        model(torch.zeros(1, 3, 64, 64, device=weight.device, dtype=weight.dtype))
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    return widths


def _record(widths: dict, name: str, out) -> None:
    if isinstance(out, torch.Tensor) and out.dim() >= 2:
        widths[name] = out.shape[1]
