"""Section convergence: has the baseline stopped learning? And the dense control every pruned model is compared with."""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

from benchmarks.sections.cached import finetuned
from benchmarks.sections.common import MAP_COLUMNS, figure, save, skipped, target, val
from slim import stages
from slim.config import Config
from slim.report import markdown_table

CONVERGED_GAIN = 0.005  # a baseline has converged when its last 10% of epochs add less than this mAP50-95


def run(cfg: Config, folder: Path, exist_ok: bool, done: dict) -> dict:
    """Has the baseline stopped learning (its last 10% of epochs add < CONVERGED_GAIN mAP50-95 to its best)? And
    the dense control: the baseline trained on, unpruned, for the sparsity + finetune epochs, with the finetune
    settings."""
    results = cfg.stage_dir("train") / "results.csv"
    if not results.exists():
        return skipped(f"no baseline training log at {results}: run `make pipeline` first")
    curve = _map_curve(results)
    tail, gain = tail_gain(curve)
    epochs = cfg.sparsity.args.get("epochs", 0) + cfg.finetune.args.get("epochs", 0)
    control = {"epochs": epochs, **val(cfg, dense_control(cfg, epochs, None, exist_ok), folder, "dense-control")}
    baseline = val(cfg, stages.output_of(cfg, "train"), folder, "baseline")
    what = (f"the last {tail} of {len(curve)} epochs add < {CONVERGED_GAIN} mAP50-95 to the best epoch before them "
            f"(added {gain:+.4f})")
    return {"curve": curve, "tail_epochs": tail, "tail_gain": gain, "baseline": baseline, "control": control,
            "plot": str(_plot_curve(curve, tail, folder / "baseline_curve.png")),
            "target": target(what, gain < CONVERGED_GAIN)}


def dense_control(cfg: Config, epochs: int, seed: int | None, exist_ok: bool) -> Path:
    """The baseline finetuned `epochs` more, unpruned, with the finetune settings (and `seed`, when given)."""
    finetune = dataclasses.replace(cfg.finetune, args={**cfg.finetune.args, "epochs": epochs})
    name = f"{cfg.name}-bench-dense" + (f"-s{seed}" if seed is not None else "")
    dcfg = dataclasses.replace(cfg, name=name, finetune=finetune, seed=cfg.seed if seed is None else seed)
    return finetuned(dcfg, stages.output_of(cfg, "train"), exist_ok)


def tail_gain(curve: list) -> tuple[int, float]:
    """(the last 10% of the epochs, at least one; what they add to the best mAP50-95 before them).

    Against the best so far, not the epoch just before the tail: best.pt is the baseline, and one epoch's dip or
    spike on a small val set would otherwise decide it.
    """
    tail = max(1, round(0.1 * len(curve)))
    before = curve[:-tail]
    return tail, max(curve[-tail:]) - max(before) if before else float("inf")  # one epoch: nothing to judge


def _map_curve(results_csv: Path) -> list[float]:
    """mAP50-95 after each epoch, from an ultralytics results.csv (column names padded in older releases)."""
    with open(results_csv, newline="") as f:
        rows = [{k.strip(): v for k, v in row.items()} for row in csv.DictReader(f)]
    return [float(row["metrics/mAP50-95(B)"]) for row in rows]


def _plot_curve(curve: list, tail: int, out: Path) -> Path:
    fig = figure()
    ax = fig.add_subplot()
    epochs = range(1, len(curve) + 1)
    ax.plot(epochs, curve, "-", color="C0", label="baseline, val mAP50-95 per epoch")
    ax.axvspan(len(curve) - tail + 0.5, len(curve) + 0.5, color="grey", alpha=0.15, label=f"last {tail} epochs")
    ax.set(xlabel="epoch", ylabel="mAP50-95 (val)", title="Baseline training: has it converged?")
    ax.legend(frameon=False, fontsize=8)
    return save(fig, out)


def render(s: dict) -> str:
    rows = [{"model": "baseline (converged?)", **s["baseline"], "epochs": len(s["curve"])},
            {"model": "dense control: baseline + sparsity + finetune epochs, unpruned", **s["control"]}]
    cols = [("model", "model", ""), ("epochs", "epochs", "d"), *MAP_COLUMNS]
    return (f"Baseline mAP50-95 over its last {s['tail_epochs']} epochs: {s['tail_gain']:+.4f}. The dense control "
            f"starts from the baseline and trains {s['control']['epochs']} more epochs with the finetune settings: "
            "the model every pruned + finetuned one is compared with.\n\n" + markdown_table(rows, cols))
