"""`make bench`: the measured figures behind BENCHMARKS.md, one section at a time, on this machine.

Each section (SECTIONS) returns plain data; run() adds the command, date, machine and versions, merges it into
<project>/<name>/bench/bench.json (so `--only` updates one section and keeps the others) and rewrites BENCH.md.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import logging
import multiprocessing
import os
import platform
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime
from pathlib import Path

import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from torch import nn
from tqdm import tqdm

from slim import stages, ultra
from slim.config import Config, ultralytics_args
from slim.errors import SlimError
from slim.export import export_onnx
from slim.groups import analyze, prunable_bns
from slim.io import write_atomic, write_json, write_text
from slim.latency import compare_latency, torch_latency_ms
from slim.plan import PruningPlan, build_plan
from slim.report import markdown_table
from slim.sparsity import SMALL_GAMMA, add_bn_l1_grad_, gamma_stats
from slim.surgery import prune_model, silence_

LOG = logging.getLogger("slim")
SPEED_MODEL, SPEED_RATIO, SPEED_REPEATS, SPEED_TARGET_S = "yolov8s.yaml", 0.5, 5, 5.0
PRUNE_STEPS = ("analyze", "build_plan", "prune_model", "total")
V8S_YAML = "yolov8s.yaml"
V8S_TRAIN_EPOCHS = 4  # then the config's sparsity epochs: about 10 minutes on 2 CPU cores with the demo config
SIZES_IMGSZ, SIZES_RATIOS, SIZES_ROUND_TO, SPEED_PER_FLOP_TARGET = 640, (0.3, 0.5, 0.7), (1, 8), 1.15
SWEEP_RATIOS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.98)
NOFOLD_RATIOS = (0.5, 0.8)  # each also pruned with fold_beta off, to measure what the fold is worth
KNEE_DROP = 0.01  # the knee: the largest ratio whose mAP50-95 right after pruning is within this of the sparse model's
# GFLOPs fraction of the unpruned model -> the finetuned mAP50-95 it should keep, as a fraction of the equal-epoch
# dense control's (the issue-16 targets); recovery finetunes the ratios that reach each fraction
RECOVERY_TARGETS = {0.40: 0.99, 0.25: 0.97}
FRONTIER_RATIOS = (0.3, 0.7, 0.95)  # the frontier's slim points beside the recovery ones: from 0.3 to past the fall
PARALLEL = 2  # trainings the frontier runs side by side (each on ultralytics' cpu_count - 1 threads: one here)
NOISE_SEEDS = (1, 2)  # the seeds section trains the controls and recovery points again with these seeds
CONVERGED_GAIN = 0.005  # a baseline has converged when its last 10% of epochs add less than this mAP50-95
UNPRUNED, CONTROL = "sparse (unpruned)", "sparse + finetune (unpruned)"
OVERHEAD_REPEATS, OVERHEAD_EPOCHS, OVERHEAD_TARGET = 4, 2, 1.03  # 4: A/B, B/A, A/B, B/A
LATENCY = {"small": (100, 10), "640": (30, 5), "gpu": (200, 20)}  # (timed runs, warm-up runs) per model
GPU_ROUNDS = 10  # PyTorch GPU timing: the runs split into rounds, each timing every model; median of round medians
DPI = 110


def run(cfg: Config, command: str, only: list[str] | None = None, exist_ok: bool = False) -> Path:
    """Run the chosen sections (default: all) and write bench.json and BENCH.md; returns BENCH.md.

    Args:
        command: the command line that ran this, recorded with each section.
        exist_ok: redo the training runs a section caches (the yolov8s checkpoints, finetunes, overhead model).
    """
    folder = cfg.stage_dir("bench")
    results = _read_json(folder / "bench.json")
    for name in only or list(SECTIONS):
        LOG.info(f"\n===== bench: {name} =====")
        t0, machine = time.perf_counter(), describe_machine()
        figures = SECTIONS[name](cfg, folder / name, exist_ok)
        entry = {"command": command, "date": datetime.now().isoformat(timespec="seconds"), "machine": machine,
                 "wall_s": round(time.perf_counter() - t0, 1), **figures}
        # read again just before writing: another bench process may have finished a section meanwhile
        results = {**_read_json(folder / "bench.json"), name: entry}
        write_json(folder / "bench.json", results)
    text = render(results)
    return write_text(folder / "BENCH.md", text)


def describe_machine() -> dict:
    """CPU model, core counts, threads, 1-minute load average and library versions, for the record."""
    import onnxruntime
    import ultralytics

    cpu = next((line.split(":", 1)[1].strip() for line in _cpuinfo() if line.startswith("model name")),
               platform.processor() or "unknown")
    return {"cpu": cpu, "cores": os.cpu_count(), "usable_cores": len(os.sched_getaffinity(0)),
            "torch_threads": torch.get_num_threads(), "load_avg_1m": round(os.getloadavg()[0], 2),
            "python": platform.python_version(), "torch": torch.__version__,
            "ultralytics": ultralytics.__version__, "onnxruntime": onnxruntime.__version__}


def _cpuinfo() -> list[str]:
    path = Path("/proc/cpuinfo")
    return path.read_text().splitlines() if path.exists() else []


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


# --- 1. prune speed ----------------------------------------------------------------------------------------------
def prune_speed(cfg: Config, folder: Path, exist_ok: bool) -> dict:
    """Wall seconds for analyze + build_plan + prune_model on a random-gamma SPEED_MODEL, median of SPEED_REPEATS,
    with torch's thread count and with one thread, interleaved.

    One thread too because the steps are hundreds of small ops: with a thread per core each op waits for both,
    and while other jobs hold a core that wait is a scheduler turn per op. Measured: 0.2 s on the quiet machine,
    5.2 s beside two other jobs, both with 2 threads.
    """
    model, p, default = random_bn_model(SPEED_MODEL), cfg.prune, torch.get_num_threads()
    times = {n: {step: [] for step in PRUNE_STEPS} for n in (default, 1)}
    try:
        for _ in tqdm(range(SPEED_REPEATS), desc=f"prune {SPEED_MODEL} at {SPEED_RATIO}"):
            for threads, steps in times.items():
                torch.set_num_threads(threads)
                for step, seconds in _time_prune(model, p).items():
                    steps[step].append(seconds)
    finally:
        torch.set_num_threads(default)
    median = {str(n): {step: statistics.median(t) for step, t in steps.items()} for n, steps in times.items()}
    total = median[str(default)]["total"]
    return {"model": SPEED_MODEL, "ratio": SPEED_RATIO, "repeats": SPEED_REPEATS, "median_s": median,
            "total_s": {str(n): steps["total"] for n, steps in times.items()},
            "target": _target(f"median total < {SPEED_TARGET_S:g} s ({default} threads)", total < SPEED_TARGET_S)}


def _time_prune(model: nn.Module, p) -> dict:
    """Wall seconds of each step of one prune at SPEED_RATIO with the config's prune settings `p`."""
    t = [time.perf_counter()]
    graph = analyze(model)
    t.append(time.perf_counter())
    plan = build_plan(model, graph, SPEED_RATIO, None, p.min_channels, p.min_fraction, p.round_to)
    t.append(time.perf_counter())
    prune_model(model, plan, fold_beta=p.fold_beta)
    t.append(time.perf_counter())
    return dict(zip(PRUNE_STEPS, (t[1] - t[0], t[2] - t[1], t[3] - t[2], t[3] - t[0])))


