"""ONNX export with ultralytics' own exporter, simplified with onnxsim, checked against PyTorch in ONNX Runtime."""

from __future__ import annotations

import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from slim import ultra
from slim.errors import SlimError, UsageError
from slim.io import copy_atomic

PEAK_FLOOR = 1e-2  # parity differences of channels whose values stay below this are measured against it
SEED = 0  # the parity input is uniform noise from this seed: the same tensor on every run and machine


@dataclass(frozen=True)
class ExportResult:
    """What export_onnx wrote and how closely it matches PyTorch.

    Attributes:
        path: the .onnx file.
        size_bytes: its size on disk.
        max_abs_diff: largest ONNX-vs-PyTorch difference, scaled per channel (see check_onnx_parity).
    """

    path: Path
    size_bytes: int
    max_abs_diff: float


def export_onnx(
    weights: Path,
    out: Path,
    imgsz: int,
    opset: int | None = None,
    dynamic: bool = False,
    simplify: bool = True,
    half: bool = False,
    atol: float = 1e-3,
) -> ExportResult:
    """Export an ultralytics checkpoint to ONNX, check it against PyTorch, and move it to `out`.

    The exporter writes next to the checkpoint it reads, so it runs on a copy in a temporary folder beside
    `out`; the checked file then lands on `out` atomically (slim.io). The input is never written to, and a file
    that fails the parity check never reaches `out`.

    Args:
        weights: ultralytics checkpoint (.pt) of any task; pruned widths are fine (the model is pickled whole).
        out: where the .onnx goes; its folder is created.
        imgsz: square input size; the graph's input is (1, 3, imgsz, imgsz) unless `dynamic`.
        opset: ONNX opset; None lets ultralytics pick the newest its torch supports.
        dynamic: dynamic batch and image size axes.
        simplify: fold constants and drop redundant nodes with onnxsim.
        half: FP16 graph (inputs too); needs CUDA, otherwise a warning and FP32.
        atol: tolerance of the parity check, see check_onnx_parity; an FP16 graph needs about 1e-2.

    Returns:
        ExportResult with the file, its size and the parity difference.

    Raises:
        SlimError: missing checkpoint, or a parity difference above `atol`.
        UsageError: `out` is not a new .onnx path, or imgsz is not a multiple of the model's stride.
    """
    weights, out = Path(weights), Path(out)
    if not weights.is_file():
        raise SlimError(f"checkpoint {weights} not found: pass the .pt file the previous stage wrote")
    if out.suffix != ".onnx" or out.resolve() == weights.resolve():
        raise UsageError(f"export target {out} must be a new .onnx path, not the checkpoint: pass e.g. model.onnx")
    half = _half_available(half)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".slim-export-", dir=out.parent) as tmp:
        onnx_file = ultra.export_copy(weights, Path(tmp), imgsz, opset, dynamic, half)
        if simplify:
            _simplify_(onnx_file)
        diff = check_onnx_parity(weights, onnx_file, imgsz, atol)
        copy_atomic(onnx_file, out)
    return ExportResult(out, out.stat().st_size, diff)


def _half_available(half: bool) -> bool:
    """FP16 export traces the model on the GPU; without CUDA it falls back to FP32 with a warning."""
    import torch

    if half and not torch.cuda.is_available():
        warnings.warn("half=True needs CUDA, none found: exporting FP32 instead", stacklevel=3)
        return False
    return half


def _simplify_(onnx_file: Path) -> None:
    """Simplify the graph in place with onnxsim; ultralytics' metadata (task, names, stride) is kept."""
    import onnx
    import onnxsim

    model, ok = onnxsim.simplify(onnx.load(str(onnx_file)))
    if not ok:
        raise SlimError(f"onnxsim could not verify the simplified {onnx_file.name}: export with simplify=False")
    onnx.save(model, str(onnx_file))


