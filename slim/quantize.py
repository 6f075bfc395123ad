"""INT8 ONNX by ONNX Runtime static quantization (QDQ), calibrated on letterboxed dataset images."""

from __future__ import annotations

import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from slim import ultra
from slim.errors import SlimError, UsageError
from slim.io import copy_atomic

IMAGE_SUFFIXES = {".bmp", ".jpeg", ".jpg", ".png", ".tif", ".tiff", ".webp"}
HEAD = "{head}"  # in an exclude pattern: the escaped name prefix of the last model layer, e.g. "/model\.22/"
# Node-name regexes (re.search) kept in FP32. Default: the head's decode tail, i.e. every node directly in the
# head layer (reshapes, anchor arithmetic, sigmoid, the output Concat) and its DFL; the head's convs are quantized.
# Measured on a yolov8n trained to mAP50-95 0.801 (3 synthetic shape classes, 128 px, 32 calibration images,
# 24 validation images): nothing excluded -> mAP 0, every class score becomes 0 (the output Concat gets one
# int8 scale spanning box pixels and 0-1 scores); decode tail without DFL -> 0.766, box error 0.81 px;
# tail + DFL (this default) -> 0.799, box error 0.51 px; the whole head -> 0.792 and a 65% larger file.
DEFAULT_EXCLUDE = (HEAD + r"dfl/", HEAD + r"[^/]+$")
# The same default serves every task, measured with benchmarks/bench_int8.py (demo-derived sets, 128 px): int8 minus fp32
# segment mask mAP50-95 -0.008, pose -0.003, obb -0.001, classify top-1 0.000; keeping the task's own head branch
# (mask coefficients and prototypes, keypoints, angles, the linear) in fp32 as well changed none of them by more
# than 0.001. With nothing kept in fp32 every Detect-family task scores 0, for the reason above.


@dataclass(frozen=True)
class Int8Settings:
    """How ONNX Runtime quantizes: the choices benchmarks/bench_int8.py compares for speed and accuracy.

    Attributes:
        format: "qdq" (QuantizeLinear/DequantizeLinear pairs around fp32 ops, fused by ONNX Runtime at load) or
            "qoperator" (QLinearConv and friends written into the file).
        per_channel: one weight scale per output channel instead of one per tensor.
        activations: "uint8" or "int8".
        weights: "int8" or "uint8".
        reduce_range: 7-bit weights, against the uint8 x int8 pair-sum saturation of AVX2 kernels without VNNI.
    """

    # Defaults, measured with benchmarks/bench_int8.py (yolov8n, 2-core AMD EPYC with AVX512-VNNI): every uint8 x int8
    # setting ran at 0.47x of fp32 at 320 px and 0.42x at 640 px, within 3% of each other; int8 activations ran
    # 1.2-1.7x slower than fp32, uint8 weights 0.68-0.94x. reduce_range cost no accuracy there and keeps AVX2-only
    # CPUs from saturating (measured earlier: mAP50-95 0.7985 with it, 0.7884 without, fp32 0.8009).
    format: str = "qdq"
    per_channel: bool = True
    activations: str = "uint8"
    weights: str = "int8"
    reduce_range: bool = True


def quantize_int8(
    onnx_path: Path,
    out: Path,
    images: list[Path],
    imgsz: int,
    exclude: Sequence[str] = DEFAULT_EXCLUDE,
    settings: Int8Settings = Int8Settings(),
) -> Path:
    """Quantize an FP32 ONNX file to INT8 (by default QDQ: 7-bit int8 weights, uint8 activations), write it to `out`.

    ultralytics' metadata (task, names, stride) is kept, so YOLO("model_int8.onnx") predicts and validates.

    Args:
        onnx_path: FP32 model exported by slim.export; it is only read.
        out: INT8 file to write, atomically (slim.io); must differ from `onnx_path`.
        images: calibration images, letterboxed to imgsz exactly as ultralytics' predictor does.
        imgsz: square input size of the model.
        exclude: node-name regexes kept in FP32; "{head}" stands for the last layer's name prefix.
        settings: format, scale granularity and integer types, see Int8Settings.

    Returns:
        `out`.

    Raises:
        UsageError: `out` equals the input, no images, `exclude` matches no node, or an unknown setting.
        SlimError: missing model or an unreadable image.
    """
    import onnx
    from onnxruntime.quantization import quantize_static

    onnx_path, out = Path(onnx_path), Path(out)
    if not onnx_path.is_file():
        raise SlimError(f"ONNX file {onnx_path} not found: run the export stage first")
    if out.resolve() == onnx_path.resolve():
        raise UsageError(f"INT8 output {out} would overwrite the FP32 model: pass another path, e.g. model_int8.onnx")
    if not images:
        raise UsageError("INT8 calibration needs images: pass a dataset with a train split")
    options = _ort_options(settings)
    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    nodes = _excluded_nodes([n.name for n in graph.node], exclude, onnx_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".slim-int8-", dir=out.parent) as tmp:
        written = Path(tmp) / out.name
        # No quant_pre_process: on onnxsim-simplified yolov8n it changed neither outputs nor latency, and cost 3-5 s.
        quantize_static(str(onnx_path), str(written), LetterboxReader(images, imgsz, graph.input[0].name),
                        nodes_to_exclude=nodes, **options)
        copy_atomic(written, out)
    return out