def random_bn_model(yaml: str, seed: int = 0) -> nn.Module:
    """A model from `yaml` in eval mode with random BN gamma, beta and statistics (like tests/models.py):
    a fresh model has every gamma at 1, and a plan over all-equal gammas is not a realistic one."""
    from ultralytics import YOLO

    torch.manual_seed(seed)
    model = YOLO(yaml).model.float().eval()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.weight.data = torch.rand_like(m.weight) * 2 - 1
            m.bias.data = torch.randn_like(m.bias) * 0.5
            m.running_mean.data = torch.randn_like(m.running_mean) * 0.1
            m.running_var.data = torch.rand_like(m.running_var) + 0.5
    return model


# --- 2. yolov8s sizes and latency at 640 px ----------------------------------------------------------------------
def sizes640(cfg: Config, folder: Path, exist_ok: bool) -> dict:
    """A sparsity-trained yolov8s pruned at SIZES_RATIOS x SIZES_ROUND_TO: params, GFLOPs, ONNX size and
    ONNX Runtime latency at 640 px, every model timed interleaved in one call."""
    trained, sparse, train_s = _sparse_v8s(cfg, folder, exist_ok)
    big = dataclasses.replace(cfg, imgsz=SIZES_IMGSZ)
    weights = {"baseline": sparse}
    rows = {"baseline": {"ratio": 0.0, **ultra.model_size(ultra.load_model(sparse)[0], SIZES_IMGSZ)}}
    for ratio in SIZES_RATIOS:
        for round_to in SIZES_ROUND_TO:
            tag = f"r{round(ratio * 100)}-x{round_to}"
            weights[tag], rows[tag] = _prune(big, sparse, folder / f"{tag}.pt", ratio, round_to=round_to)
    threads = _deploy_(big, weights, rows, folder, LATENCY["640"])
    worst = {k: max(r["latency_per_gflop"] for r in rows.values() if r.get("round_to") == k) for k in SIZES_ROUND_TO}
    shown = ", ".join(f"round_to {k}: {w:.2f}" for k, w in worst.items())
    return {"imgsz": SIZES_IMGSZ, "threads": threads, "runs": LATENCY["640"][0], "train_s": train_s,
            "epochs": {"train": V8S_TRAIN_EPOCHS, "sparsity": cfg.sparsity.args.get("epochs")},
            "gammas": {"trained": _gamma_row(trained), "sparse": _gamma_row(sparse)},
            "rows": _tagged(rows), "plot": str(_plot_latency(rows, folder / "latency_vs_flops.png")),
            "target": _target(f"latency ratio / GFLOPs ratio <= {SPEED_PER_FLOP_TARGET} for every pruned model "
                              f"(worst {shown})", max(worst.values()) <= SPEED_PER_FLOP_TARGET)}


def _sparse_v8s(cfg: Config, folder: Path, exist_ok: bool) -> tuple[Path, Path, float]:
    """yolov8s trained from its yaml on the config's data for V8S_TRAIN_EPOCHS, then sparsity-trained as the
    config's sparsity section says, through the pipeline's own ultra.train + SparsityCallback.

    Returns:
        (trained checkpoint, sparse checkpoint, seconds the two trainings took when they ran).
    """
    place = {"data": stages.resolve_data(cfg), "project": str(folder.resolve())}
    args = {**ultralytics_args(cfg, "train"), **place, "name": "v8s-train", "epochs": V8S_TRAIN_EPOCHS}
    trained, t1 = _cached_train(V8S_YAML, args, None, exist_ok)
    args = {**ultralytics_args(cfg, "sparsity"), **place, "name": "v8s-sparsity"}
    sparse, t2 = _cached_train(trained, args, (cfg.sparsity.sr, cfg.sparsity.schedule), exist_ok)
    return trained, sparse, t1 + t2


def _cached_train(source, args: dict, sparsity: tuple | None, exist_ok: bool) -> tuple[Path, float]:
    """ultra.train, unless its run folder already holds a run with the same settings (bench-run.json there).

    Returns:
        (best.pt, or last.pt for a sparsity run: the sparsest; seconds the training took when it ran).
    """
    run = Path(args["project"]) / args["name"]
    out = run / "weights" / ("last.pt" if sparsity else "best.pt")
    settings = json.loads(json.dumps({"source": str(source), "args": args, "sparsity": sparsity}))  # as stored
    record = _read_json(run / "bench-run.json")
    if out.exists() and record.get("settings") == settings and not exist_ok:
        LOG.info(f"bench: reusing {out}, trained with the same settings (--exist-ok trains it again)")
        return out, record["seconds"]
    t0 = time.perf_counter()
    callback = ultra.SparsityCallback(*sparsity) if sparsity else None
    ultra.train(source, args, keep_architecture=sparsity is not None, sparsity=callback)
    record = {"settings": settings, "seconds": round(time.perf_counter() - t0)}
    write_json(run / "bench-run.json", record)
    return out, record["seconds"]


