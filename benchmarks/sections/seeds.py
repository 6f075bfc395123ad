"""Section seeds: the dense control and the recovery points trained again with other seeds: how much is chance."""

from __future__ import annotations

import dataclasses
import statistics
from pathlib import Path

from benchmarks.sections.cached import finetuned
from benchmarks.sections.common import skipped, val
from benchmarks.sections.convergence import dense_control
from benchmarks.sections.recovery import RECOVERY_TARGETS, aim, recovered, recovery_targets
from slim.config import Config
from slim.report import markdown_table

NOISE_SEEDS = (1, 2)  # the seeds section trains the controls and recovery points again with these seeds


def run(cfg: Config, folder: Path, exist_ok: bool, done: dict) -> dict:
    """The dense control and each recovery point trained again with NOISE_SEEDS (same start models and data, only
    the training seed differs): how far a percentage of the control moves by chance, and the targets judged on
    the means over every seed."""
    points, control = recovered(done), done.get("convergence", {}).get("control")
    if not points or control is None:
        return skipped("no recovery rows or dense control: run the convergence and recovery sections first")
    maps = {"dense control": [control["mAP50_95"]], **{r["model"]: [r["mAP50_95"]] for r in points}}
    for seed in NOISE_SEEDS:
        scfg = dataclasses.replace(cfg, seed=seed)
        dense = dense_control(cfg, control["epochs"], seed, exist_ok)
        maps["dense control"].append(val(cfg, dense, folder, f"dense-s{seed}")["mAP50_95"])
        for r in points:
            tag = r["model"].split()[0]
            pruned = folder.parent / "recovery" / f"{tag}.pt"  # the recovery section's pruned model
            tuned = finetuned(dataclasses.replace(scfg, name=f"{cfg.name}-bench-{tag}-s{seed}"), pruned, exist_ok)
            maps[r["model"]].append(val(cfg, tuned, folder, f"{tag}-s{seed}")["mAP50_95"])
    dense = maps["dense control"]
    rows = [{"model": name, "seeds": ", ".join(f"{m:.3f}" for m in ms), "mean": statistics.mean(ms),
             "spread": max(ms) - min(ms), "vs_dense": statistics.mean(ms) / statistics.mean(dense),
             "paired": ", ".join(f"{m / d:.1%}" for m, d in zip(ms, dense))} for name, ms in maps.items()]
    at = {f: {"gflops_fraction": r["gflops_fraction"], "mAP_vs_dense": m["vs_dense"]}
          for f in RECOVERY_TARGETS for r, m in zip(points, rows[1:]) if r["model"].endswith(aim(f))}
    targets = [{**t, "what": f"means over seeds {[cfg.seed, *NOISE_SEEDS]}: {t['what']}"} for t in recovery_targets(at)]
    return {"seeds": [cfg.seed, *NOISE_SEEDS], "rows": rows, "targets": targets}


def render(s: dict) -> str:
    cols = [("model", "model", ""), ("seeds", f"mAP50-95, seeds {s['seeds']}", ""), ("mean", "mean", ".3f"),
            ("spread", "max - min", ".3f"), ("vs_dense", "mean vs dense control's mean", ".1%"),
            ("paired", "vs dense control, seed by seed", "")]
    return ("The dense control and every recovery point trained again from the same start models with other "
            "training seeds (the data and the pruned models stay the same).\n\n" + markdown_table(s["rows"], cols))
