"""Section frontier: slim against Torch-Pruning at equal GFLOPs and finetune epochs, along the GFLOPs axis."""

from __future__ import annotations

import dataclasses
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from benchmarks.sections.cached import finetuned, made_from, make_once
from benchmarks.sections.common import MAP_COLUMNS, figure, prune_at, save, skipped, val
from benchmarks.sections.recovery import RECOVERY_TARGETS, recovered
from slim import stages, ultra
from slim.config import Config, ultralytics_args
from slim.errors import SlimError
from slim.report import markdown_table

FRONTIER_RATIOS = (0.3, 0.7, 0.95)  # the frontier's slim points beside the recovery ones: from 0.3 to past the fall
PARALLEL = 2  # trainings the frontier runs side by side (each on ultralytics' cpu_count - 1 threads: one here)


def run(cfg: Config, folder: Path, exist_ok: bool, done: dict) -> dict:
    """slim and Torch-Pruning finetuned along the GFLOPs axis: slim at the recovery points and at FRONTIER_RATIOS
    (pruned here, finetuned like the recovery points), Torch-Pruning at each of those GFLOPs from the same sparse
    model (one step of its network-slimming recipe: uniform per-layer ratio, Detect head ignored), same finetune
    settings and epochs. The trainings run PARALLEL at a time. Plots mAP50-95 against GFLOPs with the sweep (slim
    right after pruning) and the dense control and baseline as lines."""
    from benchmarks import bench_torch_pruning as tp

    points, source = recovered(done), stages.output_of(cfg, "sparsity")
    if not points:
        return skipped("no recovery rows: run the recovery section first")
    tp.require_torch_pruning()
    tcfg, dense = dataclasses.replace(cfg, name=f"{cfg.name}-bench-tp"), done["recovery"].get("dense_control")
    full, full_size = tp.gflops(ultra.load_model(source)[0]), ultra.model_size(ultra.load_model(source)[0], cfg.imgsz)
    slim_rows = {r["model"].split()[0]: {**r, "pruned": str(folder.parent / "recovery" / f"{r['model'].split()[0]}.pt")}
                 for r in points}
    for ratio in FRONTIER_RATIOS:
        tag = f"r{round(ratio * 100)}"
        if tag not in slim_rows:
            pruned, row = prune_at(cfg, source, folder / f"{tag}.pt", ratio)
            slim_rows[tag] = {**row, "model": tag, "pruned": str(pruned)}
    jobs = {}
    for tag, row in slim_rows.items():
        if "finetuned" not in row:
            jobs[tag] = (finetuned, dataclasses.replace(cfg, name=f"{cfg.name}-bench-{tag}"), Path(row["pruned"]),
                         exist_ok)
        goal = tp.gflops(ultra.load_model(Path(row["pruned"]))[0]) / full  # slim's, read the same way
        jobs[f"tp-{tag}"] = (_tp_point, tcfg, source, goal, f"tp-{tag}", exist_ok)
    stages.resolve_data(cfg)  # generated here if missing, not by two workers at once
    trained = _side_by_side(jobs)
    for tag, row in slim_rows.items():
        if "finetuned" not in row:
            row.update(val(cfg, trained[tag], folder, f"{tag}-ft"), finetuned=str(trained[tag]))
            row["gflops_fraction"] = row["gflops"] / full_size["gflops"]
            row["mAP_vs_dense"] = row["mAP50_95"] / dense["mAP50_95"] if dense else None
    tp_rows = []
    for tag, row in slim_rows.items():
        best, tp_tag = trained[f"tp-{tag}"], f"tp-{tag}"
        if isinstance(best, str):  # e.g. the ignored Detect head alone exceeds the target
            tp_rows.append({"model": tp_tag, "slim_model": row["model"], "unreachable": best})
            continue
        model = ultra.load_model(best)[0]
        tp_row = {"model": tp_tag, "slim_model": row["model"], **ultra.model_size(model, cfg.imgsz),
                  **val(cfg, best, folder, tp_tag), "slim_mAP50_95": row["mAP50_95"], "finetuned": str(best)}
        tp_row["gflops_fraction"] = tp.gflops(model) / full
        tp_row["mAP_vs_dense"] = tp_row["mAP50_95"] / dense["mAP50_95"] if dense else None
        tp_rows.append(tp_row)
    slim_list = sorted(slim_rows.values(), key=lambda r: -r["gflops"])
    plot = _plot_frontier(cfg, done, slim_list, tp_rows, folder / "map_vs_gflops.png")
    return {"source": str(source), "epochs": cfg.finetune.args.get("epochs"), "parallel": PARALLEL,
            "slim_rows": slim_list, "rows": tp_rows, "plot": str(plot)}


