"""Targeted vs L1 sparsity at one GFLOPs budget: the same dense baseline, the same sparsity epochs, the same prune.

For each method: sparsity training from the baseline (each with its own settings: l1 with the section's optimizer
and sr, targeted with the baseline's own optimizer), mAP of the sparse model, the prune at prune.target_gflops, mAP
of the pruned model (no finetuning), and the fraction of the channels that prune removes whose gamma is exactly 0.
Results go to <project>/<name>/bench_targeted/{results.json,BENCH_TARGETED.md}.
"""

from __future__ import annotations

import dataclasses
import logging
import platform
from datetime import datetime
from pathlib import Path

import torch

from slim import stages, ultra
from slim.config import Config, ultralytics_args
from slim.errors import UsageError
from slim.groups import analyze
from slim.io import write_json, write_text
from slim.report import markdown_table
from slim.targeted import select_removed

LOG = logging.getLogger("slim")
METHODS = ("l1", "targeted")
COLUMNS = [("method", "method", ""), ("optimizer", "optimizer, lr0", ""), ("sparse_mAP50_95", "sparse mAP50-95", ".3f"),
           ("pruned_mAP50_95", "pruned mAP50-95", ".3f"), ("gflops_fraction", "GFLOPs kept", ".1%"),
           ("removed_zero", "removed gammas exactly 0", ".1%"), ("sparsity_s", "sparsity s", "d")]


def run(cfg: Config, command: str, weights: str | None = None) -> Path:
    """Train the baseline when it is missing (or start from `weights`), then both methods; write the results."""
    if cfg.prune.target_gflops is None:
        raise UsageError("set prune.target_gflops: both methods are pruned to that fraction of the GFLOPs")
    baseline = Path(weights) if weights else stages.output_of(cfg, "train")
    if not baseline.exists():
        LOG.info("\n===== train (the dense baseline) =====")
        stages.train(cfg, exist_ok=True)
    folder = cfg.stage_dir("bench_targeted")
    folder.mkdir(parents=True, exist_ok=True)
    rows = [{"method": "baseline (dense, before sparsity)", "sparse_mAP50_95": _map(cfg, baseline, folder)}]
    rows += [_method(cfg, method, baseline, folder) for method in METHODS]
    result = {"command": command, "date": datetime.now().isoformat(timespec="seconds"),
              "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch thread(s)",
              "data": cfg.data, "imgsz": cfg.imgsz, "epochs": cfg.sparsity.args.get("epochs"),
              "target_gflops": cfg.prune.target_gflops, "baseline": str(baseline), "rows": rows}
    write_json(folder / "results.json", result)
    out = folder / "BENCH_TARGETED.md"
    return write_text(out, f"`{command}` ({result['date']}, {result['machine']})\n\n{markdown_table(rows, COLUMNS)}\n")


def _method(cfg: Config, method: str, baseline: Path, folder: Path) -> dict:
    """Sparsity training with `method` into its own experiment <name>-<method>, then the prune at the budget."""
    LOG.info(f"\n===== sparsity: {method} =====")
    run_cfg = dataclasses.replace(cfg, name=f"{cfg.name}-{method}",
                                  sparsity=dataclasses.replace(cfg.sparsity, method=method))
    sparse = stages.output_of(run_cfg, "sparsity")
    if not sparse.exists():
        stages.sparsity(run_cfg, baseline, exist_ok=True)
    pruned, plan, _ = stages.prune(run_cfg, sparse, exist_ok=True)
    args = ultralytics_args(run_cfg, "sparsity")
    if method == "targeted" and run_cfg.sparsity.inherit_optimizer:
        args = {**args, **ultra.inherited_optimizer(baseline)}
    seconds = float((sparse.parent.parent / "results.csv").read_text().splitlines()[-1].split(",")[1])
    return {"method": method, "optimizer": f"{args['optimizer']}, {args['lr0']:g}",
            "sparse_mAP50_95": _map(cfg, sparse, folder), "pruned_mAP50_95": _map(cfg, pruned, folder),
            "gflops_fraction": plan.gflops_fraction, "removed_zero": _removed_zero(sparse, cfg),
            "sparsity_s": round(seconds)}


def _removed_zero(sparse: Path, cfg: Config) -> float:
    """The fraction of the channels the prune at the budget removes whose gamma is exactly 0 in the saved model."""
    model = ultra.load_model(sparse)[0]
    masks, _ = select_removed(model, analyze(model), stages.sparsity_budget(cfg))
    modules = dict(model.named_modules())
    gammas = torch.cat([modules[name].bn.weight.detach()[mask] for name, mask in masks.items()])
    return float((gammas == 0).float().mean())


def _map(cfg: Config, weights: Path, folder: Path) -> float:
    val = {**ultralytics_args(cfg, "val"), "data": stages.resolve_data(cfg), "project": str(folder.resolve()),
           "name": "val"}
    val.pop("seed", None)
    return ultra.validate(weights, val)["mAP50_95"]
