"""INT8 benchmarks: what quantization keeps for every task, and which ONNX Runtime settings run fastest.

tasks: segment, pose, obb and classify models on the demo images (labels recast per task, slim.data.task_dataset),
    started from the pipeline's dense detection baseline, exported to fp32 and int8 with several sets of nodes
    kept in fp32, each validated through ultralytics' ONNX path with the task's own metric.
latency: the dense baseline at the demo size (accuracy) and at LATENCY_SIZES (speed), quantized with each of
    SETTINGS, timed interleaved against its fp32 model (slim.latency.compare_latency).

Results go to <project>/<name>/bench_int8/results.json and BENCH_INT8.md.
"""

from __future__ import annotations

import json
import logging
import platform
from datetime import datetime
from pathlib import Path

import torch

from slim import ultra
from slim.config import Config, ultralytics_args
from slim.io import write_json, write_text
from slim.data import task_dataset
from slim.export import export_onnx
from slim.latency import compare_latency
from slim.quantize import DEFAULT_EXCLUDE, HEAD, Int8Settings, calibration_images, quantize_int8
from slim.report import markdown_table
from slim.stages import output_of, resolve_data, train

LOG = logging.getLogger("slim")
PARTS = ("tasks", "latency")
TASK_MODELS = {"segment": "yolov8n-seg.yaml", "pose": "yolov8n-pose.yaml", "obb": "yolov8n-obb.yaml",
               "classify": "yolov8n-cls.yaml"}
TASK_EPOCHS = 6  # with the detection baseline's weights as the start, enough for a metric well above chance
METRIC = {"detect": "mAP50_95", "segment": "seg_mAP50_95", "pose": "pose_mAP50_95", "obb": "mAP50_95",
          "classify": "top1"}
# the head's task-specific branch: mask coefficients (cv4) and prototypes, keypoints (cv4), angles (cv4), the linear
BRANCH = {"segment": (HEAD + r"cv4\.", HEAD + "proto/"), "pose": (HEAD + r"cv4\.",), "obb": (HEAD + r"cv4\.",),
          "classify": (HEAD + "linear/",)}
LATENCY_SIZES = (320, 640)
LATENCY_RUNS = {320: (40, 5), 640: (20, 3)}  # (timed, warmup) runs per model
LATENCY_CALIB = 8  # calibration images of the speed-only models: the scales do not change which kernels run
SETTINGS = {  # name -> (settings, nodes kept in fp32)
    "QDQ per-channel u8/s8 reduce_range": (Int8Settings(), DEFAULT_EXCLUDE),
    "QDQ per-channel u8/s8": (Int8Settings(reduce_range=False), DEFAULT_EXCLUDE),
    "QDQ per-tensor u8/s8 reduce_range": (Int8Settings(per_channel=False), DEFAULT_EXCLUDE),
    "QDQ per-tensor u8/s8": (Int8Settings(per_channel=False, reduce_range=False), DEFAULT_EXCLUDE),
    "QDQ per-channel s8/s8": (Int8Settings(activations="int8", reduce_range=False), DEFAULT_EXCLUDE),
    "QDQ per-channel u8/u8": (Int8Settings(weights="uint8", reduce_range=False), DEFAULT_EXCLUDE),
    "QOperator per-channel u8/s8 reduce_range": (Int8Settings(format="qoperator"), DEFAULT_EXCLUDE),
    "QOperator per-tensor u8/s8": (Int8Settings("qoperator", False, reduce_range=False), DEFAULT_EXCLUDE),
    "QDQ per-channel u8/s8 reduce_range, whole head fp32": (Int8Settings(), (HEAD,)),
}


def run(cfg: Config, command: str, parts: tuple = PARTS) -> Path:
    """Run the chosen parts (the pipeline's train stage first when its output is missing); write the results.

    results.json keeps the other part's results from an earlier run, so the parts can run one at a time.
    """
    if not output_of(cfg, "train").exists():
        LOG.info("\n===== train (dense baseline) =====")
        train(cfg, exist_ok=True)
    folder = cfg.stage_dir("bench_int8")
    folder.mkdir(parents=True, exist_ok=True)
    stamp = {"command": command, "machine": f"{platform.processor() or platform.machine()}, "
             f"{torch.get_num_threads()} torch thread(s)", "imgsz": cfg.imgsz}
    new = {}
    if "tasks" in parts:
        rows = [row for task in TASK_MODELS for row in _task_rows(cfg, task, folder / task)]
        new["tasks"] = {**stamp, "date": datetime.now().isoformat(timespec="seconds"), "rows": rows}
    if "latency" in parts:
        rows = _latency_rows(cfg, folder / "latency")
        new["latency"] = {**stamp, "date": datetime.now().isoformat(timespec="seconds"), "rows": rows}
    previous = folder / "results.json"  # read at the end: another part may have finished meanwhile
    result = {**(json.loads(previous.read_text()) if previous.exists() else {}), **new}
    write_json(previous, result)
    out = folder / "BENCH_INT8.md"
    write_text(out, _markdown(result))
    return out


