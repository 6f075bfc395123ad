"""Section sizes640: a sparsity-trained yolov8s pruned at 3 ratios x 2 round_to: sizes and CPU latency at 640 px."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from benchmarks.sections import cached
from benchmarks.sections.common import (LATENCY, SIZE_COLUMNS, deploy_, figure, gamma_row, prune_at, save, tagged,
                                        target)
from slim import stages, ultra
from slim.config import Config, ultralytics_args
from slim.report import markdown_table

V8S_YAML = "yolov8s.yaml"
V8S_TRAIN_EPOCHS = 4  # then the config's sparsity epochs: about 10 minutes on 2 CPU cores with the demo config
SIZES_IMGSZ, SIZES_RATIOS, SIZES_ROUND_TO, SPEED_PER_FLOP_TARGET = 640, (0.3, 0.5, 0.7), (1, 8), 1.15


def run(cfg: Config, folder: Path, exist_ok: bool, done: dict) -> dict:
    """A sparsity-trained yolov8s pruned at SIZES_RATIOS x SIZES_ROUND_TO: params, GFLOPs, ONNX size and
    ONNX Runtime latency at 640 px, every model timed interleaved in one call."""
    trained, sparse, train_s = _sparse_v8s(cfg, folder, exist_ok)
    big = dataclasses.replace(cfg, imgsz=SIZES_IMGSZ)
    weights = {"baseline": sparse}
    rows = {"baseline": {"ratio": 0.0, **ultra.model_size(ultra.load_model(sparse)[0], SIZES_IMGSZ)}}
    for ratio in SIZES_RATIOS:
        for round_to in SIZES_ROUND_TO:
            tag = f"r{round(ratio * 100)}-x{round_to}"
            weights[tag], rows[tag] = prune_at(big, sparse, folder / f"{tag}.pt", ratio, round_to=round_to)
    threads = deploy_(big, weights, rows, folder, LATENCY["640"])
    worst = {k: max(r["latency_per_gflop"] for r in rows.values() if r.get("round_to") == k) for k in SIZES_ROUND_TO}
    shown = ", ".join(f"round_to {k}: {w:.2f}" for k, w in worst.items())
    return {"imgsz": SIZES_IMGSZ, "threads": threads, "runs": LATENCY["640"][0], "train_s": train_s,
            "epochs": {"train": V8S_TRAIN_EPOCHS, "sparsity": cfg.sparsity.args.get("epochs")},
            "gammas": {"trained": gamma_row(trained), "sparse": gamma_row(sparse)},
            "rows": tagged(rows), "plot": str(_plot_latency(rows, folder / "latency_vs_flops.png")),
            "target": target(f"latency ratio / GFLOPs ratio <= {SPEED_PER_FLOP_TARGET} for every pruned model "
                             f"(worst {shown})", max(worst.values()) <= SPEED_PER_FLOP_TARGET)}


def _sparse_v8s(cfg: Config, folder: Path, exist_ok: bool) -> tuple[Path, Path, float]:
    """yolov8s trained from its yaml on the config's data for V8S_TRAIN_EPOCHS, then sparsity-trained as the
    config's sparsity section says, through the pipeline's own ultra.train + SparsityCallback.

    Returns:
        (trained checkpoint, sparse checkpoint, seconds the two trainings took when they ran).
    """
    place = {"data": stages.resolve_data(cfg), "project": str(folder.resolve())}
    args = {**ultralytics_args(cfg, "train"), **place, "name": "v8s-train", "epochs": V8S_TRAIN_EPOCHS}
    trained, t1 = cached.train(V8S_YAML, args, None, exist_ok)
    args = {**ultralytics_args(cfg, "sparsity"), **place, "name": "v8s-sparsity"}
    sparse, t2 = cached.train(trained, args, (cfg.sparsity.sr, cfg.sparsity.schedule), exist_ok)
    return trained, sparse, t1 + t2


def _plot_latency(rows: dict, out: Path) -> Path:
    """Latency ratio against GFLOPs ratio (both pruned / baseline), per round_to; the ideal is the diagonal."""
    fig = figure()
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], color="grey", linewidth=0.8, label="latency proportional to GFLOPs")
    ax.plot([0, 1], [0, SPEED_PER_FLOP_TARGET], color="grey", linestyle="--", linewidth=0.8,
            label=f"target: {SPEED_PER_FLOP_TARGET}x that")
    for i, round_to in enumerate(SIZES_ROUND_TO):
        pts = [r for r in rows.values() if r.get("round_to") == round_to]
        ax.plot([r["gflops_ratio"] for r in pts], [r["latency_ratio"] for r in pts], "os"[i % 2], color=f"C{i}",
                label=f"round_to {round_to}")
        for r in pts:
            ax.annotate(f"{r['ratio']:.0%}", (r["gflops_ratio"], r["latency_ratio"]), xytext=(5, -10 + 14 * i),
                        textcoords="offset points", fontsize=7, color=f"C{i}")
    ax.set(xlabel="GFLOPs, pruned / unpruned", ylabel="ONNX Runtime latency, pruned / unpruned", xlim=(0, 1.05),
           ylim=(0, 1.3), title="yolov8s at 640 px, CPU, batch 1")
    ax.legend(frameon=False, fontsize=8)
    return save(fig, out)


def render(s: dict) -> str:
    cols = SIZE_COLUMNS[:1] + [("round_to", "round_to", "d"), ("removed", "channels removed", ".1%")] + SIZE_COLUMNS[1:]
    g = s["gammas"]
    return (f"{s['imgsz']} px, ONNX Runtime CPU, batch 1, {s['threads']} thread(s) (and again on 1 thread), median "
            f"of {s['runs']} runs, all models interleaved in each call. yolov8s trained {s['epochs']['train']} + "
            f"sparsity-trained "
            f"{s['epochs']['sparsity']} epochs ({s['train_s'] / 60:.0f} min); prunable gammas < 1e-2: "
            f"{g['trained']['gamma_small']:.1%} -> "
            f"{g['sparse']['gamma_small']:.1%}.\n\n" + markdown_table(s["rows"], cols))
