"""Validation and sizes: ultralytics' validator on a checkpoint or an ONNX file, the same fields for every model."""

from __future__ import annotations

from pathlib import Path

from torch import nn
from ultralytics import YOLO
from ultralytics.utils.torch_utils import get_flops

from slim.ultra.checkpoints import load_model
from slim.ultra.datasets import check_classes


def model_size(model: nn.Module, imgsz: int) -> dict:
    """Parameter count and GFLOPs at imgsz (ultralytics' own counter)."""
    return {"params": sum(p.numel() for p in model.parameters()), "gflops": round(get_flops(model, imgsz), 3)}


def validate(weights: str | Path, args: dict) -> dict:
    """Validate a checkpoint and return the same fields for every model, so any two runs compare."""
    model, _ = load_model(weights)
    check_classes(model, args["data"])
    metrics = YOLO(str(weights)).val(**args)
    return {"weights": str(weights), **model_size(model, args.get("imgsz", 640)), **_metric_fields(metrics)}


def validate_onnx(onnx_path: str | Path, args: dict) -> dict:
    """Validate an ONNX file through ultralytics' own ONNX Runtime backend (task read from the file's metadata)."""
    metrics = YOLO(str(onnx_path)).val(**args)
    return {"weights": str(onnx_path), **_metric_fields(metrics)}


def _metric_fields(metrics) -> dict:
    if hasattr(metrics, "top1"):
        fields = {"top1": float(metrics.top1), "top5": float(metrics.top5)}
    else:
        box = metrics.box
        fields = {"precision": float(box.mp), "recall": float(box.mr), "mAP50": float(box.map50),
                  "mAP50_95": float(box.map)}
        for kind in ("seg", "pose"):  # the task's own metric beside the box one: mask mAP, keypoint (OKS) mAP
            part = getattr(metrics, kind, None)
            if part is not None:
                fields.update({f"{kind}_mAP50": float(part.map50), f"{kind}_mAP50_95": float(part.map)})
    return {**fields, "speed_ms": {k: round(float(v), 3) for k, v in metrics.speed.items()}}