def _ort_options(s: Int8Settings) -> dict:
    """quantize_static's keyword arguments for `s`; one clear line for a value it does not know."""
    from onnxruntime.quantization import QuantFormat, QuantType

    formats = {"qdq": QuantFormat.QDQ, "qoperator": QuantFormat.QOperator}
    types = {"uint8": QuantType.QUInt8, "int8": QuantType.QInt8}
    for name, value, known in (("format", s.format, formats), ("activations", s.activations, types),
                               ("weights", s.weights, types)):
        if value not in known:
            raise UsageError(f"int8 {name} '{value}' is not one of {sorted(known)}")
    return {"quant_format": formats[s.format], "per_channel": s.per_channel, "reduce_range": s.reduce_range,
            "activation_type": types[s.activations], "weight_type": types[s.weights]}


def _excluded_nodes(names: list[str], patterns: Sequence[str], onnx_path: Path) -> list[str]:
    """The node names that match any pattern (re.search), with "{head}" filled in."""
    if not patterns:
        return []
    layers = [int(m.group(1)) for m in (re.match(r"/model\.(\d+)/", n) for n in names) if m]
    if not layers and any(HEAD in p for p in patterns):
        raise SlimError(f"no ultralytics layer names (/model.N/...) in {onnx_path}: pass explicit exclude patterns")
    head = re.escape(f"/model.{max(layers, default=0)}/")
    try:
        regexes = [re.compile(p.replace(HEAD, head)) for p in patterns]
    except re.error as e:
        raise UsageError(f"exclude patterns {list(patterns)} are not all valid regexes ({e}): fix the pattern") from e
    matched = [n for n in names if any(r.search(n) for r in regexes)]
    if not matched:
        raise UsageError(f"exclude patterns {list(patterns)} match no node of {onnx_path}: check them in netron")
    return matched


def letterbox(image_path: Path, imgsz: int) -> np.ndarray:
    """Load an image the way ultralytics' predictor feeds an ONNX model of fixed size.

    LetterBox (resize keeping aspect, pad 114, centred), BGR -> RGB, /255. ultralytics centre-crops the
    input of classify models instead; calibration letterboxes for every task.

    Returns:
        (1, 3, imgsz, imgsz) float32 in [0, 1].
    """
    import cv2

    img = cv2.imread(str(image_path))
    if img is None:
        raise SlimError(f"cannot read image {image_path}: remove it from the dataset or fix the file")
    img = ultra.letterbox(img, imgsz)
    return np.ascontiguousarray(img[..., ::-1].transpose(2, 0, 1)[None], dtype=np.float32) / 255


class LetterboxReader:
    """Calibration data for onnxruntime: one letterboxed (1, 3, H, W) batch per image file.

    onnxruntime's CalibrationDataReader accepts any class with get_next() (its __subclasshook__), so this
    needs no import of onnxruntime at module load.
    """

    def __init__(self, images: Sequence[Path], imgsz: int, input_name: str = "images"):
        self.images, self.imgsz, self.input_name = list(images), imgsz, input_name
        self.rewind()

    def get_next(self) -> dict[str, np.ndarray] | None:
        path = next(self._it, None)
        return None if path is None else {self.input_name: letterbox(path, self.imgsz)}

    def rewind(self) -> None:
        self._it = iter(self.images)


def calibration_images(data_yaml: Path, count: int) -> list[Path]:
    """Pick `count` images of a dataset's train split for calibration, read-only and deterministic.

    The yaml is ultralytics' format: `train` is a folder, a .txt list of images, or a list of those,
    relative to `path` (itself relative to the current folder or, failing that, the yaml's folder).
    The images are sorted and `count` of them taken evenly spaced, so every part of the split is seen.

    Args:
        data_yaml: dataset yaml, or a classification image folder (its train/ subfolder is used).
        count: how many images; fewer when the split has fewer.

    Returns:
        Image paths, sorted.

    Raises:
        SlimError: missing yaml, no `train` key, or no images in the split.
    """
    if count < 1:
        raise UsageError(f"calibration needs at least 1 image, got count={count}")
    files = sorted(set(_train_images(Path(data_yaml))))
    if not files:
        raise SlimError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in the train split of {data_yaml}")
    picks = np.linspace(0, len(files) - 1, min(count, len(files))).round().astype(int)
    return [files[i] for i in picks]


def _train_images(data_yaml: Path) -> list[Path]:
    """Every image file the train split of `data_yaml` names; for a classification folder, those under train/."""
    if data_yaml.is_dir():
        return _images_in(data_yaml / "train")
    if not data_yaml.is_file():
        raise SlimError(f"dataset yaml {data_yaml} not found: pass an ultralytics dataset yaml")
    data = yaml.safe_load(data_yaml.read_text()) or {}
    if not isinstance(data, dict) or not data.get("train"):
        raise SlimError(f"dataset yaml {data_yaml} has no 'train' key: add the train image folder to it")
    root = Path(data.get("path") or data_yaml.parent)
    if not root.is_absolute() and not root.exists():
        root = data_yaml.parent / root
    entries = data["train"] if isinstance(data["train"], list) else [data["train"]]
    files = []
    for entry in entries:
        files += _images_in(root / entry)
    return files


def _images_in(source: Path) -> list[Path]:
    """Images in a folder (recursively) or listed in a .txt file (lines relative to the file's folder)."""
    if source.is_dir():
        return [p for p in source.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()]
    if source.suffix == ".txt" and source.is_file():
        lines = [s.strip() for s in source.read_text().splitlines() if s.strip()]
        paths = [source.parent / s if not Path(s).is_absolute() else Path(s) for s in lines]
        return [p for p in paths if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()]
    raise SlimError(f"train split {source} is neither a folder nor a .txt image list: fix 'train' in the yaml")
