"""ONNX export with ultralytics' own exporter, and the PyTorch model that export is checked against."""

from __future__ import annotations

import shutil
from pathlib import Path

from torch import nn
from ultralytics import YOLO

from slim.errors import SlimError


def export_copy(weights: Path, folder: Path, imgsz: int, opset: int | None, dynamic: bool, half: bool) -> Path:
    """Copy the checkpoint into `folder` and export the copy there; returns the .onnx the exporter wrote."""
    copy = folder / f"{weights.stem}.pt"  # YOLO() picks its loader by suffix
    shutil.copyfile(weights, copy)
    # simplify=False: ultralytics simplifies with onnxslim, which slim does not install (it warns and skips);
    # slim simplifies with onnxsim afterwards instead. quantize=16 is 8.4's spelling of the old half=True.
    written = YOLO(str(copy)).export(
        format="onnx",
        imgsz=imgsz,
        opset=opset,
        dynamic=dynamic,
        simplify=False,
        quantize=16 if half else None,
        device=0 if half else "cpu",
    )
    if not written or not Path(written).is_file():
        raise SlimError(f"ultralytics wrote no ONNX file for {weights}: rerun with --verbose and read its log")
    return Path(written)


def exported_model(weights: Path) -> nn.Module:
    """The checkpoint's model as ultralytics loads it to export, in fp32 and eval mode."""
    return YOLO(str(weights)).model.float().eval()
