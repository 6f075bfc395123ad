"""Section prune_speed: wall seconds of analyze + build_plan + prune_model on a random-gamma yolov8s."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from benchmarks.sections.common import target
from slim.config import Config
from slim.groups import analyze
from slim.plan import build_plan
from slim.report import markdown_table
from slim.surgery import prune_model

SPEED_MODEL, SPEED_RATIO, SPEED_REPEATS, SPEED_TARGET_S = "yolov8s.yaml", 0.5, 5, 5.0
PRUNE_STEPS = ("analyze", "build_plan", "prune_model", "total")


def run(cfg: Config, folder: Path, exist_ok: bool, done: dict) -> dict:
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
            "target": target(f"median total < {SPEED_TARGET_S:g} s ({default} threads)", total < SPEED_TARGET_S)}


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


def render(s: dict) -> str:
    threads = list(s["median_s"])
    rows = [{"step": step, **{n: s["median_s"][n][step] for n in threads}} for step in PRUNE_STEPS]
    cols = [("step", "step", "")] + [(n, f"median s, {n} thread{'s' * (n != '1')}", ".3f") for n in threads]
    return (f"{s['model']} (random gammas), ratio {s['ratio']}, median of {s['repeats']}, thread counts "
            f"interleaved:\n\n" + markdown_table(rows, cols))
