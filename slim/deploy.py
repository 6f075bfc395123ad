"""The val and export stages: the same metrics for every model, ONNX (+ INT8) files checked against PyTorch.

Outputs: <project>/<name>/val/<tag>.json and <project>/<name>/export/<tag>.onnx (+ <tag>-int8.onnx).
"""

from __future__ import annotations

from pathlib import Path

from slim import ultra
from slim.config import Config, dump_config, ultralytics_args
from slim.errors import SlimError
from slim.export import export_onnx
from slim.io import write_json
from slim.quantize import DEFAULT_EXCLUDE, calibration_images, quantize_int8
from slim.stages import output_of, resolve_data

# what `--weights` defaults to in val and export: the end of the pipeline
DEFAULT_STAGE = "finetune"


def default_weights(cfg: Config, weights: str | Path | None) -> Path:
    if weights:
        return ultra.check_weights_file(weights)  # before the dataset is generated or read
    path = output_of(cfg, DEFAULT_STAGE)
    if not path.exists():
        raise SlimError(f"no finetuned model at {path}: run `make finetune` first, or pass --weights")
    return path


def tag_of(weights: Path) -> str:
    """A short name for a checkpoint's results: its stage folder for pipeline outputs, else its file stem."""
    return weights.parent.parent.name if weights.parent.name == "weights" else weights.stem


def val(cfg: Config, weights: str | Path | None = None, tag: str | None = None) -> dict:
    """Validate one checkpoint; print and write the same fields for every model (JSON)."""
    weights = default_weights(cfg, weights)
    tag = tag or tag_of(weights)
    args = {**ultralytics_args(cfg, "val"), "data": resolve_data(cfg), "name": f"val/{tag}"}
    args.pop("seed", None)
    result = {"model": tag, **ultra.validate(weights, args)}
    out = cfg.stage_dir("val") / f"{tag}.json"
    dump_config(cfg, cfg.stage_dir("val") / "config.yaml")
    write_json(out, result)
    return result


def val_onnx(cfg: Config, onnx_path: Path, tag: str) -> dict:
    """mAP of an ONNX file through ultralytics' own ONNX validation path, so it compares with PyTorch's."""
    args = {**ultralytics_args(cfg, "val"), "data": resolve_data(cfg), "name": f"val/{tag}", "batch": 1}
    args.pop("seed", None)
    result = {"model": tag, **ultra.validate_onnx(onnx_path, args)}
    out = cfg.stage_dir("val") / f"{tag}.json"
    write_json(out, result)
    return result


def export(cfg: Config, weights: str | Path | None = None, tag: str | None = None, int8: bool | None = None) -> dict:
    """Export to ONNX (checked against PyTorch) and, if asked, to INT8 calibrated on the dataset's images.

    Returns:
        {"onnx": path, "onnx_bytes": int, "max_abs_diff": float, and "int8": path when made}.
    """
    weights = default_weights(cfg, weights)
    tag = tag or tag_of(weights)
    e, folder = cfg.export, cfg.stage_dir("export")
    ultra.load_model(weights)  # a bad checkpoint is one clear line here, not the exporter's traceback
    result = export_onnx(weights, folder / f"{tag}.onnx", cfg.imgsz, e.opset, e.dynamic, e.simplify, e.half, e.atol)
    dump_config(cfg, folder / "config.yaml")
    out = {"onnx": result.path, "onnx_bytes": result.size_bytes, "max_abs_diff": result.max_abs_diff}
    if e.int8 if int8 is None else int8:
        images = calibration_images(Path(resolve_data(cfg)), e.calib_images)
        exclude = e.int8_exclude or DEFAULT_EXCLUDE
        out["int8"] = quantize_int8(result.path, folder / f"{tag}-int8.onnx", images, cfg.imgsz, exclude)
        out["int8_bytes"] = out["int8"].stat().st_size
    return out
