"""Targeted vs l1 on one plot: finetuned mAP50-95 against the GFLOPs kept, every seed, with the controls.

    python -m benchmarks.plot_targeted --names converged converged-s1 converged-s2 --budgets 0.4 0.25 0.15 \
        --dense-epochs 18 --out assets/converged_targeted.png

Reads what run_targeted, targeted_finetuned.sh, targeted_controls.sh and run_greg left in runs/ (one name per seed,
the first is seed 0; an arm not run for a seed is left out of its mean, and n says how many seeds it has) and prints
the markdown table BENCHMARKS.md quotes. Nothing is trained here.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from benchmarks.sections.common import figure, save

ARMS = {  # label -> (run folder suffix, marker, colour); {b} is the budget
    "l1": ("l1-ft-{b}", "o", "C0"),
    "targeted": ("targeted-{b}", "s", "C3"),
    "no sparsity (pruned from the baseline)": ("nosparse-{b}", "v", "C7"),
    "targeted, lr0 x lrf": ("gentle-{b}", "D", "C4"),
    "pruned architecture, random init": ("scratch-{b}", "x", "C5"),
}
UNJOINED = {"pruned architecture, random init"}  # the baseline's whole recipe, not the arms' epochs: points only
GREG = "Torch-Pruning GReg"
SEEDED = ("l1", "targeted")  # the arms run_targeted measures right after the cut too


def _json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.exists() else None


def _point(runs: Path, run: str) -> dict | None:
    """The finetuned mAP50-95 and the GFLOPs fraction its prune reached (the planner's, else the rounded sizes)."""
    val = _json(runs / run / "val" / "finetuned.json")
    plan = _json(runs / run / "prune" / "pruned.plan.json")
    if not val or not plan:
        return None
    sizes = plan["sizes"]
    fraction = plan.get("plan", {}).get("gflops_fraction") or sizes["after"]["gflops"] / sizes["before"]["gflops"]
    return {"mAP50_95": val["mAP50_95"], "gflops": fraction}


def _before_finetune(runs: Path, name: str, budget: str) -> dict:
    """arm -> pruned mAP50-95 right after the cut, from run_targeted's results."""
    result = _json(runs / name / "bench_targeted" / f"results-{budget}.json") or {"rows": []}
    return {row["arm"]: row["pruned_mAP50_95"] for row in result["rows"] if "pruned_mAP50_95" in row}


def _greg(runs: Path, name: str, budget: str) -> dict | None:
    """Torch-Pruning's growing regularization (benchmarks.run_greg), when it was run for this name and budget."""
    result = _json(runs / f"{name}-greg-{budget}" / "bench_greg" / "results.json")
    if not result:
        return None
    return {"mAP50_95": result["finetuned_mAP50_95"], "gflops": result["gflops_fraction"]}


def collect(runs: Path, names: list[str], budgets: list[str], dense_epochs: int) -> dict:
    dense = [_json(runs / f"{n}-dense-{dense_epochs}" / "val" / "dense.json") for n in names]
    baseline = [r["sparse_mAP50_95"] for n in names for b in budgets[:1]
                for r in (_json(runs / n / "bench_targeted" / f"results-{b}.json") or {"rows": []})["rows"]
                if r["arm"].startswith("baseline")]
    points = {}
    for arm, (suffix, _, _) in ARMS.items():
        for b in budgets:
            points[arm, b] = [p for n in names if (p := _point(runs, f"{n}-{suffix.format(b=b)}"))]
    for b in budgets:
        points[GREG, b] = [p for n in names if (p := _greg(runs, n, b))]
    before = {(arm, b): [v for n in names if (v := _before_finetune(runs, n, b).get(arm)) is not None]
              for arm in SEEDED for b in budgets}
    return {"dense": [d["mAP50_95"] for d in dense if d], "baseline": baseline[:1], "points": points,
            "before": before, "names": names, "budgets": budgets, "dense_epochs": dense_epochs}


def table(data: dict) -> str:
    control = statistics.mean(data["dense"])
    head = "| arm (finetuned; seeds) | " + " | ".join(f"<= {float(b):.0%} of the GFLOPs" for b in data["budgets"])
    lines = [head + " |", "|---|" + "---:|" * len(data["budgets"])]
    for arm in [*ARMS, GREG]:
        cells = []
        for b in data["budgets"]:
            ps = data["points"].get((arm, b), [])
            maps = [p["mAP50_95"] for p in ps]
            cells.append(f"{statistics.mean(maps):.3f} ({statistics.mean(maps) / control:.1%}; n={len(maps)})"
                         if maps else "-")
        lines.append(f"| {arm} | " + " | ".join(cells) + " |")
    lines.append(f"\ndense control ({data['dense_epochs']} epochs): mean {control:.3f} over {len(data['dense'])} seed(s)")
    return "\n".join(lines)


def plot(data: dict, out: Path, title: str) -> Path:
    fig = figure()
    ax = fig.add_subplot()
    for arm, (_, marker, colour) in ARMS.items():
        _series(ax, data, arm, marker, colour, arm)
    _series(ax, data, GREG, "^", "C1", GREG)
    for arm in SEEDED:
        marker, colour = ARMS[arm][1:]
        xs = [float(b) for b in data["budgets"] for _ in data["before"][arm, b]]
        ys = [v for b in data["budgets"] for v in data["before"][arm, b]]
        ax.scatter(xs, ys, marker=marker, facecolors="none", edgecolors=colour, alpha=0.6, s=22,
                   label=f"{arm}, right after the cut")
    if data["dense"]:
        lo, hi = min(data["dense"]), max(data["dense"])
        ax.axhspan(lo, hi, color="C2", alpha=0.25, label=f"dense control, {data['dense_epochs']} epochs (seed range)")
    if data["baseline"]:
        ax.axhline(data["baseline"][0], color="grey", linestyle=":", label="baseline")
    ax.set(xlabel="fraction of the model's GFLOPs kept", ylabel="mAP50-95 (val)", title=title,
           ylim=(max(0.0, min(_all_maps(data)) - 0.05), None))
    ax.legend(frameon=False, fontsize=6, loc="lower right")
    return save(fig, out)


def _series(ax, data: dict, arm: str, marker: str, colour: str, label: str) -> None:
    pts = [(b, p) for b in data["budgets"] for p in data["points"].get((arm, b), [])]
    if not pts:
        return
    ax.scatter([p["gflops"] for _, p in pts], [p["mAP50_95"] for _, p in pts], marker=marker, color=colour, s=18,
               alpha=0.6)
    means = [(statistics.mean(p["gflops"] for c, p in pts if c == b), statistics.mean(p["mAP50_95"] for c, p in pts
             if c == b)) for b in data["budgets"] if any(c == b for c, _ in pts)]
    style = "none" if arm in UNJOINED else "-"
    suffix = ", baseline's recipe" if arm in UNJOINED else ", finetuned"
    ax.plot(*zip(*means), linestyle=style, marker=marker, color=colour, label=label + suffix)


def _all_maps(data: dict) -> list[float]:
    finetuned = [p["mAP50_95"] for ps in data["points"].values() for p in ps]
    return [v for v in finetuned + data["dense"] if v > 0.3] or [0.0]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--names", nargs="+", required=True, help="one experiment name per seed, seed 0 first")
    p.add_argument("--budgets", nargs="+", required=True, help="the target_gflops budgets, as run")
    p.add_argument("--dense-epochs", type=int, required=True, help="the dense control's epochs (sparsity + finetune)")
    p.add_argument("--runs", default="runs", help="the project folder (default: %(default)s)")
    p.add_argument("--out", required=True, help="the plot (.png)")
    args = p.parse_args()
    data = collect(Path(args.runs), args.names, args.budgets, args.dense_epochs)
    print(table(data))
    print(f"plot: {plot(data, Path(args.out), f'{args.names[0]}: targeted vs l1 sparsity, finetuned')}")


if __name__ == "__main__":
    main()
