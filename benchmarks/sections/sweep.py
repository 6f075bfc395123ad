"""Section sweep: the pipeline's sparse model pruned at ratios 0.3 to 0.98: sizes, latency and mAP before finetuning."""

from __future__ import annotations

from pathlib import Path

import torch

from benchmarks.sections.common import (LATENCY, MAP_COLUMNS, SIZE_COLUMNS, deploy_, figure, prune_at, save, tagged,
                                        val)
from slim import stages, ultra
from slim.config import Config
from slim.plan import PruningPlan
from slim.report import markdown_table
from slim.surgery import silence_

SWEEP_RATIOS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.98)
NOFOLD_RATIOS = (0.5, 0.8)  # each also pruned with fold_beta off, to measure what the fold is worth
KNEE_DROP = 0.01  # the knee: the largest ratio whose mAP50-95 right after pruning is within this of the sparse model's


def run(cfg: Config, folder: Path, exist_ok: bool, done: dict) -> dict:
    """The pipeline's sparse model pruned at SWEEP_RATIOS (and at NOFOLD_RATIOS with fold_beta off): sizes, latency
    and mAP right after pruning, before any finetuning; and the knee, the largest ratio that costs at most KNEE_DROP."""
    source = stages.output_of(cfg, "sparsity")
    weights = {"unpruned": source}
    rows = {"unpruned": {"ratio": 0.0, **ultra.model_size(ultra.load_model(source)[0], cfg.imgsz)}}
    for ratio in SWEEP_RATIOS:
        tag = f"r{round(ratio * 100)}"
        weights[tag], rows[tag] = prune_at(cfg, source, folder / f"{tag}.pt", ratio)
    for ratio in NOFOLD_RATIOS:
        tag = f"r{round(ratio * 100)}-nofold"
        weights[tag], rows[tag] = prune_at(cfg, source, folder / f"{tag}.pt", ratio, fold_beta=False)
    threads = deploy_(cfg, weights, rows, folder, LATENCY["small"])
    for tag, path in weights.items():
        rows[tag].update(val(cfg, path, folder, tag))
    fold = {f"r{round(r * 100)}": rows[f"r{round(r * 100)}"]["mAP50_95"] - rows[f"r{round(r * 100)}-nofold"]["mAP50_95"]
            for r in NOFOLD_RATIOS}
    fidelity = {tag: _distance_to_silenced(source, weights[tag], cfg.imgsz, keep_beta=tag.endswith("r50"))
                for tag in ("r50", "r50-nofold")}
    return {"source": str(source), "imgsz": cfg.imgsz, "threads": threads, "runs": LATENCY["small"][0],
            "rows": tagged(rows), "fold_beta_gain_mAP50_95": fold, "knee": _knee(rows), "fidelity": fidelity,
            "plot": str(_plot_sweep(rows, cfg.imgsz, folder / "ratio_sweep.png"))}


@torch.no_grad()
def _distance_to_silenced(source: Path, pruned: Path, imgsz: int, keep_beta: bool) -> float:
    """Largest output difference between a pruned checkpoint and its source with the removed channels silenced
    (gamma = 0, and beta = 0 unless keep_beta), relative to the largest output; on uniform noise images."""
    plan = PruningPlan.from_dict(ultra.load_model(pruned)[1]["slim"]["plan"])
    silenced = silence_(ultra.load_model(source)[0], plan, keep_beta=keep_beta)
    x = torch.rand(2, 3, imgsz, imgsz, generator=torch.Generator().manual_seed(0))
    want, got = silenced(x)[0], ultra.load_model(pruned)[0](x)[0]  # eval-mode detection output, (B, 4 + nc, A)
    return float((got - want).abs().max() / want.abs().max())


def _knee(rows: dict) -> dict:
    """The last ratio, going up, before mAP50-95 right after pruning first falls more than KNEE_DROP below the
    unpruned model's: its ratio, GFLOPs and GFLOPs fraction."""
    full = rows["unpruned"]
    knee = full
    for row in (r for r in rows.values() if r["ratio"] and r.get("fold_beta", True)):
        if row["mAP50_95"] < full["mAP50_95"] - KNEE_DROP:
            break
        knee = row
    return {"ratio": knee["ratio"], "gflops": knee["gflops"], "gflops_fraction": knee["gflops"] / full["gflops"],
            "mAP50_95": knee["mAP50_95"], "unpruned_mAP50_95": full["mAP50_95"], "drop": KNEE_DROP}


def _plot_sweep(rows: dict, imgsz: int, out: Path) -> Path:
    """mAP50-95 right after pruning against GFLOPs, one point per ratio; the fold_beta-off model as a cross."""
    fig = figure()
    ax = fig.add_subplot()
    folded = [row for row in rows.values() if row.get("fold_beta", True)]
    ax.plot([r["gflops"] for r in folded], [r["mAP50_95"] for r in folded], "o-", label="pruned, not finetuned")
    for r in folded:
        ax.annotate(f"{r['ratio']:.0%}", (r["gflops"], r["mAP50_95"]), xytext=(4, 4), textcoords="offset points",
                    fontsize=7)
    unfolded = [row for row in rows.values() if not row.get("fold_beta", True)]
    ax.plot([r["gflops"] for r in unfolded], [r["mAP50_95"] for r in unfolded], "x", color="C3", markersize=8,
            label="fold_beta off")
    ax.set(xlabel=f"GFLOPs at {imgsz} px", ylabel="mAP50-95 (val)", title="Prune ratio sweep (0% = unpruned)")
    ax.legend(frameon=False)
    return save(fig, out)


def render(s: dict) -> str:
    cols = SIZE_COLUMNS[:1] + [("removed", "channels removed", ".1%")] + SIZE_COLUMNS[1:6] + SIZE_COLUMNS[-1:]
    k = s["knee"]
    fold = ", ".join(f"{tag} {gain:+.3f}" for tag, gain in s["fold_beta_gain_mAP50_95"].items())
    return (f"{s['imgsz']} px, latency: ONNX Runtime CPU, batch 1, {s['threads']} thread(s) (and 1 thread), median "
            f"of {s['runs']} runs, interleaved; mAP right after pruning, no finetuning. The knee (the largest ratio "
            f"within {k['drop']:g} mAP50-95 of the unpruned model): ratio {k['ratio']:g}, {k['gflops']:.3f} GFLOPs "
            f"= {k['gflops_fraction']:.1%} of the unpruned model's, mAP50-95 {k['mAP50_95']:.3f} vs "
            f"{k['unpruned_mAP50_95']:.3f}. fold_beta buys (mAP50-95, fold on minus off): {fold}. Largest output "
            f"difference, relative to the output's largest value: r50 vs the sparse model with the removed channels' "
            f"gamma zeroed, {s['fidelity']['r50']:.1e}; r50-nofold vs gamma and beta zeroed, "
            f"{s['fidelity']['r50-nofold']:.1e}.\n\n"
            + markdown_table(s["rows"], cols + MAP_COLUMNS))