# --- 3. ratio sweep ------------------------------------------------------------------------------------------------
def sweep(cfg: Config, folder: Path, exist_ok: bool) -> dict:
    """The pipeline's sparse model pruned at SWEEP_RATIOS (and at NOFOLD_RATIOS with fold_beta off): sizes, latency
    and mAP right after pruning, before any finetuning; and the knee, the largest ratio that costs at most KNEE_DROP."""
    source = stages.output_of(cfg, "sparsity")
    if not source.exists():
        return _skipped(f"no sparse model at {source}: run `make pipeline` first")
    weights = {"unpruned": source}
    rows = {"unpruned": {"ratio": 0.0, **ultra.model_size(ultra.load_model(source)[0], cfg.imgsz)}}
    for ratio in SWEEP_RATIOS:
        tag = f"r{round(ratio * 100)}"
        weights[tag], rows[tag] = _prune(cfg, source, folder / f"{tag}.pt", ratio)
    for ratio in NOFOLD_RATIOS:
        tag = f"r{round(ratio * 100)}-nofold"
        weights[tag], rows[tag] = _prune(cfg, source, folder / f"{tag}.pt", ratio, fold_beta=False)
    threads = _deploy_(cfg, weights, rows, folder, LATENCY["small"])
    for tag, path in weights.items():
        rows[tag].update(_val(cfg, path, folder, tag))
    fold = {f"r{round(r * 100)}": rows[f"r{round(r * 100)}"]["mAP50_95"] - rows[f"r{round(r * 100)}-nofold"]["mAP50_95"]
            for r in NOFOLD_RATIOS}
    fidelity = {tag: _distance_to_silenced(source, weights[tag], cfg.imgsz, keep_beta=tag.endswith("r50"))
                for tag in ("r50", "r50-nofold")}
    return {"source": str(source), "imgsz": cfg.imgsz, "threads": threads, "runs": LATENCY["small"][0],
            "rows": _tagged(rows), "fold_beta_gain_mAP50_95": fold, "knee": _knee(rows), "fidelity": fidelity,
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


# --- 4. recovery by finetuning -------------------------------------------------------------------------------------
def recovery(cfg: Config, folder: Path, exist_ok: bool) -> dict:
    """Finetune the sparse model pruned at the ratios that reach each of RECOVERY_TARGETS' GFLOPs fractions, with
    the config's finetune budget; beside the unpruned sparse model finetuned with the same budget (what the epochs
    alone buy) and, when the convergence section ran first, the equal-epoch dense control the targets refer to."""
    source = stages.output_of(cfg, "sparsity")
    if not source.exists():
        return _skipped(f"no sparse model at {source}: run the train and sparsity stages first")
    sizes = ultra.model_size(ultra.load_model(source)[0], cfg.imgsz)
    rows = {UNPRUNED: {"ratio": 0.0, **sizes, **_val(cfg, source, folder, "sparse")}}
    control = _finetuned(dataclasses.replace(cfg, name=f"{cfg.name}-bench-r0"), source, exist_ok)
    rows[CONTROL] = {"ratio": 0.0, **sizes, **_val(cfg, control, folder, "r0-ft")}
    aims = {}
    for fraction in RECOVERY_TARGETS:
        ratio = _ratio_for_gflops(cfg, source, fraction)
        tag = f"r{round(ratio * 100)}"
        pruned, row = _prune(cfg, source, folder / f"{tag}.pt", ratio)
        finetuned = _finetuned(dataclasses.replace(cfg, name=f"{cfg.name}-bench-{tag}"), pruned, exist_ok)
        aims[fraction] = f"{tag} {_aim(fraction)}"
        rows[aims[fraction]] = {**row, "pruned_mAP50_95": _val(cfg, pruned, folder, tag)["mAP50_95"],
                                **_val(cfg, finetuned, folder, f"{tag}-ft"), "finetuned": str(finetuned)}
    dense = _read_json(folder.parent / "bench.json").get("convergence", {}).get("control")  # when measured first
    for row in rows.values():
        row["gflops_fraction"] = row["gflops"] / sizes["gflops"]
        row["mAP_fraction"] = row["mAP50_95"] / rows[UNPRUNED]["mAP50_95"]
        row["mAP_vs_control"] = row["mAP50_95"] / rows[CONTROL]["mAP50_95"]
        row["mAP_vs_dense"] = row["mAP50_95"] / dense["mAP50_95"] if dense else None
    return {"source": str(source), "epochs": cfg.finetune.args.get("epochs"), "dense_control": dense,
            "rows": _tagged(rows), "targets": recovery_targets({f: rows[tag] for f, tag in aims.items()})}


def _aim(fraction: float) -> str:
    """How a recovery row's name says which GFLOPs fraction it was pruned to."""
    return f"(<= {fraction:.0%} GFLOPs)"


def _recovered(done: dict) -> list[dict]:
    """The recovery section's pruned + finetuned rows from a bench.json's contents (none when it has not run)."""
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
            targets.append(_target(what + " (not measured: no dense control, run --only convergence first)", False))
        else:
            met = row["gflops_fraction"] <= fraction and row["mAP_vs_dense"] >= keep
            targets.append(_target(f"{what} ({row['mAP_vs_dense']:.1%})", met))
    return targets


def _ratio_for_gflops(cfg: Config, source: Path, fraction: float, steps: int = 7) -> float:
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


def _finetuned(rcfg: Config, weights: Path, exist_ok: bool) -> Path:
    """The finetune stage on `weights` under rcfg's name; reused when the last one here started from the same
    tensors (a digest, so a changed prune is finetuned again) with the same settings."""
    best = stages.output_of(rcfg, "finetune")
    settings = json.loads(json.dumps({"weights": _digest(weights), "args": ultralytics_args(rcfg, "finetune"),
                                      "data": stages.resolve_data(rcfg)}))
    record = rcfg.stage_dir("finetune") / "bench-run.json"
    if best.exists() and _read_json(record).get("settings") == settings and not exist_ok:
        LOG.info(f"recovery: reusing {best}, finetuned from the same model (--exist-ok finetunes again)")
        return best
    stages.finetune(rcfg, weights=weights, exist_ok=True)
    write_json(record, {"settings": settings})
    return best


def _digest(weights: Path) -> str:
    """A short hash of a checkpoint's model tensors (names and values), independent of the file's other fields."""
    h = hashlib.sha256()
    for name, tensor in ultra.load_model(weights)[0].state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


# --- 5. sparsity-training overhead ----------------------------------------------------------------------------------
class EpochTimer:
    """Seconds of each epoch's training loop (on_train_epoch_start to on_train_epoch_end: no validation, no
    checkpoint saving), optionally around a SparsityCallback; it has the callback's attach() for ultra.train."""

    def __init__(self, sparsity: ultra.SparsityCallback | None = None):
        self.sparsity, self.seconds, self.batches, self._t0 = sparsity, [], 0, 0.0

    def attach(self, model) -> None:
        model.add_callback("on_train_epoch_start", self._start)  # first: the L1 hook's set-up is timed too
        if self.sparsity is not None:
            self.sparsity.attach(model)
        model.add_callback("on_train_epoch_end", self._stop)

    def _start(self, trainer) -> None:
        self._t0 = time.perf_counter()

    def _stop(self, trainer) -> None:
        self.seconds.append(time.perf_counter() - self._t0)
        self.batches = len(trainer.train_loader)


def overhead(cfg: Config, folder: Path, exist_ok: bool) -> dict:
    """Training-loop seconds per epoch with and without the L1 hook, same model, data and settings: short runs
    alternated A/B, B/A, ... so that drifting machine load hits both arms alike."""
    source = _overhead_model(cfg, folder, exist_ok)
    seconds, pairs, batches = {"normal": [], "sparsity": []}, [], 0
    for rep in range(OVERHEAD_REPEATS):
        rep_s = {}
        for arm in ("normal", "sparsity") if rep % 2 == 0 else ("sparsity", "normal"):
            timer = _timed_run(cfg, source, folder, arm, rep)
            seconds[arm] += timer.seconds
            rep_s[arm], batches = statistics.median(timer.seconds), timer.batches
        pairs.append(rep_s["sparsity"] / rep_s["normal"])
    median = {arm: statistics.median(s) for arm, s in seconds.items()}
    ratio = median["sparsity"] / median["normal"]
    hook_ms = _hook_ms(source)
    return {"weights": str(source), "epochs_per_run": OVERHEAD_EPOCHS, "runs_per_arm": OVERHEAD_REPEATS,
            "epoch_s": seconds, "median_s": median, "ratio": ratio, "pair_ratios": pairs,
            "batches_per_epoch": batches, "hook_ms_per_step": hook_ms,
            "hook_share_bound": hook_ms * batches / 1e3 / median["normal"],
            "target": _target(f"sparsity / normal epoch time <= {OVERHEAD_TARGET}", ratio <= OVERHEAD_TARGET)}


def _timed_run(cfg: Config, source: Path, folder: Path, arm: str, rep: int) -> EpochTimer:
    """One short run of the config's sparsity settings from `source`, with the L1 hook when arm is "sparsity"."""
    hook = ultra.SparsityCallback(cfg.sparsity.sr, cfg.sparsity.schedule) if arm == "sparsity" else None
    timer = EpochTimer(hook)
    args = {**ultralytics_args(cfg, "sparsity"), "data": stages.resolve_data(cfg), "workers": 0,
            "project": str(folder.resolve()), "name": f"{arm}-{rep}", "epochs": OVERHEAD_EPOCHS, "val": False}
    ultra.train(source, args, keep_architecture=True, sparsity=timer)
    return timer


def _overhead_model(cfg: Config, folder: Path, exist_ok: bool) -> Path:
    """The pipeline's trained baseline, or (when the pipeline has not run) cfg.model trained for one epoch here."""
    baseline = stages.output_of(cfg, "train")
    if baseline.exists():
        return baseline
    args = {**ultralytics_args(cfg, "train"), "data": stages.resolve_data(cfg), "project": str(folder.resolve()),
            "name": "base", "epochs": 1}
    return _cached_train(cfg.model, args, None, exist_ok)[0]


def _hook_ms(weights: Path, calls: int = 200) -> float:
    """Median milliseconds of one L1 subgradient step (add_bn_l1_grad_ on every prunable BN), timed alone."""
    bns = prunable_bns(ultra.load_model(weights)[0])
    for bn in bns:
        bn.weight.grad = torch.zeros_like(bn.weight)
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        add_bn_l1_grad_(bns, 1e-3)
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


# --- 7. convergence and the dense control ---------------------------------------------------------------------------
def convergence(cfg: Config, folder: Path, exist_ok: bool) -> dict:
    """Has the baseline stopped learning (its last 10% of epochs add < CONVERGED_GAIN mAP50-95 to its best)? And the dense
    control: the baseline trained on, unpruned, for the sparsity + finetune epochs, with the finetune settings."""
    results = cfg.stage_dir("train") / "results.csv"
    if not results.exists():
        return _skipped(f"no baseline training log at {results}: run `make pipeline` first")
    curve = _map_curve(results)
    tail, gain = tail_gain(curve)
    epochs = cfg.sparsity.args.get("epochs", 0) + cfg.finetune.args.get("epochs", 0)
    control = {"epochs": epochs, **_val(cfg, _dense_control(cfg, epochs, None, exist_ok), folder, "dense-control")}
    baseline = _val(cfg, stages.output_of(cfg, "train"), folder, "baseline")
    what = (f"the last {tail} of {len(curve)} epochs add < {CONVERGED_GAIN} mAP50-95 to the best epoch before them "
            f"(added {gain:+.4f})")
    return {"curve": curve, "tail_epochs": tail, "tail_gain": gain, "baseline": baseline, "control": control,
            "plot": str(_plot_curve(curve, tail, folder / "baseline_curve.png")),
            "target": _target(what, gain < CONVERGED_GAIN)}


def _dense_control(cfg: Config, epochs: int, seed: int | None, exist_ok: bool) -> Path:
    """The baseline finetuned `epochs` more, unpruned, with the finetune settings (and `seed`, when given)."""
    finetune = dataclasses.replace(cfg.finetune, args={**cfg.finetune.args, "epochs": epochs})
    name = f"{cfg.name}-bench-dense" + (f"-s{seed}" if seed is not None else "")
    dcfg = dataclasses.replace(cfg, name=name, finetune=finetune, seed=cfg.seed if seed is None else seed)
    return _finetuned(dcfg, stages.output_of(cfg, "train"), exist_ok)


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
    fig = _figure()
    ax = fig.add_subplot()
    epochs = range(1, len(curve) + 1)
    ax.plot(epochs, curve, "-", color="C0", label="baseline, val mAP50-95 per epoch")
    ax.axvspan(len(curve) - tail + 0.5, len(curve) + 0.5, color="grey", alpha=0.15, label=f"last {tail} epochs")
    ax.set(xlabel="epoch", ylabel="mAP50-95 (val)", title="Baseline training: has it converged?")
    ax.legend(frameon=False, fontsize=8)
    return _save(fig, out)


# --- 10. seed noise --------------------------------------------------------------------------------------------------
def seeds(cfg: Config, folder: Path, exist_ok: bool) -> dict:
    """The dense control and each recovery point trained again with NOISE_SEEDS (same start models and data, only
    the training seed differs): how far a percentage of the control moves by chance, and the targets judged on
    the means over every seed."""
    done = _read_json(folder.parent / "bench.json")
    recovered, control = _recovered(done), done.get("convergence", {}).get("control")
    if not recovered or control is None:
        return _skipped("no recovery rows or dense control: run the convergence and recovery sections first")
    maps = {"dense control": [control["mAP50_95"]], **{r["model"]: [r["mAP50_95"]] for r in recovered}}
    for seed in NOISE_SEEDS:
        scfg = dataclasses.replace(cfg, seed=seed)
        dense = _dense_control(cfg, control["epochs"], seed, exist_ok)
        maps["dense control"].append(_val(cfg, dense, folder, f"dense-s{seed}")["mAP50_95"])
        for r in recovered:
            tag = r["model"].split()[0]
            pruned = folder.parent / "recovery" / f"{tag}.pt"  # the recovery section's pruned model
            finetuned = _finetuned(dataclasses.replace(scfg, name=f"{cfg.name}-bench-{tag}-s{seed}"), pruned, exist_ok)
            maps[r["model"]].append(_val(cfg, finetuned, folder, f"{tag}-s{seed}")["mAP50_95"])
    dense = maps["dense control"]
    rows = [{"model": name, "seeds": ", ".join(f"{m:.3f}" for m in ms), "mean": statistics.mean(ms),
             "spread": max(ms) - min(ms), "vs_dense": statistics.mean(ms) / statistics.mean(dense),
             "paired": ", ".join(f"{m / d:.1%}" for m, d in zip(ms, dense))} for name, ms in maps.items()]
    at = {f: {"gflops_fraction": r["gflops_fraction"], "mAP_vs_dense": m["vs_dense"]}
          for f in RECOVERY_TARGETS for r, m in zip(recovered, rows[1:]) if r["model"].endswith(_aim(f))}
    targets = [{**t, "what": f"means over seeds {[cfg.seed, *NOISE_SEEDS]}: {t['what']}"} for t in recovery_targets(at)]
    return {"seeds": [cfg.seed, *NOISE_SEEDS], "rows": rows, "targets": targets}


# --- 8. slim against Torch-Pruning at equal GFLOPs and epochs ------------------------------------------------------
def frontier(cfg: Config, folder: Path, exist_ok: bool) -> dict:
    """slim and Torch-Pruning finetuned along the GFLOPs axis: slim at the recovery points and at FRONTIER_RATIOS
    (pruned here, finetuned like the recovery points), Torch-Pruning at each of those GFLOPs from the same sparse
    model (one step of its network-slimming recipe: uniform per-layer ratio, Detect head ignored), same finetune
    settings and epochs. The trainings run PARALLEL at a time. Plots mAP50-95 against GFLOPs with the sweep (slim
    right after pruning) and the dense control and baseline as lines."""
    from benchmarks import bench_torch_pruning as tp

    done = _read_json(folder.parent / "bench.json")
    recovered, source = _recovered(done), stages.output_of(cfg, "sparsity")
    if not recovered or not source.exists():
        return _skipped("no recovery rows: run the recovery section first")
    tp.require_torch_pruning()
    tcfg, dense = dataclasses.replace(cfg, name=f"{cfg.name}-bench-tp"), done["recovery"].get("dense_control")
    full, full_size = tp.gflops(ultra.load_model(source)[0]), ultra.model_size(ultra.load_model(source)[0], cfg.imgsz)
    slim_rows = {r["model"].split()[0]: {**r, "pruned": str(folder.parent / "recovery" / f"{r['model'].split()[0]}.pt")}
                 for r in recovered}
    for ratio in FRONTIER_RATIOS:
        tag = f"r{round(ratio * 100)}"
        if tag not in slim_rows:
            pruned, row = _prune(cfg, source, folder / f"{tag}.pt", ratio)
            slim_rows[tag] = {**row, "model": tag, "pruned": str(pruned)}
    jobs = {}
    for tag, row in slim_rows.items():
        if "finetuned" not in row:
            jobs[tag] = (_finetuned, dataclasses.replace(cfg, name=f"{cfg.name}-bench-{tag}"), Path(row["pruned"]),
                         exist_ok)
        target = tp.gflops(ultra.load_model(Path(row["pruned"]))[0]) / full  # slim's, read the same way
        jobs[f"tp-{tag}"] = (_tp_point, tcfg, source, target, f"tp-{tag}", exist_ok)
    stages.resolve_data(cfg)  # generated here if missing, not by two workers at once
    trained = _side_by_side(jobs)
    for tag, row in slim_rows.items():
        if "finetuned" not in row:
            row.update(_val(cfg, trained[tag], folder, f"{tag}-ft"), finetuned=str(trained[tag]))
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
                  **_val(cfg, best, folder, tp_tag), "slim_mAP50_95": row["mAP50_95"], "finetuned": str(best)}
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


