"""The val and export stages: the same metrics for every model, ONNX (+ INT8) files checked against PyTorch.

Outputs: <project>/<name>/val/<tag>.json and <project>/<name>/export/<tag>.onnx (+ <tag>-int8.onnx).
"""

from __future__ import annotations

import json
from pathlib import Path

from slim import provenance, ultra
from slim.config import Config, config_to_dict, dump_config, ultralytics_args
from slim.errors import UsageError
from slim.export import export_onnx
from slim.io import write_json
from slim.quantize import DEFAULT_EXCLUDE, calibration_images, quantize_int8
from slim.stage_table import FINAL, STAGES
from slim.stages import finished_output, resolve_data

def default_weights(cfg: Config, weights: str | Path | None) -> Path:
    if weights:
        return ultra.check_weights_file(weights)  # before the dataset is generated or read
    return finished_output(cfg, FINAL)  # the end of the pipeline


def tag_of(weights: Path) -> str:
    """A short name for a checkpoint's results: its stage's tag for pipeline outputs, else its run or file name."""
    if weights.parent.name == "weights":
        stage = weights.parent.parent.name
        return STAGES[stage].tag if stage in STAGES else stage
    return weights.stem


def val(cfg: Config, weights: str | Path | None = None, tag: str | None = None, exist_ok: bool = False) -> dict:
    """Validate one checkpoint; print and write the same fields for every model (JSON).

    val/<tag>.json holding another model's results, or results made with other settings, is kept unless exist_ok.
    """
    ultra.check_device(cfg.device)
    weights = default_weights(cfg, weights)
    tag = tag or tag_of(weights)
    out = cfg.stage_dir("val") / f"{tag}.json"
    made_from = provenance.of_file(weights, {"data": cfg.data, "imgsz": cfg.imgsz, **_settings(cfg, "val")})
    _refuse_replacing(out, _read_json(out).get("provenance"), made_from, exist_ok)
    args = {**ultralytics_args(cfg, "val"), "data": resolve_data(cfg), "name": f"val/{tag}"}
    result = {"model": tag, **ultra.validate(weights, args), "provenance": made_from}
    dump_config(cfg, cfg.stage_dir("val") / "config.yaml")
    write_json(out, result)
    return result


def val_onnx(cfg: Config, onnx_path: Path, tag: str) -> dict:
    """mAP of an ONNX file through ultralytics' own ONNX validation path, so it compares with PyTorch's."""
    args = {**ultralytics_args(cfg, "val"), "data": resolve_data(cfg), "name": f"val/{tag}", "batch": 1}
    result = {"model": tag, **ultra.validate_onnx(onnx_path, args)}
    out = cfg.stage_dir("val") / f"{tag}.json"
    write_json(out, result)
    return result


def export(cfg: Config, weights: str | Path | None = None, tag: str | None = None, int8: bool | None = None,
           exist_ok: bool = False) -> dict:
    """Export to ONNX (checked against PyTorch) and, if asked, to INT8 calibrated on the dataset's images.

    export/<tag>.onnx made from another model or with other settings is kept unless exist_ok; what made it is
    recorded beside it in <tag>.provenance.json.

    Returns:
        {"onnx": path, "onnx_bytes": int, "max_abs_diff": float, and "int8": path when made}.
    """
    weights = default_weights(cfg, weights)
    tag = tag or tag_of(weights)
    e, folder = cfg.export, cfg.stage_dir("export")
    record = folder / f"{tag}.provenance.json"
    made_from = provenance.of_file(weights, {"imgsz": cfg.imgsz, **_settings(cfg, "export")})
    _refuse_replacing(folder / f"{tag}.onnx", _read_json(record) or None, made_from, exist_ok)
    ultra.load_model(weights)  # a bad checkpoint is one clear line here, not the exporter's traceback
    int8 = e.int8 if int8 is None else int8
    data = resolve_data(cfg) if int8 else None  # a missing calibration set stops the export before it writes
    record.unlink(missing_ok=True)  # gone while the files it describes are being replaced
    result = export_onnx(weights, folder / f"{tag}.onnx", cfg.imgsz, e.opset, e.dynamic, e.simplify, e.half, e.atol)
    dump_config(cfg, folder / "config.yaml")
    out = {"onnx": result.path, "onnx_bytes": result.size_bytes, "max_abs_diff": result.max_abs_diff}
    if int8:
        images = calibration_images(Path(data), e.calib_images)
        exclude = e.int8_exclude or DEFAULT_EXCLUDE  # one default for every task (see slim/quantize.py)
        out["int8"] = quantize_int8(result.path, folder / f"{tag}-int8.onnx", images, cfg.imgsz, exclude)
        out["int8_bytes"] = out["int8"].stat().st_size
    write_json(record, made_from)
    return out


def _settings(cfg: Config, section: str) -> dict:
    return {f"{section}.{k}": v for k, v in config_to_dict(cfg)[section].items() if k not in provenance.NO_EFFECT}


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _refuse_replacing(out: Path, saved: dict | None, now: dict, exist_ok: bool) -> None:
    """A usage error when `out` exists and was made from another model or with other settings (unless exist_ok).

    Redoing the same model with the same settings gives the same file, so that replaces it without asking.
    """
    if exist_ok or not out.exists():
        return
    changed = provenance.changes(saved, now) if saved else ["settings slim did not record"]
    if changed:
        raise UsageError(f"{out} already exists, made with {', '.join(changed)}; pass --exist-ok to replace it, "
                         "or --tag NAME to keep both")
