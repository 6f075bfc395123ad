"""Sparse-transfer benchmark: a model pruned on the demo set, carried to a set with other classes, against the
same pruned architecture trained from scratch there and the dense model carried there, at equal epochs.

Results go to <project>/<name>/bench_transfer/results.json and a markdown table (BENCH_TRANSFER.md) beside it.
"""

from __future__ import annotations

import logging
import platform
import time
from datetime import datetime
from pathlib import Path

import torch

from slim import stages, ultra
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
            {"train": stages.train, "sparsity": stages.sparsity, "prune": stages.prune}[stage](cfg, exist_ok=True)
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
    start = time.perf_counter()
    best = ultra.train(source, args, keep_architecture=True, new_classes=True)
    seconds = time.perf_counter() - start
    val = {**ultralytics_args(cfg, "val"), "data": args["data"], "project": args["project"], "name": f"val_{name}"}
    val.pop("seed", None)
    metrics = ultra.validate(best, val)
    return {"arm": arm, **{k: metrics[k] for k in ("params", "gflops", "mAP50", "mAP50_95")}, "train_s": round(seconds)}


def _reinitialized(pruned: Path, out: Path) -> Path:
    """The pruned architecture with fresh weights: every layer's own reset, then the detect head's prior biases."""
    model, ckpt = ultra.load_model(pruned)
    for m in model.modules():
        if m is not model and hasattr(m, "reset_parameters"):
            m.reset_parameters()
    head = model.model[-1]
    if hasattr(head, "bias_init"):
        head.bias_init()  # ultralytics' own start: box bias 2, class prior log(5 / nc / (640 / stride)^2)
    return ultra.save_checkpoint(model, out, ckpt.get("train_args", {}), {"reinitialized_from": str(pruned)})