def _tp_point(tcfg: Config, source: Path, target: float, tag: str, exist_ok: bool) -> Path | str:
    """_tp_finetuned, or the reason Torch-Pruning cannot reach `target` (returned: an error in a worker process
    would end the whole section)."""
    try:
        return _tp_finetuned(tcfg, source, target, tag, exist_ok)
    except SlimError as e:
        return str(e)


def _tp_finetuned(tcfg: Config, source: Path, target: float, tag: str, exist_ok: bool) -> Path:
    """Torch-Pruning's one-step prune of `source` to `target` of its GFLOPs, finetuned with tcfg's finetune
    settings; reused when the last run here had the same start, target and settings."""
    from benchmarks import bench_torch_pruning as tp

    record = tcfg.stage_dir(tag) / "bench-run.json"
    settings = json.loads(json.dumps({"source": _digest(source), "target": round(target, 6),
                                      "args": ultralytics_args(tcfg, "finetune"), "data": stages.resolve_data(tcfg)}))
    stored = _read_json(record)
    if stored.get("settings") == settings and Path(stored["best"]).exists() and not exist_ok:
        LOG.info(f"frontier: reusing {stored['best']}, the same Torch-Pruning run (--exist-ok runs it again)")
        return Path(stored["best"])
    best, _ = tp.run_tp(tcfg, source, target, 1, tcfg.finetune.args["epochs"], tag, global_pruning=False)
    write_json(record, {"settings": settings, "best": str(best)})
    return Path(best)