def _side_by_side(jobs: dict) -> dict:
    """Run each job (a function and its arguments) in its own process, PARALLEL at a time; {name: its result}.

    Trainings only: ultralytics trains on cpu_count - 1 threads (one on 2 cores), so two side by side take
    little longer than one; a spawned process starts clean of this one's ultralytics and torch state.
    """
    if PARALLEL == 1:
        return {name: fn(*args) for name, (fn, *args) in jobs.items()}
    with ProcessPoolExecutor(PARALLEL, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {name: pool.submit(fn, *args) for name, (fn, *args) in jobs.items()}
        return {name: future.result() for name, future in futures.items()}


def _tp_point(tcfg: Config, source: Path, goal: float, tag: str, exist_ok: bool) -> Path | str:
    """_tp_finetuned, or the reason Torch-Pruning cannot reach `goal` (returned: an error in a worker process
    would end the whole section)."""
    try:
        return _tp_finetuned(tcfg, source, goal, tag, exist_ok)
    except SlimError as e:
        return str(e)


def _tp_finetuned(tcfg: Config, source: Path, goal: float, tag: str, exist_ok: bool) -> Path:
    """Torch-Pruning's one-step prune of `source` to `goal` of its GFLOPs, finetuned with tcfg's finetune
    settings; reused when the last run here had the same start, goal and settings."""
    from benchmarks import bench_torch_pruning as tp

    settings = {"target": round(goal, 6), "args": ultralytics_args(tcfg, "finetune"), "data": stages.resolve_data(tcfg)}
    done = make_once(tcfg.stage_dir(tag), made_from(source, settings),
                  lambda: tp.run_tp(tcfg, source, goal, 1, tcfg.finetune.args["epochs"], tag, global_pruning=False)[0],
                  exist_ok)
    return Path(done["out"])


def _plot_frontier(cfg: Config, done: dict, slim_rows: list, tp_rows: list, out: Path) -> Path:
    """mAP50-95 against GFLOPs: slim pruned (the sweep), slim and Torch-Pruning finetuned, dense control line."""
    fig = figure()
    ax = fig.add_subplot()
    swept = [r for r in done.get("sweep", {}).get("rows", []) if r.get("fold_beta", True) and r["ratio"] > 0]
    if swept:
        ax.plot([r["gflops"] for r in swept], [r["mAP50_95"] for r in swept], ".-", color="C0", alpha=0.4,
                label="slim, pruned (no finetune)")
    ax.plot([r["gflops"] for r in slim_rows], [r["mAP50_95"] for r in slim_rows], "o-", color="C0", markersize=7,
            label="slim, finetuned")
    reached = sorted((r for r in tp_rows if "unreachable" not in r), key=lambda r: -r["gflops"])
    ax.plot([r["gflops"] for r in reached], [r["mAP50_95"] for r in reached], "s-", color="C1", markersize=6,
            label="Torch-Pruning, finetuned")
    dense = done.get("convergence", {}).get("control")
    if dense:
        ax.axhline(dense["mAP50_95"], color="C2", linestyle="--", label=f"dense control ({dense['epochs']} more epochs)")
    base = done.get("convergence", {}).get("baseline")
    if base:
        ax.axhline(base["mAP50_95"], color="grey", linestyle=":", label="baseline")
    full = next((r["gflops"] for r in done.get("sweep", {}).get("rows", []) if r["ratio"] == 0), None)
    for fraction in RECOVERY_TARGETS if full else ():
        ax.axvline(fraction * full, color="grey", linewidth=0.6)
        ax.annotate(f"{fraction:.0%}", (fraction * full, 0), xytext=(2, 2), textcoords="offset points", fontsize=7,
                    color="grey")
    ax.set(xlabel=f"GFLOPs at {cfg.imgsz} px", ylabel="mAP50-95 (val)", title=f"{cfg.name}: accuracy against compute")
    ax.legend(frameon=False, fontsize=7)
    return save(fig, out)


def render(s: dict) -> str:
    slim_cols = [("model", "slim", ""), ("gflops", "GFLOPs", ".2f"), ("gflops_fraction", "GFLOPs fraction", ".1%"),
                 *MAP_COLUMNS, ("mAP_vs_dense", "vs dense control", ".1%")]
    cols = [("model", "Torch-Pruning", ""), ("slim_model", "slim at the same GFLOPs", ""), ("gflops", "GFLOPs", ".2f"),
            ("gflops_fraction", "GFLOPs fraction", ".1%"), *MAP_COLUMNS, ("slim_mAP50_95", "slim mAP50-95", ".3f"),
            ("mAP_vs_dense", "vs dense control", ".1%")]
    reached = [r for r in s["rows"] if "unreachable" not in r]
    missed = "".join(f" {r['model']}: {r['unreachable']}." for r in s["rows"] if "unreachable" in r)
    slim = markdown_table(s["slim_rows"], slim_cols) + "\n\n" if "slim_rows" in s else ""  # older runs: TP only
    return (f"slim finetuned at the recovery points and at ratios {list(FRONTIER_RATIOS)}; Torch-Pruning from the "
            f"same sparse model, one prune step (BNScaleImportance, uniform per-layer ratio, Detect head ignored) to "
            f"each of slim's GFLOPs; both {s['epochs']} finetune epochs with the same settings, {s.get('parallel', 1)} "
            f"trainings side by side.{missed} Plot: {s['plot']}\n\n" + slim + markdown_table(reached, cols))
