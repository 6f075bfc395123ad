"""Sparse-transfer benchmark: a model pruned on the demo set, carried to a set with other classes, against the
same pruned architecture trained from scratch there and the dense model carried there, at equal epochs.

Results go to <project>/<name>/bench_transfer/results.json and a markdown table (BENCH_TRANSFER.md) beside it.
"""

from __future__ import annotations

import logging
import platform
from datetime import datetime
from pathlib import Path

import torch
from ultralytics.nn.modules import DFL

from slim import pruning, stages, ultra
from slim.config import Config, ultralytics_args
from slim.io import write_json, write_text
from slim.report import markdown_table

LOG = logging.getLogger("slim")
ARMS = ("pruned, transferred", "pruned architecture, from scratch", "dense, transferred")


def run(cfg: Config, command: str) -> Path:
    """Make the source models with the pipeline's stages (reused when present), train the three arms, write results.

    The dense model is the train stage's output; the pruned one is prune/pruned.pt (after sparsity training).
    Every arm trains with the finetune section's settings on transfer.data for the same epochs.
    """
    for stage in ("train", "sparsity", "prune"):
        if not stages.output_of(cfg, stage).exists():
            LOG.info(f"\n===== {stage} (source model) =====")
            {"train": stages.train, "sparsity": stages.sparsity, "prune": pruning.prune}[stage](cfg, exist_ok=True)
    folder = cfg.stage_dir("bench_transfer")
    folder.mkdir(parents=True, exist_ok=True)
    pruned = stages.output_of(cfg, "prune")
    sources = dict(zip(ARMS, (pruned, _reinitialized(pruned, folder / "scratch.pt"), stages.output_of(cfg, "train"))))
    target = stages.transfer_config(cfg)
    rows = [_arm(target, arm, source, folder) for arm, source in sources.items()]
    result = {"command": command, "date": datetime.now().isoformat(timespec="seconds"),
              "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch thread(s)",
              "source_data": cfg.data, "target_data": cfg.transfer.data, "imgsz": cfg.imgsz,
              "epochs": cfg.finetune.args.get("epochs"), "rows": rows}
    write_json(folder / "results.json", result)
    table = markdown_table(rows, [("arm", "arm", ""), ("params", "params", ",d"), ("gflops", "GFLOPs", ".3f"),
                                  ("mAP50", "mAP50", ".3f"), ("mAP50_95", "mAP50-95", ".3f"), ("train_s", "train s", "d")])
    out = folder / "BENCH_TRANSFER.md"
    return write_text(out, f"`{command}` ({result['date']}, {result['machine']})\n\n{table}\n")


def _arm(cfg: Config, arm: str, source: Path, folder: Path) -> dict:
    """Train one arm on the target set with the finetune settings, keeping its architecture; validate it there."""
    LOG.info(f"\n===== {arm} =====")
    name = arm.replace(",", "").replace(" ", "_")
    args = {**ultralytics_args(cfg, "finetune"), "data": stages.resolve_data(cfg),
            "project": str(folder.resolve()), "name": name}
    results = folder / name / "results.csv"
    if not _finished(results, args["epochs"]):  # a finished arm of an earlier run is reused, not trained again
        ultra.train(source, args, keep_architecture=True, new_classes=True)
    best = folder / name / "weights" / "best.pt"
    val = {**ultralytics_args(cfg, "val"), "data": args["data"], "project": args["project"], "name": f"val_{name}"}
    metrics = ultra.validate(best, val)
    seconds = float(results.read_text().splitlines()[-1].split(",")[1])  # ultralytics' cumulative "time" column
    return {"arm": arm, **{k: metrics[k] for k in ("params", "gflops", "mAP50", "mAP50_95")}, "train_s": round(seconds)}


def _finished(results_csv: Path, epochs: int) -> bool:
    """Whether a training run wrote all its epochs (an interrupted one leaves fewer rows)."""
    return results_csv.exists() and len(results_csv.read_text().splitlines()) > epochs


def _reinitialized(pruned: Path, out: Path) -> Path:
    """The pruned architecture with fresh weights: every layer's own reset (but DFL's fixed one), the head's prior biases."""
    model, ckpt = ultra.load_model(pruned)
    for m in model.modules():
        if m is not model and hasattr(m, "reset_parameters"):
            m.reset_parameters()
    for m in model.modules():  # after the loop above, which visits DFL before its conv
        if isinstance(m, DFL):  # its frozen conv is the fixed 0..c1-1 expectation, not a learned layer: restore it
            m.conv.weight.data[:] = torch.arange(m.c1, dtype=m.conv.weight.dtype).view(1, m.c1, 1, 1)
    head = model.model[-1]
    if hasattr(head, "bias_init"):
        head.bias_init()  # ultralytics' own start: box bias 2, class prior log(5 / nc / (640 / stride)^2)
    return ultra.save_checkpoint(model, out, ckpt.get("train_args", {}), {"reinitialized_from": str(pruned)})


