"""Section recovery: the sparse model pruned to 40% and 25% of its GFLOPs and finetuned, against the dense control."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from benchmarks.sections.cached import finetuned
from benchmarks.sections.common import MAP_COLUMNS, prune_at, tagged, target, val
from slim import stages, ultra
from slim.config import Config
from slim.groups import analyze
from slim.plan import build_plan
from slim.report import markdown_table
from slim.surgery import prune_model

# GFLOPs fraction of the unpruned model -> the finetuned mAP50-95 it should keep, as a fraction of the equal-epoch
# dense control's (the issue-16 targets); recovery finetunes the ratios that reach each fraction
RECOVERY_TARGETS = {0.40: 0.99, 0.25: 0.97}
UNPRUNED, CONTROL = "sparse (unpruned)", "sparse + finetune (unpruned)"


def run(cfg: Config, folder: Path, exist_ok: bool, done: dict) -> dict:
    """Finetune the sparse model pruned at the ratios that reach each of RECOVERY_TARGETS' GFLOPs fractions, with
    the config's finetune budget; beside the unpruned sparse model finetuned with the same budget (what the epochs
    alone buy) and, when the convergence section ran first, the equal-epoch dense control the targets refer to."""
    source = stages.output_of(cfg, "sparsity")
    sizes = ultra.model_size(ultra.load_model(source)[0], cfg.imgsz)
    rows = {UNPRUNED: {"ratio": 0.0, **sizes, **val(cfg, source, folder, "sparse")}}
    control = finetuned(dataclasses.replace(cfg, name=f"{cfg.name}-bench-r0"), source, exist_ok)
    rows[CONTROL] = {"ratio": 0.0, **sizes, **val(cfg, control, folder, "r0-ft")}
    aims = {}
    for fraction in RECOVERY_TARGETS:
        ratio = ratio_for_gflops(cfg, source, fraction)
        tag = f"r{round(ratio * 100)}"
        pruned, row = prune_at(cfg, source, folder / f"{tag}.pt", ratio)
        tuned = finetuned(dataclasses.replace(cfg, name=f"{cfg.name}-bench-{tag}"), pruned, exist_ok)
        aims[fraction] = f"{tag} {aim(fraction)}"
        rows[aims[fraction]] = {**row, "pruned_mAP50_95": val(cfg, pruned, folder, tag)["mAP50_95"],
                                **val(cfg, tuned, folder, f"{tag}-ft"), "finetuned": str(tuned)}
    dense = done.get("convergence", {}).get("control")  # when measured first
    for row in rows.values():
        row["gflops_fraction"] = row["gflops"] / sizes["gflops"]
        row["mAP_fraction"] = row["mAP50_95"] / rows[UNPRUNED]["mAP50_95"]
        row["mAP_vs_control"] = row["mAP50_95"] / rows[CONTROL]["mAP50_95"]
        row["mAP_vs_dense"] = row["mAP50_95"] / dense["mAP50_95"] if dense else None
    return {"source": str(source), "epochs": cfg.finetune.args.get("epochs"), "dense_control": dense,
            "rows": tagged(rows), "targets": recovery_targets({f: rows[tag] for f, tag in aims.items()})}


def aim(fraction: float) -> str:
    """How a recovery row's name says which GFLOPs fraction it was pruned to."""
    return f"(<= {fraction:.0%} GFLOPs)"


def recovered(done: dict) -> list[dict]:
    """The recovery section's pruned + finetuned rows from the finished sections' results (none when it has not run)."""
    return [r for r in done.get("recovery", {}).get("rows", []) if r["ratio"] > 0]


def recovery_targets(at: dict) -> list[dict]:
    """One target per RECOVERY_TARGETS entry, judged on `at`[GFLOPs fraction] = the recovery row pruned to it;
    missed, and saying why, when there was no dense control to compare with (mAP_vs_dense None)."""
    targets = []
    for fraction, keep in RECOVERY_TARGETS.items():
        row = at[fraction]
        what = (f"at {row['gflops_fraction']:.1%} (<= {fraction:.0%}) of the GFLOPs, finetuned mAP50-95 >= {keep:.0%} "
                f"of the equal-epoch dense control's")
        if row["mAP_vs_dense"] is None:
            targets.append(target(what + " (not measured: no dense control, run --only convergence first)", False))
        else:
            met = row["gflops_fraction"] <= fraction and row["mAP_vs_dense"] >= keep
            targets.append(target(f"{what} ({row['mAP_vs_dense']:.1%})", met))
    return targets


def ratio_for_gflops(cfg: Config, source: Path, fraction: float, steps: int = 7) -> float:
    """The smallest ratio (to 0.01, by bisection) whose pruned model has at most `fraction` of the GFLOPs; the
    largest ratio tried (0.99) when the floors and the tied channels never let it get there."""
    model, p = ultra.load_model(source)[0], cfg.prune
    graph, full = analyze(model), ultra.model_size(model, cfg.imgsz)["gflops"]
    low, high = 0.01, 0.99
    for _ in range(steps):
        mid = round((low + high) / 2, 2)
        plan = build_plan(model, graph, mid, None, p.min_channels, p.min_fraction, p.round_to)
        if ultra.model_size(prune_model(model, plan, p.fold_beta), cfg.imgsz)["gflops"] <= fraction * full:
            high = mid
        else:
            low = mid
    return high


def render(s: dict) -> str:
    cols = [("model", "model", ""), ("gflops", "GFLOPs", ".2f"), ("gflops_fraction", "GFLOPs fraction", ".1%"),
            ("pruned_mAP50_95", "mAP50-95 pruned", ".3f"), *MAP_COLUMNS, ("mAP_fraction", "mAP50-95 vs sparse", ".1%"),
            ("mAP_vs_control", "vs sparse + finetune", ".1%"),
            ("mAP_vs_dense", "vs dense control (baseline + equal epochs)", ".1%")]
    intro = f"finetune: {s['epochs']} epochs per ratio (the config's finetune section)"
    return intro + "\n\n" + markdown_table(s["rows"], cols)
