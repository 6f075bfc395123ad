"""`make pipeline`: every stage in order on one config, then the measurements and REPORT.md.

A stage whose output exists and whose provenance record matches what the config asks for now is reused; one that
differs is redone, and with it every stage after it (their input changes), each saying why in one line.
A stage interrupted with the settings asked for now, on the same input, is resumed. --exist-ok redoes everything.
"""

from __future__ import annotations

import logging
from pathlib import Path

from slim import deploy, provenance, pruning, stages, ultra
from slim.config import Config
from slim.latency import compare_latency
from slim.report import plot_channels_kept, plot_gamma_histograms, plot_gamma_per_layer, prune_table, write_report
from slim.plan import PruningPlan
from slim.stage_table import COMPARED, STAGES

LOG = logging.getLogger("slim")
LATENCY_RUNS = 50


def run(cfg: Config, config_path: str, exist_ok: bool = False) -> Path:
    """Run train -> sparsity -> prune -> finetune (-> transfer), then val, export and the report. Returns REPORT.md."""
    stages.resolve_data(cfg)
    steps = {
        "train": lambda resume: stages.train(cfg, resume=resume, exist_ok=True),
        "sparsity": lambda resume: stages.sparsity(cfg, resume=resume, exist_ok=True),
        "prune": lambda resume: _prune(cfg),
        "finetune": lambda resume: stages.finetune(cfg, resume=resume, exist_ok=True),
    }
    if cfg.transfer.data:
        steps["transfer"] = lambda resume: stages.transfer(cfg, resume=resume, exist_ok=True)
    for stage, step in steps.items():
        point = None if exist_ok else _resumable(cfg, stage)
        if point:
            LOG.info(f"\n===== {stage}: resuming the interrupted run, {point[0]} of {point[1]} epochs done =====")
            step(True)
            continue
        why = "--exist-ok" if exist_ok else _why_redo(cfg, stage)
        if why is None:
            LOG.info(f"{stage}: reusing {stages.output_of(cfg, stage)} (pass --exist-ok to redo it)")
            continue
        LOG.info(f"\n===== {stage}: {why} =====")
        step(False)
    return report(cfg, config_path)


def _resumable(cfg: Config, stage: str) -> tuple[int, int] | None:
    """(epochs done, in all) when the stage's folder holds an interrupted run started just as asked now, from the
    input it would read now; None when there is none, or it differs (the stage is then redone)."""
    point = stages.interrupted(cfg, stage)
    pending = provenance.read(cfg.stage_dir(stage), pending=True) if point else None
    if pending is None or provenance.changes(pending, provenance.wanted(cfg, stage, _source(cfg, stage))):
        return None
    return point


def _why_redo(cfg: Config, stage: str) -> str | None:
    """Why a stage must run, in a few words; None when its output exists and was made just as asked now."""
    out = stages.output_of(cfg, stage)
    if not out.exists():
        return f"no {out} yet"
    saved = provenance.read(cfg.stage_dir(stage))
    if saved is None:
        return f"no record of what made {out}: redoing it"
    changed = provenance.changes(saved, provenance.wanted(cfg, stage, _source(cfg, stage)))
    return f"redoing it, made with {', '.join(changed)}" if changed else None


def _source(cfg: Config, stage: str) -> str | Path:
    reads = STAGES[stage].reads
    return stages.output_of(cfg, reads) if reads else cfg.model


def _prune(cfg: Config) -> None:
    _, plan, sizes = pruning.prune(cfg, exist_ok=True)
    LOG.info(prune_table(plan, sizes))


def report(cfg: Config, config_path: str) -> Path:
    """Validate and export every stage's model, time them side by side, plot, and write REPORT.md."""
    weights = {STAGES[stage].tag: stages.output_of(cfg, stage) for stage in COMPARED}
    rows = {tag: deploy.val(cfg, path, tag, exist_ok=True) for tag, path in weights.items()}  # the report's own
    onnx = {}
    for tag, path in weights.items():
        int8 = cfg.export.int8 and tag in ("baseline", "finetuned")
        exported = deploy.export(cfg, path, tag, int8=int8, exist_ok=True)
        onnx[tag] = exported["onnx"]
        rows[tag]["onnx_mb"] = exported["onnx_bytes"] / 1e6
        if "int8" in exported:
            onnx[f"{tag}-int8"] = exported["int8"]
            rows[f"{tag}-int8"] = {**deploy.val_onnx(cfg, exported["int8"], f"{tag}-int8"),
                                   "onnx_mb": exported["int8_bytes"] / 1e6}
    latency = compare_latency(onnx, cfg.imgsz, runs=LATENCY_RUNS, warmup=10)
    for tag, timing in latency.items():
        rows[tag].update(latency_ms=timing["median_ms"], latency_ratio=timing["median_ms"] / latency["baseline"]["median_ms"])
    if cfg.transfer.data:  # validated on its own dataset; not in the latency comparison
        tag = STAGES["transfer"].tag
        rows[tag] = deploy.val(stages.transfer_config(cfg), stages.output_of(cfg, "transfer"), tag, exist_ok=True)
    images = _plots(cfg, weights)
    threads = latency["baseline"]["threads"]
    notes = [f"Latency: ONNX Runtime on CPU, batch 1, {cfg.imgsz} px, {threads} thread(s), median of "
             f"{LATENCY_RUNS} runs after warm-up, all models interleaved in one process.",
             "int8 rows: ONNX Runtime static quantization (QDQ, per-channel), validated through ultralytics' ONNX path."]
    if cfg.transfer.data:
        notes.append(f"transferred: the pruned model finetuned onto {cfg.transfer.data} (its own classes), "
                     "validated there.")
    commands = ["make pipeline" if config_path in ("default", "configs/default.yaml") else f"slim pipeline --config {config_path}"]
    out = Path(cfg.project) / cfg.name / "REPORT.md"
    return write_report(out, f"slim report: {cfg.name}", list(rows.values()), images, commands, notes)


def _plots(cfg: Config, weights: dict) -> dict:
    folder = cfg.stage_dir("vis")
    models = {tag: ultra.load_model(weights[tag])[0] for tag in ("baseline", "sparse")}
    meta = ultra.load_model(weights["pruned"])[1]["slim"]
    return {
        "|gamma| of prunable BN channels before and after sparsity training": plot_gamma_histograms(
            models, folder / "gamma_hist.png"),
        "|gamma| per layer (median and 10-90% range)": plot_gamma_per_layer(models, folder / "gamma_layers.png"),
        "Channels kept per layer": plot_channels_kept(PruningPlan.from_dict(meta["plan"]), folder / "channels.png"),
    }