def _task_rows(cfg: Config, task: str, folder: Path) -> list[dict]:
    """Train (or reuse) one task's model, export fp32, quantize with each exclusion set, validate them all."""
    LOG.info(f"\n===== int8: {task} =====")
    data = task_dataset(task, Path(resolve_data(cfg)), folder.parent / "data" / task)
    best = folder / "train" / "weights" / "best.pt"
    if not _finished(folder / "train" / "results.csv"):
        args = {**ultralytics_args(cfg, "train"), "data": str(data), "epochs": TASK_EPOCHS,
                "project": str(folder.resolve()), "name": "train", "pretrained": str(output_of(cfg, "train"))}
        best = ultra.train(TASK_MODELS[task], args, keep_architecture=False)
    fp32 = export_onnx(best, folder / "fp32.onnx", cfg.imgsz, atol=cfg.export.atol).path
    images = calibration_images(data, cfg.export.calib_images)
    models = {"fp32": fp32}
    for name, exclude in _exclusions(task).items():
        out = folder / f"int8-{name.replace(' ', '_').replace('+', 'and')}.onnx"
        models[f"int8, fp32 kept: {name}"] = quantize_int8(fp32, out, images, cfg.imgsz, exclude)
    rows = [{"task": task, "model": tag, "onnx_mb": path.stat().st_size / 1e6, **_validate(cfg, data, path, folder)}
            for tag, path in models.items()]
    for row in rows:
        row["metric_name"], row["metric"] = METRIC[task], row[METRIC[task]]
        row["delta"] = row["metric"] - rows[0]["metric"]
    return rows


def _finished(results_csv: Path) -> bool:
    """Whether a task's training ran all TASK_EPOCHS (an interrupted run leaves a best.pt of fewer epochs)."""
    return results_csv.exists() and len(results_csv.read_text().splitlines()) > TASK_EPOCHS


def _exclusions(task: str) -> dict[str, tuple]:
    """The sets of fp32 nodes compared: none, the detection default, the default plus the task's branch, the head."""
    return {"nothing": (), "default (decode tail + DFL)": DEFAULT_EXCLUDE,
            "default + task branch": DEFAULT_EXCLUDE + BRANCH[task], "whole head": (HEAD,)}


def _validate(cfg: Config, data: Path, onnx_path: Path, folder: Path) -> dict:
    """The ONNX file's metrics through ultralytics' ONNX backend, on the set's val split."""
    args = {**ultralytics_args(cfg, "val"), "data": str(data), "batch": 1, "project": str(folder.resolve()),
            "name": f"val-{onnx_path.stem}"}
    metrics = ultra.validate_onnx(onnx_path, args)
    metrics.pop("speed_ms")
    return metrics


def _latency_rows(cfg: Config, folder: Path) -> list[dict]:
    """Every setting: mAP50-95 at the demo size, latency and ratio to fp32 at each of LATENCY_SIZES."""
    source, data = output_of(cfg, "train"), Path(resolve_data(cfg))
    rows = {name: {"setting": name} for name in ["fp32", *SETTINGS]}
    for imgsz in (cfg.imgsz, *LATENCY_SIZES):
        LOG.info(f"\n===== int8 settings at {imgsz} px =====")
        models = {"fp32": export_onnx(source, folder / f"fp32-{imgsz}.onnx", imgsz, atol=cfg.export.atol).path}
        images = calibration_images(data, cfg.export.calib_images if imgsz == cfg.imgsz else LATENCY_CALIB)
        for i, (name, (settings, exclude)) in enumerate(SETTINGS.items()):
            out = folder / f"int8-{i}-{imgsz}.onnx"
            models[name] = quantize_int8(models["fp32"], out, images, imgsz, exclude, settings)
        if imgsz == cfg.imgsz:
            for name, path in models.items():
                rows[name]["mAP50_95"] = _validate(cfg, data, path, folder)["mAP50_95"]
                rows[name]["onnx_mb"] = path.stat().st_size / 1e6
            continue
        timing = compare_latency(models, imgsz, *LATENCY_RUNS[imgsz])
        for name, t in timing.items():
            rows[name][f"ms_{imgsz}"] = t["median_ms"]
            rows[name][f"ratio_{imgsz}"] = t["median_ms"] / timing["fp32"]["median_ms"]
    for row in rows.values():
        row["delta"] = row["mAP50_95"] - rows["fp32"]["mAP50_95"]
    return list(rows.values())


def _markdown(result: dict) -> str:
    """A table per part, under the command, date and machine that produced it."""
    parts = []
    if "tasks" in result:
        r = result["tasks"]
        parts += [f"`{r['command']}` ({r['date']}, {r['machine']})", markdown_table(r["rows"], [
            ("task", "task", ""), ("model", "model", ""), ("onnx_mb", "ONNX MB", ".2f"), ("metric_name", "metric", ""),
            ("metric", "value", ".3f"), ("delta", "vs fp32", "+.3f"), ("mAP50_95", "box mAP50-95", ".3f")])]
    if "latency" in result:
        r = result["latency"]
        sizes = [int(k[3:]) for k in r["rows"][0] if k.startswith("ms_")]
        columns = [("setting", "setting", ""), ("onnx_mb", f"MB at {r['imgsz']}", ".2f"),
                   ("mAP50_95", f"mAP50-95 at {r['imgsz']}", ".3f"), ("delta", "vs fp32", "+.3f")]
        for s in sizes:
            columns += [(f"ms_{s}", f"ms at {s}", ".1f"), (f"ratio_{s}", f"ratio at {s}", ".3f")]
        parts += [f"`{r['command']}` ({r['date']}, {r['machine']})", markdown_table(r["rows"], columns)]
    return "\n\n".join(parts) + "\n"
