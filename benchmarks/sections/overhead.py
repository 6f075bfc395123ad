"""Section overhead: training-loop seconds per epoch with and without the L1 hook, runs alternated."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import torch

from benchmarks.sections import cached
from benchmarks.sections.common import target
from slim import stages, ultra
from slim.config import Config, ultralytics_args
from slim.groups import prunable_bns
from slim.report import markdown_table
from slim.sparsity import add_bn_l1_grad_

OVERHEAD_REPEATS, OVERHEAD_EPOCHS, OVERHEAD_TARGET = 4, 2, 1.03  # 4: A/B, B/A, A/B, B/A


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


def run(cfg: Config, folder: Path, exist_ok: bool, done: dict) -> dict:
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
            "target": target(f"sparsity / normal epoch time <= {OVERHEAD_TARGET}", ratio <= OVERHEAD_TARGET)}


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
    return cached.train(cfg.model, args, None, exist_ok)[0]


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


def render(s: dict) -> str:
    rows = [{"arm": arm, "median": s["median_s"][arm], "all": ", ".join(f"{t:.1f}" for t in s["epoch_s"][arm])}
            for arm in ("normal", "sparsity")]
    cols = [("arm", "training", ""), ("median", "median s / epoch", ".2f"), ("all", "epochs", "")]
    table = markdown_table(rows, cols)
    pairs = ", ".join(f"{r:.3f}" for r in s["pair_ratios"])
    return (f"{s['runs_per_arm']} runs x {s['epochs_per_run']} epochs per arm, alternated; ratio of medians "
            f"{s['ratio']:.3f}; per pair of adjacent runs: {pairs}. The L1 step alone: {s['hook_ms_per_step']:.3f} "
            f"ms, at most {s['hook_share_bound']:.2%} of an epoch ({s['batches_per_epoch']} batches).\n\n" + table)
