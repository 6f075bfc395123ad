"""Targeted vs L1 sparsity at one GFLOPs budget: the same dense baseline, the same sparsity epochs, the same prune.

For each arm: sparsity training from the baseline (l1 with the section's optimizer and sr; targeted with the
baseline's own optimizer, and once with l1's optimizer to separate the method from the optimizer), mAP of the sparse
model, the prune at prune.target_gflops, mAP of the pruned model (no finetuning), and the fraction of the channels
that prune removes whose gamma is exactly 0. The dense control trains the baseline for the same epochs with the
targeted arm's optimizer and no sparsity. Finished runs are reused: the dense control and l1 for every budget, the
targeted arms (experiments <name>-targeted-<budget>, ...) per budget. Results, per budget F:
<project>/<name>/bench_targeted/{results-F.json,BENCH_TARGETED-F.md}.
"""

from __future__ import annotations

import dataclasses
import logging
import platform
from datetime import datetime
from pathlib import Path

import torch

from slim import pruning, stages, ultra
from slim.config import Config, ultralytics_args
from slim.errors import UsageError
from slim.groups import analyze
from slim.io import write_json, write_text
from slim.report import markdown_table
from slim.targeted import select_removed

LOG = logging.getLogger("slim")
ARMS = {  # label -> (experiment name suffix, sparsity section changes)
    "l1": ("l1", {"method": "l1"}),
    "targeted": ("targeted", {"method": "targeted"}),
    "targeted, l1's optimizer": ("targeted-sgd", {"method": "targeted", "inherit_optimizer": False}),
}
COLUMNS = [("arm", "arm", ""), ("optimizer", "optimizer, lr0", ""),
           ("sparse_mAP50_95", "mAP50-95 after the epochs", ".3f"),
           ("pruned_mAP50_95", "pruned mAP50-95", ".3f"), ("of_dense", "pruned / dense control", ".1%"),
           ("gflops_fraction", "GFLOPs kept", ".1%"), ("removed_zero", "removed gammas exactly 0", ".1%"),
           ("train_s", "train s", "d")]


def run(cfg: Config, command: str, weights: str | None = None, arms: list[str] | None = None) -> Path:
    """Train the baseline when it is missing (or start from `weights`), then the arms (by suffix: dense, l1,
    targeted, targeted-sgd; default all; without dense, no pruned / dense column); write the results."""
    suffixes = {suffix: arm for arm, (suffix, _) in ARMS.items()}
    unknown = sorted(set(arms or ()) - set(suffixes) - {"dense"})
    if unknown:
        raise UsageError(f"unknown arm {', '.join(unknown)}: pick from dense, {', '.join(suffixes)}")
    dense = arms is None or "dense" in arms
    arms = [arm for suffix, arm in suffixes.items() if arms is None or suffix in arms]
    if cfg.prune.target_gflops is None:
        raise UsageError("set prune.target_gflops: both methods are pruned to that fraction of the GFLOPs")
    baseline = Path(weights) if weights else stages.output_of(cfg, "train")
    if not baseline.exists():
        LOG.info("\n===== train (the dense baseline) =====")
        stages.train(cfg, exist_ok=True)
    folder = cfg.stage_dir("bench_targeted")
    folder.mkdir(parents=True, exist_ok=True)
    rows = [{"arm": "baseline (dense, before the epochs)", "sparse_mAP50_95": _map(cfg, baseline, folder)}]
    control = _dense(cfg, baseline, folder) if dense else None
    rows += [control] if control else []
    rows += [_arm(cfg, arm, baseline, folder) for arm in arms]
    for row in rows[2 if control else 1:]:
        if control:
            row["of_dense"] = row["pruned_mAP50_95"] / control["sparse_mAP50_95"]
    result = {"command": command, "date": datetime.now().isoformat(timespec="seconds"),
              "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch thread(s)",
              "data": cfg.data, "imgsz": cfg.imgsz, "epochs": cfg.sparsity.args.get("epochs"),
              "target_gflops": cfg.prune.target_gflops, "baseline": str(baseline), "rows": rows}
    budget = f"{cfg.prune.target_gflops:g}"
    write_json(folder / f"results-{budget}.json", result)
    out = folder / f"BENCH_TARGETED-{budget}.md"
    return write_text(out, f"`{command}` ({result['date']}, {result['machine']})\n\n{markdown_table(rows, COLUMNS)}\n")


def _arm(cfg: Config, arm: str, baseline: Path, folder: Path) -> dict:
    """Sparsity training into the arm's own experiment <name>-<suffix>, then the prune at the budget."""
    LOG.info(f"\n===== sparsity: {arm} =====")
    suffix, changes = ARMS[arm]
    if changes["method"] == "targeted":  # its sparse model depends on the budget; l1's does not
        suffix = f"{suffix}-{cfg.prune.target_gflops:g}"
    run_cfg = dataclasses.replace(cfg, name=f"{cfg.name}-{suffix}",
                                  sparsity=dataclasses.replace(cfg.sparsity, **changes))
    sparse = stages.output_of(run_cfg, "sparsity")
    if not sparse.exists():
        stages.sparsity(run_cfg, baseline, exist_ok=True)
    pruned, plan, _ = pruning.prune(run_cfg, sparse, exist_ok=True)
    args = ultralytics_args(run_cfg, "sparsity")
    if run_cfg.sparsity.method == "targeted" and run_cfg.sparsity.inherit_optimizer:
        args = {**args, **ultra.inherited_optimizer(baseline)}
    return {"arm": arm, "optimizer": f"{args['optimizer']}, {args['lr0']:g}",
            "sparse_mAP50_95": _map(cfg, sparse, folder), "pruned_mAP50_95": _map(cfg, pruned, folder),
            "gflops_fraction": plan.gflops_fraction, "removed_zero": _removed_zero(sparse, cfg),
            "train_s": _seconds(sparse.parent.parent)}


def _dense(cfg: Config, baseline: Path, folder: Path) -> dict:
    """The baseline trained for the same epochs with the targeted arm's optimizer and no sparsity: the control."""
    LOG.info("\n===== dense control =====")
    args = {**ultralytics_args(cfg, "sparsity"), **ultra.inherited_optimizer(baseline),
            "data": stages.resolve_data(cfg), "project": str(folder.resolve()), "name": "dense"}
    last = folder / "dense" / "weights" / "last.pt"
    if not last.exists():
        ultra.train(baseline, args, keep_architecture=True)
    return {"arm": "dense control (the same epochs, no sparsity)", "optimizer": f"{args['optimizer']}, {args['lr0']:g}",
            "sparse_mAP50_95": _map(cfg, last, folder), "train_s": _seconds(last.parent.parent)}


def _seconds(run: Path) -> int:
    return round(float((run / "results.csv").read_text().splitlines()[-1].split(",")[1]))  # the "time" column


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
    return ultra.validate(weights, val)["mAP50_95"]
