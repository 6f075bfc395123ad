"""The ultralytics module classes slim.groups recognises by type: the one place they cross into slim."""

from ultralytics.nn.modules import (
    C2PSA,
    OBB,
    SPP,
    SPPF,
    C2f,
    C3,
    C3k2,
    Bottleneck,
    Classify,
    Concat,
    Conv,
    Detect,
    DWConv,
    Pose,
    Proto,
    Segment,
)
from ultralytics.nn.modules.block import C3k, Attention, PSABlock

__all__ = ["C2PSA", "OBB", "SPP", "SPPF", "C2f", "C3", "C3k2", "Bottleneck", "Classify", "Concat", "Conv", "Detect",
           "DWConv", "Pose", "Proto", "Segment", "C3k", "Attention", "PSABlock"]
