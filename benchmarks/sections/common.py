"""Steps and formats several bench sections share: prune at a ratio, export and time, validate, rows, targets, plots."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from tqdm import tqdm

from slim import pruning, stages, ultra
from slim.config import Config, ultralytics_args
from slim.export import export_onnx
from slim.groups import prunable_bns
from slim.io import write_atomic
from slim.latency import compare_latency
from slim.sparsity import gamma_stats

LOG = logging.getLogger("slim")
LATENCY = {"small": (100, 10), "640": (30, 5), "gpu": (200, 20)}  # (timed runs, warm-up runs) per model
DPI = 110
SIZE_COLUMNS = [("model", "model", ""), ("params", "params", ",d"), ("gflops", "GFLOPs", ".2f"),
                ("onnx_mb", "ONNX MB", ".2f"), ("latency_ms", "latency ms", ".1f"),
                ("latency_ratio", "latency ratio", ".3f"), ("gflops_ratio", "GFLOPs ratio", ".3f"),
                ("latency_per_gflop", "latency / GFLOPs ratio", ".2f"), ("latency_1t_ms", "1 thread ms", ".1f"),
                ("latency_1t_ratio", "1 thread ratio", ".3f")]
MAP_COLUMNS = [("mAP50", "mAP50", ".3f"), ("mAP50_95", "mAP50-95", ".3f")]


def prune_at(cfg: Config, source: Path, out: Path, ratio: float, round_to: int | None = None,
             fold_beta: bool | None = None) -> tuple[Path, dict]:
    """pruning.prune at `ratio` (round_to and fold_beta default to the config's) into `out`; (path, sizes row)."""
    p = cfg.prune
    p = dataclasses.replace(p, ratio=ratio, threshold=None, round_to=p.round_to if round_to is None else round_to,
                            fold_beta=p.fold_beta if fold_beta is None else fold_beta)
    path, plan, sizes = pruning.prune(dataclasses.replace(cfg, prune=p), source, out, exist_ok=True)
    return path, {"ratio": ratio, "round_to": p.round_to, "fold_beta": p.fold_beta,
                  "removed": plan.removed_fraction, **sizes["after"]}


def deploy_(cfg: Config, weights: dict, rows: dict, folder: Path, latency: tuple) -> int:
    """Export every checkpoint to ONNX at cfg.imgsz and time them all interleaved in one call (every core), then
    in a second call on one thread; adds onnx_mb, latencies and the ratios to the first (reference) model to
    `rows`. Returns the thread count of the first call."""
    e, onnx = cfg.export, {}
    for tag, path in tqdm(weights.items(), desc="export"):
        result = export_onnx(path, folder / f"{tag}.onnx", cfg.imgsz, e.opset, False, e.simplify, False, e.atol)
        onnx[tag], rows[tag]["onnx_mb"] = result.path, result.size_bytes / 1e6
    timing = compare_latency(onnx, cfg.imgsz, runs=latency[0], warmup=latency[1])
    # one thread too: a 2-thread op waits for its slower thread, so other jobs on the cores inflate the
    # per-op overhead that weighs most in the smallest models; one thread is the steadier comparison here
    single = compare_latency(onnx, cfg.imgsz, runs=latency[0], warmup=latency[1], threads=1)
    ref = next(iter(weights))
    for tag, row in rows.items():
        row.update(latency_ms=timing[tag]["median_ms"], p90_ms=timing[tag]["p90_ms"])
        row["latency_ratio"] = row["latency_ms"] / timing[ref]["median_ms"]
        row["latency_1t_ms"] = single[tag]["median_ms"]
        row["latency_1t_ratio"] = single[tag]["median_ms"] / single[ref]["median_ms"]
        row["gflops_ratio"] = row["gflops"] / rows[ref]["gflops"]
        row["latency_per_gflop"] = row["latency_ratio"] / row["gflops_ratio"]
    return timing[ref]["threads"]


def val(cfg: Config, weights: Path, folder: Path, tag: str) -> dict:
    """mAP50 and mAP50-95 on the config's val split, the pipeline's val settings, results under `folder`."""
    args = {**ultralytics_args(cfg, "val"), "data": stages.resolve_data(cfg), "project": str(folder.resolve()),
            "name": f"val-{tag}"}
    result = ultra.validate(weights, args)
    return {"mAP50": result["mAP50"], "mAP50_95": result["mAP50_95"]}


def gamma_row(weights: Path) -> dict:
    """The prunable BNs of a checkpoint: how many, their channels and their gamma statistics."""
    bns = prunable_bns(ultra.load_model(weights)[0])
    return {"weights": str(weights), "bns": len(bns), "channels": sum(bn.num_features for bn in bns),
            **gamma_stats(bns)}


def tagged(rows: dict) -> list[dict]:
    return [{"model": tag, **row} for tag, row in rows.items()]


def target(what: str, met: bool) -> dict:
    return {"what": what, "met": bool(met)}


def skipped(reason: str) -> dict:
    LOG.warning(f"bench: skipped: {reason}")
    return {"skipped": reason}


def figure() -> Figure:
    fig = Figure(figsize=(5.6, 3.8), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save(fig: Figure, out: Path) -> Path:
    return write_atomic(out, lambda f: fig.savefig(f, format="png", dpi=DPI))