def check_onnx_parity(weights: Path, onnx_path: Path, imgsz: int, atol: float) -> float:
    """Run the checkpoint in PyTorch and the ONNX file in ONNX Runtime (CPU) on one fixed input and compare.

    Every output is compared: detect, pose, obb and classify export one tensor, segment two (predictions,
    mask prototypes). Differences are scaled per channel (axis 1) by that channel's peak |PyTorch value|:
    one detect tensor holds box pixels (up to imgsz) beside class scores (0-1), and classify probabilities
    of an untrained 1000-class model are all about 1e-3, so a plain absolute tolerance would let broken
    scores pass. Peaks are floored at PEAK_FLOOR because tiny values carry no relative precision: ONNX
    Runtime's Sigmoid is accurate to 1.6e-7 absolute but off by 0.2% relative at logit -10 and 30% at -15.
    Measured: trained yolov8n 8e-6; untrained yolov8n/yolo11n of all five tasks at imgsz 64, 1e-7 to 5e-5,
    and 1.4e-4 once their BN statistics are set from real activations (their float32 PyTorch output is
    itself 1.9e-4 away from float64: a random network amplifies rounding); pruned ones about 1e-5.

    The PyTorch side is the checkpoint's model as stored (eval mode, not fused): the export folds BN into
    the convs, so the check covers that fold too; the fold alone changes outputs by float rounding.

    Args:
        weights: the checkpoint the ONNX file was exported from.
        onnx_path: the ONNX file.
        imgsz: square input size to run at.
        atol: largest scaled difference accepted.

    Returns:
        The largest scaled difference over all outputs.

    Raises:
        SlimError: different output count or shapes, or a difference above `atol`.
        UsageError: the file's fixed input size is not imgsz.
    """
    x = np.random.default_rng(SEED).random((1, 3, imgsz, imgsz), dtype=np.float32)  # (1, 3, H, W) in [0, 1)
    got = _onnx_outputs(Path(onnx_path), x)
    want = _torch_outputs(Path(weights), x)
    if [g.shape for g in got] != [w.shape for w in want]:
        shapes = f"{[g.shape for g in got]} vs PyTorch {[w.shape for w in want]}"
        raise SlimError(f"ONNX outputs of {onnx_path} have shapes {shapes}: re-export from this checkpoint")
    diff = max(_scaled_diff(g, w) for g, w in zip(got, want))
    if diff > atol:
        raise SlimError(
            f"ONNX model {onnx_path} differs from PyTorch by {diff:.3g} (per-channel scaled), tolerance {atol:g}: "
            "re-export with simplify=False or check the checkpoint's module widths"
        )
    return diff


def _onnx_outputs(onnx_path: Path, x: np.ndarray) -> list[np.ndarray]:
    """All outputs of the ONNX file on input x (cast to the graph's input type), as float32."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    inp = session.get_inputs()[0]
    if all(isinstance(d, int) for d in inp.shape[2:]) and tuple(inp.shape[2:]) != x.shape[2:]:
        size = "x".join(map(str, inp.shape[2:]))
        raise UsageError(
            f"{onnx_path.name} takes {size} images, not {x.shape[2]}: imgsz must be a multiple of the model's "
            f"stride (ultralytics rounds it up), pass imgsz={inp.shape[2]}"
        )
    dtype = np.float16 if inp.type == "tensor(float16)" else np.float32
    return [np.asarray(y, dtype=np.float32) for y in session.run(None, {inp.name: x.astype(dtype)})]


def _torch_outputs(weights: Path, x: np.ndarray) -> list[np.ndarray]:
    """The outputs ultralytics exports, computed by the checkpoint's PyTorch model in eval mode.

    In eval mode every ultralytics head returns (exported output, extras); segment's first element is
    itself the pair (predictions, prototypes), which are ONNX's output0 and output1.
    """
    import torch

    model = ultra.exported_model(weights)
    with torch.inference_mode():
        y = model(torch.from_numpy(x))
    first = y[0] if isinstance(y, (tuple, list)) else y
    tensors = [first] if isinstance(first, torch.Tensor) else list(first)
    return [t.float().numpy() for t in tensors]


def _scaled_diff(got: np.ndarray, want: np.ndarray) -> float:
    """max |got - want| with each channel (axis 1) divided by max(its peak |want|, PEAK_FLOOR)."""
    axes = tuple(i for i in range(want.ndim) if i != 1)
    scale = np.maximum(np.abs(want).max(axis=axes, keepdims=True), PEAK_FLOOR).astype(np.float64)
    return float((np.abs(got.astype(np.float64) - want) / scale).max())
