"""`make bench`: the measured figures behind BENCHMARKS.md, one section at a time, on this machine.

SECTIONS lists every section (benchmarks/sections/<name>.py) with what it needs. run() runs the chosen ones, adds
the command, date, machine and versions to each one's results, merges them into <project>/<name>/bench/bench.json
(so `--only` updates one section and keeps the others) and rewrites BENCH.md.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import platform
import time
from datetime import datetime
from pathlib import Path
from typing import Callable

import torch

from benchmarks.sections import (convergence, frontier, gammas, gpu, overhead, prune_speed, recovery, seeds,
                                 sizes640, sweep)
from benchmarks.sections.common import skipped
from slim import stages
from slim.config import Config
from slim.io import write_json, write_text

LOG = logging.getLogger("slim")
MADE_BY = {"train": "trained model", "sparsity": "sparse model"}  # what a stage leaves, as a skip names it


@dataclasses.dataclass(frozen=True)
class Section:
    """One section: run(cfg, folder, exist_ok, done) -> its results; render(results) -> its BENCH.md text."""

    run: Callable[[Config, Path, bool, dict], dict]
    render: Callable[[dict], str]
    reads: tuple[str, ...] = ()  # sections whose results (bench.json's) run() gets as `done`, {name: results}
    stages: tuple[str, ...] = ()  # pipeline stages whose outputs it reads: skipped until they exist
    cuda: bool = False  # skipped without a CUDA device


# in the order a full run needs: recovery compares with convergence's dense control; frontier, seeds and gpu read
# recovery's rows
SECTIONS = {
    "prune_speed": Section(prune_speed.run, prune_speed.render),
    "sizes640": Section(sizes640.run, sizes640.render),
    "convergence": Section(convergence.run, convergence.render, stages=("train",)),
    "sweep": Section(sweep.run, sweep.render, stages=("sparsity",)),
    "recovery": Section(recovery.run, recovery.render, reads=("convergence",), stages=("sparsity",)),
    "frontier": Section(frontier.run, frontier.render, reads=("recovery", "sweep", "convergence"),
                        stages=("sparsity",)),
    "seeds": Section(seeds.run, seeds.render, reads=("recovery", "convergence"), stages=("train",)),
    "overhead": Section(overhead.run, overhead.render),
    "gammas": Section(gammas.run, gammas.render, stages=("train", "sparsity")),
    "gpu": Section(gpu.run, gpu.render, reads=("recovery",), stages=("sparsity",), cuda=True),
}


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
        figures = _run_section(cfg, name, folder, exist_ok)
        entry = {"command": command, "date": datetime.now().isoformat(timespec="seconds"), "machine": machine,
                 "wall_s": round(time.perf_counter() - t0, 1), **figures}
        # read again just before writing: another bench process may have finished a section meanwhile
        results = {**_read_json(folder / "bench.json"), name: entry}
        write_json(folder / "bench.json", results)
    return write_text(folder / "BENCH.md", render(results))


def _run_section(cfg: Config, name: str, folder: Path, exist_ok: bool) -> dict:
    """The section's results, or why it was skipped: no CUDA device, or a pipeline output it reads is missing.
    It gets the latest results of the sections it reads (another bench process may have written them)."""
    section = SECTIONS[name]
    if section.cuda and (cfg.device in ("cpu", "") or not torch.cuda.is_available()):
        return skipped(f"no CUDA device here (device: {cfg.device or 'auto'}): run with a GPU config, e.g. hard_gpu")
    for stage in section.stages:
        path = stages.output_of(cfg, stage)
        if not path.exists():
            return skipped(f"no {MADE_BY[stage]} at {path}: run `make pipeline` first")
    done = _read_json(folder / "bench.json")
    return section.run(cfg, folder / name, exist_ok, {n: done[n] for n in section.reads if n in done})


def render(results: dict) -> str:
    """BENCH.md: per section run so far, its command, machine, date and versions, then its tables."""
    parts = ["# slim benchmarks"]
    for name in [n for n in SECTIONS if n in results]:
        section, m = results[name], results[name]["machine"]
        parts += [f"## {name}", f"`{section['command']}`, {section['date']}, {section['wall_s']:.0f} s",
                  f"{m['cpu']}, {m['usable_cores']} of {m['cores']} cores usable, torch threads {m['torch_threads']}, "
                  f"load average {m['load_avg_1m']} at start; torch {m['torch']}, ultralytics {m['ultralytics']}, "
                  f"onnxruntime {m['onnxruntime']}, Python {m['python']}"]
        parts.append(f"skipped: {section['skipped']}" if "skipped" in section else SECTIONS[name].render(section))
        for target in section.get("targets", [section["target"]] if "target" in section else []):
            parts.append(f"Target: {target['what']}: **{'met' if target['met'] else 'MISSED'}**")
    return "\n\n".join(parts) + "\n"


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