def _plot_frontier(cfg: Config, done: dict, slim_rows: list, tp_rows: list, out: Path) -> Path:
    """mAP50-95 against GFLOPs: slim pruned (the sweep), slim and Torch-Pruning finetuned, dense control line."""
    fig = _figure()
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
    return _save(fig, out)


# --- 9. GPU latency --------------------------------------------------------------------------------------------------
def gpu(cfg: Config, folder: Path, exist_ok: bool) -> dict:
    """On the config's GPU, batch 1: PyTorch fp32 and fp16 and ONNX Runtime's CUDA provider latency of the sparse
    model and of each finetuned recovery point, all interleaved per backend; and whether sparsity training used AMP
    (the sparse checkpoint's own train_args)."""
    if cfg.device in ("cpu", "") or not torch.cuda.is_available():
        return _skipped(f"no CUDA device here (device: {cfg.device or 'auto'}): run with a GPU config, e.g. hard_gpu")
    recovered, source = _recovered(_read_json(folder.parent / "bench.json")), stages.output_of(cfg, "sparsity")
    if not recovered or not source.exists():
        return _skipped("no recovery rows: run the recovery section first")
    weights = {"unpruned": source, **{r["model"].split()[0]: Path(r["finetuned"]) for r in recovered}}
    device, (runs, warmup) = f"cuda:{cfg.device.split(',')[0]}", LATENCY["gpu"]
    models = {tag: ultra.load_model(w)[0] for tag, w in weights.items()}
    rows = {tag: ultra.model_size(model, cfg.imgsz) for tag, model in models.items()}
    for half, key in ((False, "torch_fp32_ms"), (True, "torch_fp16_ms")):
        for _ in range(GPU_ROUNDS):  # every model in every round: the GPU's clocks drift over a run
            for tag, model in models.items():
                t = torch_latency_ms(model, cfg.imgsz, device, runs // GPU_ROUNDS, warmup, half=half)
                rows[tag].setdefault(key, []).append(t["median_ms"])
    for row in rows.values():
        row.update({k: statistics.median(row[k]) for k in ("torch_fp32_ms", "torch_fp16_ms")})
    e = cfg.export
    onnx = {tag: export_onnx(w, folder / f"{tag}.onnx", cfg.imgsz, e.opset, False, e.simplify, False, e.atol).path
            for tag, w in weights.items()}
    try:
        ort = compare_latency(onnx, cfg.imgsz, runs, warmup, provider="CUDAExecutionProvider")
        for tag, row in rows.items():
            row["ort_cuda_ms"] = ort[tag]["median_ms"]
    except SlimError as err:  # onnxruntime without CUDA: the PyTorch figures still stand
        LOG.warning(f"gpu: {err}")
    train_args = ultra.load_model(source)[1].get("train_args", {})
    return {"device": torch.cuda.get_device_name(device), "imgsz": cfg.imgsz, "runs": runs,
            "sparsity_amp": train_args.get("amp", True), "rows": _tagged(rows)}


# --- 6. gamma sparsity -----------------------------------------------------------------------------------------------
def gammas(cfg: Config, folder: Path, exist_ok: bool) -> dict:
    """Fraction of prunable gammas below SMALL_GAMMA after normal training and after sparsity training."""
    rows = {}
    for tag, stage in (("after normal training", "train"), ("after sparsity training", "sparsity")):
        path = stages.output_of(cfg, stage)
        if not path.exists():
            return _skipped(f"no {stage} output at {path}: run `make pipeline` first")
        rows[tag] = _gamma_row(path)
    return {"rows": _tagged(rows)}


def _gamma_row(weights: Path) -> dict:
    bns = prunable_bns(ultra.load_model(weights)[0])
    return {"weights": str(weights), "bns": len(bns), "channels": sum(bn.num_features for bn in bns),
            **gamma_stats(bns)}


# --- shared steps -------------------------------------------------------------------------------------------------
def _prune(cfg: Config, source: Path, out: Path, ratio: float, round_to: int | None = None,
           fold_beta: bool | None = None) -> tuple[Path, dict]:
    """stages.prune at `ratio` (round_to and fold_beta default to the config's) into `out`; (path, sizes row)."""
    p = cfg.prune
    p = dataclasses.replace(p, ratio=ratio, threshold=None, round_to=p.round_to if round_to is None else round_to,
                            fold_beta=p.fold_beta if fold_beta is None else fold_beta)
    path, plan, sizes = stages.prune(dataclasses.replace(cfg, prune=p), source, out, exist_ok=True)
    return path, {"ratio": ratio, "round_to": p.round_to, "fold_beta": p.fold_beta,
                  "removed": plan.removed_fraction, **sizes["after"]}


def _deploy_(cfg: Config, weights: dict, rows: dict, folder: Path, latency: tuple) -> int:
    """Export every checkpoint to ONNX at cfg.imgsz and time them all interleaved in one call (every core), then
    in a second call on one thread; adds onnx_mb, latencies and the ratios to the first (reference) model to
    `rows`. Returns the thread count of the first call."""
    e, onnx = cfg.export, {}
    for tag, path in tqdm(weights.items(), desc="export"):
        result = export_onnx(path, folder / f"{tag}.onnx", cfg.imgsz, e.opset, False, e.simplify, False, e.atol)
        onnx[tag], rows[tag]["onnx_mb"] = result.path, result.size_bytes / 1e6
    timing = compare_latency(onnx, cfg.imgsz, runs=latency[0], warmup=latency[1])
    # one thread too: a 2-thread op waits for its slower thread, so other jobs on the cores inflate the
    # per-op overhead that weighs most in the smallest models; one thread is the steadier comparison here
    single = compare_latency(onnx, cfg.imgsz, runs=latency[0], warmup=latency[1], threads=1)
    ref = next(iter(weights))
    for tag, row in rows.items():
        row.update(latency_ms=timing[tag]["median_ms"], p90_ms=timing[tag]["p90_ms"])
        row["latency_ratio"] = row["latency_ms"] / timing[ref]["median_ms"]
        row["latency_1t_ms"] = single[tag]["median_ms"]
        row["latency_1t_ratio"] = single[tag]["median_ms"] / single[ref]["median_ms"]
        row["gflops_ratio"] = row["gflops"] / rows[ref]["gflops"]
        row["latency_per_gflop"] = row["latency_ratio"] / row["gflops_ratio"]
    return timing[ref]["threads"]


def _val(cfg: Config, weights: Path, folder: Path, tag: str) -> dict:
    """mAP50 and mAP50-95 on the config's val split, the pipeline's val settings, results under `folder`."""
    args = {**ultralytics_args(cfg, "val"), "data": stages.resolve_data(cfg), "project": str(folder.resolve()),
            "name": f"val-{tag}"}
    args.pop("seed", None)
    result = ultra.validate(weights, args)
    return {"mAP50": result["mAP50"], "mAP50_95": result["mAP50_95"]}


def _tagged(rows: dict) -> list[dict]:
    return [{"model": tag, **row} for tag, row in rows.items()]


def _target(what: str, met: bool) -> dict:
    return {"what": what, "met": bool(met)}


def _skipped(reason: str) -> dict:
    LOG.warning(f"bench: skipped: {reason}")
    return {"skipped": reason}


# --- plots ----------------------------------------------------------------------------------------------------------
def _plot_sweep(rows: dict, imgsz: int, out: Path) -> Path:
    """mAP50-95 right after pruning against GFLOPs, one point per ratio; the fold_beta-off model as a cross."""
    fig = _figure()
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
    return _save(fig, out)


def _plot_latency(rows: dict, out: Path) -> Path:
    """Latency ratio against GFLOPs ratio (both pruned / baseline), per round_to; the ideal is the diagonal."""
    fig = _figure()
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
    return _save(fig, out)


def _figure() -> Figure:
    fig = Figure(figsize=(5.6, 3.8), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, out: Path) -> Path:
    return write_atomic(out, lambda f: fig.savefig(f, format="png", dpi=DPI))


# --- markdown -------------------------------------------------------------------------------------------------------
SIZE_COLUMNS = [("model", "model", ""), ("params", "params", ",d"), ("gflops", "GFLOPs", ".2f"),
                ("onnx_mb", "ONNX MB", ".2f"), ("latency_ms", "latency ms", ".1f"),
                ("latency_ratio", "latency ratio", ".3f"), ("gflops_ratio", "GFLOPs ratio", ".3f"),
                ("latency_per_gflop", "latency / GFLOPs ratio", ".2f"), ("latency_1t_ms", "1 thread ms", ".1f"),
                ("latency_1t_ratio", "1 thread ratio", ".3f")]
MAP_COLUMNS = [("mAP50", "mAP50", ".3f"), ("mAP50_95", "mAP50-95", ".3f")]


def render(results: dict) -> str:
    """BENCH.md: per section run so far, its command, machine, date and versions, then its tables."""
    parts = ["# slim benchmarks"]
    for name in [n for n in SECTIONS if n in results]:
        section, m = results[name], results[name]["machine"]
        parts += [f"## {name}", f"`{section['command']}`, {section['date']}, {section['wall_s']:.0f} s",
                  f"{m['cpu']}, {m['usable_cores']} of {m['cores']} cores usable, torch threads {m['torch_threads']}, "
                  f"load average {m['load_avg_1m']} at start; torch {m['torch']}, ultralytics {m['ultralytics']}, "
                  f"onnxruntime {m['onnxruntime']}, Python {m['python']}"]
        parts.append(f"skipped: {section['skipped']}" if "skipped" in section else RENDER[name](section))
        for target in section.get("targets", [section["target"]] if "target" in section else []):
            parts.append(f"Target: {target['what']}: **{'met' if target['met'] else 'MISSED'}**")
    return "\n\n".join(parts) + "\n"


def _render_speed(s: dict) -> str:
    threads = list(s["median_s"])
    rows = [{"step": step, **{n: s["median_s"][n][step] for n in threads}} for step in PRUNE_STEPS]
    cols = [("step", "step", "")] + [(n, f"median s, {n} thread{'s' * (n != '1')}", ".3f") for n in threads]
    return (f"{s['model']} (random gammas), ratio {s['ratio']}, median of {s['repeats']}, thread counts "
            f"interleaved:\n\n" + markdown_table(rows, cols))


def _render_sizes(s: dict) -> str:
    cols = SIZE_COLUMNS[:1] + [("round_to", "round_to", "d"), ("removed", "channels removed", ".1%")] + SIZE_COLUMNS[1:]
    g = s["gammas"]
    return (f"{s['imgsz']} px, ONNX Runtime CPU, batch 1, {s['threads']} thread(s) (and again on 1 thread), median "
            f"of {s['runs']} runs, all models interleaved in each call. yolov8s trained {s['epochs']['train']} + "
            f"sparsity-trained "
            f"{s['epochs']['sparsity']} epochs ({s['train_s'] / 60:.0f} min); prunable gammas < 1e-2: "
            f"{g['trained']['gamma_small']:.1%} -> "
            f"{g['sparse']['gamma_small']:.1%}.\n\n" + markdown_table(s["rows"], cols))


def _render_sweep(s: dict) -> str:
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


def _render_recovery(s: dict) -> str:
    cols = [("model", "model", ""), ("gflops", "GFLOPs", ".2f"), ("gflops_fraction", "GFLOPs fraction", ".1%"),
            ("pruned_mAP50_95", "mAP50-95 pruned", ".3f"), *MAP_COLUMNS, ("mAP_fraction", "mAP50-95 vs sparse", ".1%"),
            ("mAP_vs_control", "vs sparse + finetune", ".1%"),
            ("mAP_vs_dense", "vs dense control (baseline + equal epochs)", ".1%")]
    intro = f"finetune: {s['epochs']} epochs per ratio (the config's finetune section)"
    return intro + "\n\n" + markdown_table(s["rows"], cols)


def _render_frontier(s: dict) -> str:
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


def _render_gpu(s: dict) -> str:
    cols = [("model", "model", ""), ("params", "params", ",d"), ("gflops", "GFLOPs", ".2f"),
            ("torch_fp32_ms", "PyTorch fp32 ms", ".2f"), ("torch_fp16_ms", "PyTorch fp16 ms", ".2f"),
            ("ort_cuda_ms", "ONNX Runtime CUDA ms", ".2f")]
    return (f"{s['device']}, {s['imgsz']} px, batch 1, {s['runs']} runs per model and backend (PyTorch: median of "
            f"{GPU_ROUNDS} rounds' medians, ONNX Runtime: interleaved runs). Sparsity training's amp argument: "
            f"{s['sparsity_amp']}.\n\n" + markdown_table(s["rows"], cols))


def _render_seeds(s: dict) -> str:
    cols = [("model", "model", ""), ("seeds", f"mAP50-95, seeds {s['seeds']}", ""), ("mean", "mean", ".3f"),
            ("spread", "max - min", ".3f"), ("vs_dense", "mean vs dense control's mean", ".1%"),
            ("paired", "vs dense control, seed by seed", "")]
    return ("The dense control and every recovery point trained again from the same start models with other "
            "training seeds (the data and the pruned models stay the same).\n\n" + markdown_table(s["rows"], cols))


def _render_overhead(s: dict) -> str:
    rows = [{"arm": arm, "median": s["median_s"][arm], "all": ", ".join(f"{t:.1f}" for t in s["epoch_s"][arm])}
            for arm in ("normal", "sparsity")]
    cols = [("arm", "training", ""), ("median", "median s / epoch", ".2f"), ("all", "epochs", "")]
    table = markdown_table(rows, cols)
    pairs = ", ".join(f"{r:.3f}" for r in s["pair_ratios"])
    return (f"{s['runs_per_arm']} runs x {s['epochs_per_run']} epochs per arm, alternated; ratio of medians "
            f"{s['ratio']:.3f}; per pair of adjacent runs: {pairs}. The L1 step alone: {s['hook_ms_per_step']:.3f} "
            f"ms, at most {s['hook_share_bound']:.2%} of an epoch ({s['batches_per_epoch']} batches).\n\n" + table)


def _render_convergence(s: dict) -> str:
    rows = [{"model": "baseline (converged?)", **s["baseline"], "epochs": len(s["curve"])},
            {"model": "dense control: baseline + sparsity + finetune epochs, unpruned", **s["control"]}]
    cols = [("model", "model", ""), ("epochs", "epochs", "d"), *MAP_COLUMNS]
    return (f"Baseline mAP50-95 over its last {s['tail_epochs']} epochs: {s['tail_gain']:+.4f}. The dense control "
            f"starts from the baseline and trains {s['control']['epochs']} more epochs with the finetune settings: "
            "the model every pruned + finetuned one is compared with.\n\n" + markdown_table(rows, cols))


def _render_gammas(s: dict) -> str:
    cols = [("model", "model", ""), ("channels", "prunable channels", ",d"), ("gamma_mean", "mean |gamma|", ".4f"),
            ("gamma_small", f"below {SMALL_GAMMA:g}", ".1%")]
    return markdown_table(s["rows"], cols)


# in the order a full run needs: recovery compares with convergence's dense control; frontier, seeds and gpu read
# recovery's rows
SECTIONS = {"prune_speed": prune_speed, "sizes640": sizes640, "convergence": convergence, "sweep": sweep,
            "recovery": recovery, "frontier": frontier, "seeds": seeds, "overhead": overhead, "gammas": gammas,
            "gpu": gpu}
RENDER = {"prune_speed": _render_speed, "sizes640": _render_sizes, "sweep": _render_sweep,
          "recovery": _render_recovery, "overhead": _render_overhead, "gammas": _render_gammas,
          "convergence": _render_convergence, "frontier": _render_frontier,
          "seeds": _render_seeds, "gpu": _render_gpu}
