"""Head-to-head with Torch-Pruning: its network-slimming YOLOv8 recipe against slim's, same start, GFLOPs and epochs.

Benchmark only: torch_pruning is imported lazily (`pip install -e .[bench]`); the rest of slim never needs it.
Torch-Pruning's side follows its examples/yolov8/yolov8_pruning.py, ported to ultralytics 8.4 (see WORKAROUNDS).
"""

from __future__ import annotations

import copy
import dataclasses
import os
import platform
import subprocess
import sys
import tempfile
from datetime import datetime
from pathlib import Path

import torch
from torch import nn
from ultralytics.nn.modules import C2f, Bottleneck, Conv, Detect

from slim import pruning, stages, ultra
from slim.config import Config, ultralytics_args
from slim.errors import SlimError, UsageError
from slim.export import export_onnx
from slim.io import write_atomic, write_json, write_text
from slim.latency import compare_latency
from slim.report import markdown_table

FLOPS_IMGSZ = 640  # GFLOPs fractions are read at 640 px: at 160 px the 3-decimal GFLOPs are only 0.2% precise
# variant -> (the stage whose model it starts from, global ranking); "tp-*" without -global is the example's recipe
VARIANTS = {"tp-baseline": ("train", False), "tp-sparse": ("sparsity", False), "tp-sparse-global": ("sparsity", True)}
# what the example needs to run at all on ultralytics 8.4.190 with torch-pruning 1.6.1, as found while porting it
WORKAROUNDS = [
    "The example does not import: it reads `ultralytics.yolo.engine.model`, `ultralytics.yolo.engine.trainer` and "
    "`ultralytics.yolo.utils`, removed in ultralytics 8.1. Its `train_v2` (a copy of 8.0's `YOLO.train`, bound "
    "onto the YOLO object, that sets `trainer.model` to the pruned module) becomes a trainer subclass whose "
    "`get_model` returns the pruned module (slim.ultra.TRAINERS); without it ultralytics rebuilds the unpruned "
    "model from the yaml.",
    "Stock C2f cannot be pruned: `cv1(x).chunk(2, 1)` is opaque to the dependency graph, and `pruner.step()` "
    "fails with `IndexError: index 384 is out of bounds for dimension 0 with size 256`. The example's C2f_v2 "
    "(cv1 as two 1x1 convs, no chunk) is swapped in first, with its weight transfer (`C2fSplit`, `split_c2f_`).",
    "ultralytics loads checkpoints with `requires_grad=False` on every parameter. Torch-Pruning traces autograd, "
    "finds no graph and prunes nothing, silently: no error, same parameter count. Every parameter is made "
    "trainable before each prune step (the example does this too, for another reason).",
    "The result pickles the C2f_v2 class, so `YOLO(path)` works only where the module that defines it can be "
    "imported (the example defines it in `__main__`: only inside that script). Elsewhere ultralytics fails, and "
    "its fallback for a missing module is to pip-install a package of that name (AutoInstall is on by default; "
    "off in this benchmark's check). ULTRALYTICS_SAFE_LOAD=1 rejects the class as outside its allow-list. "
    "Folding C2f_v2 back into a stock C2f (`merge_c2f_`; exact, because a uniform ratio leaves cv0 and cv1 "
    "equally wide) gives a plain ultralytics checkpoint (the `-stock` rows). After global ranking it is impossible.",
    "Not needed on 8.4: the example's `save_model_v2`, `final_eval_v2` and `strip_optimizer_v2` monkeypatches "
    "(FP32 checkpoints of the pruned model); ultralytics' own FP16 checkpoints of it load, train and validate. "
    "Detect returning a dict in training mode is fine too: Torch-Pruning flattens dict outputs when it traces.",
]
# how Torch-Pruning's side was made comparable, and what its recipe does differently by construction
FAIRNESS = [
    "Importance: network slimming, `BNScalePruner` + `BNScaleImportance` (mean |gamma| of each channel group), "
    "instead of the example's `GroupNormPruner` + `GroupMagnitudeImportance` (L2 of weights); everything else as "
    "the example: local (uniform per-layer) ratio, the whole Detect head ignored, a fresh pruner with "
    "`iterative_steps=1` per step, per-step ratio `1 - (1 - R) ** (1 / steps)`. No regulariser, as the example.",
    "Same GFLOPs: the example's `--target-prune-rate` is a channel ratio, so the one-shot ratio R whose GFLOPs "
    "equal slim's is found by bisection on copies, and the last step's ratio is bisected again so that the "
    "final GFLOPs land on slim's (ultralytics' own counter, both sides).",
    "Same epochs: Torch-Pruning from the trained baseline gets slim's sparsity + finetune epochs; from slim's "
    "sparse model, it gets slim's finetune epochs (the sparsity epochs are already in its start). Its budget is "
    "split over its prune steps, each finetune with the config's finetune settings.",
    "By construction of the recipe: each prune step restarts ultralytics training, with a new optimizer, LR "
    "schedule, warm-up (max(3 epochs, 100 iterations)) and close_mosaic; slim's one finetune does each once.",
]


def require_torch_pruning():
    """The torch_pruning module, or one line saying how to install it."""
    try:
        import torch_pruning
    except ImportError:
        raise SlimError("torch-pruning is not installed: pip install -e .[bench]") from None
    return torch_pruning


# --- the example's C2f replacement ---------------------------------------------------------------------------
class C2fSplit(nn.Module):
    """Torch-Pruning's C2f_v2: C2f with cv1 split into two 1x1 convs (cv0, cv1) instead of one conv and a chunk."""

    def __init__(self, c1: int, c2: int, n: int = 1, shortcut: bool = False, g: int = 1, e: float = 0.5):
        super().__init__()
        self.c = int(c2 * e)
        self.cv0 = Conv(c1, self.c, 1, 1)
        self.cv1 = Conv(c1, self.c, 1, 1)
        self.cv2 = Conv((2 + n) * self.c, c2, 1)
        self.m = nn.ModuleList(Bottleneck(self.c, self.c, shortcut, g, k=((3, 3), (3, 3)), e=1.0) for _ in range(n))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = [self.cv0(x), self.cv1(x)]
        y.extend(m(y[-1]) for m in self.m)
        return self.cv2(torch.cat(y, 1))


def split_c2f_(model: nn.Module) -> int:
    """Replace every stock C2f by an equivalent C2fSplit, in place; returns how many were replaced."""
    count = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is C2f:  # subclasses (C3k2) have other inner blocks; the example only handles C2f
                setattr(parent, name, _split(child))
                count += 1
    return count


def _split(block: C2f) -> C2fSplit:
    c1, c2, c = block.cv1.conv.in_channels, block.cv2.conv.out_channels, block.c
    new = C2fSplit(c1, c2, len(block.m), block.m[0].add if len(block.m) else False, e=c / c2)
    new.cv2, new.m = block.cv2, block.m  # shared, not copied: only cv1 changes shape
    for conv, part in ((new.cv0, slice(0, c)), (new.cv1, slice(c, 2 * c))):
        _copy_conv(block.cv1, conv, part)
    _copy_attrs(block, new)
    return new.train(block.training)


def merge_c2f_(model: nn.Module) -> int:
    """Fold every C2fSplit back into a stock C2f (cv1 = [cv0; cv1]), in place; returns how many were merged.

    Exact, because C2f's chunk(2) reads the two halves in the order C2fSplit concatenates cv0 and cv1.

    Raises:
        SlimError: cv0 and cv1 were pruned to different widths (global ranking), which chunk(2) cannot express.
    """
    count = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, C2fSplit):
                setattr(parent, name, _merge(child))
                count += 1
    return count


def _merge(block: C2fSplit) -> C2f:
    c0, c = block.cv0.conv.out_channels, block.cv1.conv.out_channels
    if c0 != c:
        raise SlimError(f"C2fSplit halves are {c0} and {c} channels wide; a stock C2f needs equal halves")
    c1, c2 = block.cv0.conv.in_channels, block.cv2.conv.out_channels
    new = C2f(c1, c2, len(block.m))  # its own cv1/cv2/m are placeholders, replaced below
    new.c, new.cv1, new.cv2, new.m = c, Conv(c1, 2 * c, 1, 1), block.cv2, block.m
    for conv, part in ((block.cv0, slice(0, c)), (block.cv1, slice(c, 2 * c))):
        _copy_conv(conv, new.cv1, part, into=True)
    _copy_attrs(block, new)
    return new.train(block.training)


@torch.no_grad()
def _copy_conv(src: Conv, dst: Conv, part: slice, into: bool = False) -> None:
    """Copy output channels `part` of src into dst (into=False), or all of src into channels `part` of dst."""
    pairs = [(src.conv.weight, dst.conv.weight)] + [
        (getattr(src.bn, k), getattr(dst.bn, k)) for k in ("weight", "bias", "running_mean", "running_var")
    ]
    for s, d in pairs:
        if into:
            d[part] = s
        else:
            d.copy_(s[part])


def _copy_attrs(old: nn.Module, new: nn.Module) -> None:
    # ultralytics' forward loop routes by f (inputs) and i (index); type and np feed its model summary
    for attr in ("f", "i", "type", "np"):
        if hasattr(old, attr):
            setattr(new, attr, getattr(old, attr))


# --- Torch-Pruning's prune step --------------------------------------------------------------------------------
def tp_prune_(model: nn.Module, ratio: float, imgsz: int, global_pruning: bool = False) -> nn.Module:
    """One prune step of the example, with network-slimming ranking (BNScalePruner + BNScaleImportance), in place.

    Args:
        model: an ultralytics model whose C2f blocks are C2fSplit (split_c2f_).
        ratio: fraction of each group's channels to remove (of the whole network's with global_pruning).
        imgsz: side of the example input used to trace the graph.
        global_pruning: rank all channels together instead of a uniform per-layer ratio (not the example's).
    """
    tp = require_torch_pruning()
    for p in model.parameters():  # ultralytics loads frozen weights; TP would see no autograd graph, prune nothing
        p.requires_grad = True
    model.train()  # as the example; the trace does not touch BN statistics (checked)
    example = torch.randn(1, 3, imgsz, imgsz, generator=torch.Generator().manual_seed(0))
    pruner = tp.pruner.BNScalePruner(
        model,
        example,
        importance=tp.importance.BNScaleImportance(),
        pruning_ratio=ratio,
        global_pruning=global_pruning,
        iterative_steps=1,
        ignored_layers=[m for m in model.modules() if isinstance(m, Detect)],
    )
    pruner.step()
    return model.eval()


def gflops(model: nn.Module) -> float:
    return ultra.model_size(model, FLOPS_IMGSZ)["gflops"]


def ratio_for_gflops(model: nn.Module, target: float, imgsz: int, global_pruning: bool = False, iters: int = 10,
                     prune_=tp_prune_):
    """The smallest one-step ratio whose pruned copy has at most `target` GFLOPs (at FLOPS_IMGSZ), by bisection.

    Args:
        prune_: the prune step, prune_(model, ratio, imgsz, global_pruning) in place (default: network slimming's).

    Raises:
        SlimError: even a 0.95 ratio stays above the target (the ignored Detect head sets a floor).
    """
    def pruned_gflops(r: float) -> float:
        return gflops(prune_(copy.deepcopy(model), r, imgsz, global_pruning))

    lo, hi = 0.0, 0.95
    if pruned_gflops(hi) > target:
        raise SlimError(f"Torch-Pruning cannot reach {target:.3f} GFLOPs with the Detect head ignored")
    for _ in range(iters):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if pruned_gflops(mid) > target else (lo, mid)
    return hi


def step_epochs(total: int, steps: int) -> list[int]:
    """Split an epoch budget over prune steps; the remainder goes to the last steps (the final, smallest model)."""
    if steps < 1 or total < steps:
        raise UsageError(f"{total} epochs cannot be split over {steps} prune steps: need at least one epoch per step")
    return [total // steps + (i >= steps - total % steps) for i in range(steps)]


# --- the two sides ---------------------------------------------------------------------------------------------
def run_slim(cfg: Config, sparse: Path) -> dict:
    """slim's side: prune the sparse model at cfg.prune.ratio, finetune with cfg's finetune settings."""
    pruned, plan, sizes = pruning.prune(cfg, weights=sparse, exist_ok=True)
    best = stages.finetune(cfg, weights=pruned, exist_ok=True)
    model = ultra.load_model(pruned)[0]
    return {"pruned": pruned, "weights": best, "ratio": plan.ratio, "removed_fraction": plan.removed_fraction,
            "gflops_fraction": gflops(model) / gflops(ultra.load_model(sparse)[0]),
            "sparse_val": validate(cfg, sparse, "sparse"), "pruned_val": validate(cfg, pruned, "slim-pruned")}


def run_tp(cfg: Config, source: Path, target: float, steps: int, epochs: int, tag: str, global_pruning: bool):
    """Torch-Pruning's side: the example's loop of prune step -> finetune, to `target` of the source's GFLOPs.

    Returns:
        (the last step's best checkpoint, one dict per step: ratio, sizes, mAP after pruning and after finetuning).
    """
    model, ckpt = ultra.load_model(source)
    split_c2f_(model)
    start = gflops(model)
    goal = target * start
    one_shot = ratio_for_gflops(model, goal, cfg.imgsz, global_pruning)
    per_step = 1 - (1 - one_shot) ** (1 / steps)  # the example's schedule: the same share of what is left, each step
    history, best = [], source
    for i, n in enumerate(step_epochs(epochs, steps)):
        last = i == steps - 1  # the last step lands on the goal exactly, whatever the rounding of earlier steps
        ratio = ratio_for_gflops(model, goal, cfg.imgsz, global_pruning) if last else per_step
        tp_prune_(model, ratio, cfg.imgsz, global_pruning)
        folder = cfg.stage_dir(tag) / f"step{i + 1}"
        pruned = ultra.save_checkpoint(model, folder / "pruned.pt", ckpt.get("train_args", {}),
                                       {"bench": "torch-pruning", "source": str(source), "step": i + 1})
        args = {**_finetune_args(cfg), "epochs": n, "name": f"{tag}/step{i + 1}"}
        best = ultra.train(pruned, args, keep_architecture=True)
        history.append({"step": i + 1, "ratio": ratio, "epochs": n, **ultra.model_size(model, cfg.imgsz),
                        "gflops_fraction": gflops(model) / start,
                        "pruned_val": validate(cfg, pruned, f"{tag}-step{i + 1}-pruned"),
                        "finetuned_val": validate(cfg, best, f"{tag}-step{i + 1}")})
        model = ultra.load_model(best)[0]
    return best, history


def _finetune_args(cfg: Config) -> dict:
    return {**ultralytics_args(cfg, "finetune"), "data": stages.resolve_data(cfg)}


def validate(cfg: Config, weights: Path, tag: str) -> dict:
    """mAP through slim's own validation path (the same args for every model)."""
    args = {**ultralytics_args(cfg, "val"), "data": stages.resolve_data(cfg), "name": f"val/{tag}"}
    return ultra.validate(weights, args)


def stock_copy(weights: Path, out: Path) -> Path:
    """The TP result with C2fSplit folded back into stock C2f: the same function, a plain ultralytics checkpoint."""
    model, ckpt = ultra.load_model(weights)
    merge_c2f_(model)
    return ultra.save_checkpoint(model, out, ckpt.get("train_args", {}), {"bench": "torch-pruning, merged C2f"})


# --- loads with plain ultralytics? -----------------------------------------------------------------------------
# run in a fresh interpreter that cannot import slim, the benchmarks or torch_pruning, as on a machine with only ultralytics
_LOAD_CHECK = """
import sys, importlib.abc
class Hide(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("slim", "benchmarks", "torch_pruning"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, Hide())
import numpy as np
from ultralytics import YOLO
model = YOLO(sys.argv[1])
model.predict(np.zeros((int(sys.argv[2]), int(sys.argv[2]), 3), np.uint8), imgsz=int(sys.argv[2]), verbose=False)
print("LOADED", type(model.model).__name__)
"""


def loads_plain(weights: Path, imgsz: int, safe: bool) -> dict:
    """Does `YOLO(weights)` load and predict in a fresh process without slim, the benchmarks or torch_pruning?

    Returns:
        {"ok": bool, "error": the last line of the failure, or ""}.
    """
    env = {**os.environ, "YOLO_OFFLINE": "1", "YOLO_AUTOINSTALL": "0", "ULTRALYTICS_SAFE_LOAD": "1" if safe else "0"}
    with tempfile.TemporaryDirectory() as cwd:  # not the repo root, so `slim` is not importable from the cwd
        done = subprocess.run([sys.executable, "-c", _LOAD_CHECK, str(Path(weights).resolve()), str(imgsz)],
                              cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    ok = done.returncode == 0 and "LOADED" in done.stdout
    lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
    return {"ok": ok, "error": "" if ok else (lines[-1] if lines else f"exit {done.returncode}")}


# --- measuring -------------------------------------------------------------------------------------------------
def measure(cfg: Config, models: dict, threads: list, runs: int) -> dict:
    """Validate, size, export, load-check and time every model; ONNX latency interleaved, batch 1, per thread count.

    Args:
        models: name -> checkpoint.
        threads: ONNX Runtime intra-op thread counts to time at.
        runs: timed runs per model and thread count.
    """
    rows, onnx = {}, {}
    folder = cfg.stage_dir("onnx")
    for name, weights in models.items():
        row = {"model": name, **validate(cfg, weights, name)}
        row["load_plain"] = loads_plain(weights, cfg.imgsz, safe=False)
        row["load_safe"] = loads_plain(weights, cfg.imgsz, safe=True)
        onnx[name] = export_onnx(weights, folder / f"{name}.onnx", cfg.imgsz, atol=cfg.export.atol).path
        row["onnx_mb"] = onnx[name].stat().st_size / 1e6
        rows[name] = row
    for t in threads:
        timing = compare_latency(onnx, cfg.imgsz, runs=runs, warmup=10, threads=t)
        for name, result in timing.items():
            rows[name][f"latency_ms_{t}t"] = result["median_ms"]
            rows[name][f"latency_p90_ms_{t}t"] = result["p90_ms"]
    return rows


# --- the whole comparison --------------------------------------------------------------------------------------
def run(cfg: Config, out_name: str, ratio: float, steps: int, variants: list, threads: list, runs: int) -> dict:
    """slim vs Torch-Pruning from cfg's trained baseline and sparse model; every output under <project>/<out_name>/.

    Args:
        cfg: the experiment whose train and sparsity stages made the start models; its finetune settings are used.
        out_name: experiment name for this benchmark's outputs (never cfg.name: nothing of that run is replaced).
        ratio: slim's prune ratio; Torch-Pruning is pruned to the GFLOPs slim's ratio gives.
        steps: Torch-Pruning's prune steps, each followed by an equal share of its epoch budget.
        variants: keys of VARIANTS to run.
        threads, runs: ONNX Runtime latency settings (see measure).

    Returns:
        {"settings", "models": name -> row, "steps": variant -> per-step rows, "slim": slim's prune facts}.
    """
    require_torch_pruning()  # fail before any training, not after slim's finetune
    _check_run_args(cfg, out_name, variants)
    # the trained baseline and slim's sparse model: what cfg's sparsity and prune stages read
    start = {"train": stages.input_for(cfg, "sparsity", None), "sparsity": stages.input_for(cfg, "prune", None)}
    out = dataclasses.replace(cfg, name=out_name, prune=dataclasses.replace(cfg.prune, ratio=ratio, threshold=None))
    finetune_epochs = out.finetune.args["epochs"]
    sparsity_epochs = ultra.load_model(start["sparsity"])[1]["train_args"]["epochs"]
    budget = {"sparsity": finetune_epochs, "train": sparsity_epochs + finetune_epochs}  # epochs after the baseline
    slim_side = run_slim(out, start["sparsity"])
    models = {"baseline": start["train"], "slim": slim_side["weights"]}
    epochs = {"baseline": 0, "slim": sparsity_epochs + finetune_epochs}
    history = {}
    for variant in variants:
        stage, global_pruning = VARIANTS[variant]
        models[variant], history[variant] = run_tp(out, start[stage], slim_side["gflops_fraction"], steps,
                                                   budget[stage], variant, global_pruning)
        epochs[variant] = sparsity_epochs + finetune_epochs
        if not global_pruning:  # global ranking prunes cv0 and cv1 unequally: no stock C2f can hold that
            models[f"{variant}-stock"] = stock_copy(models[variant], out.stage_dir(variant) / "stock.pt")
            epochs[f"{variant}-stock"] = epochs[variant]
    rows = measure(out, models, threads, runs)
    base = gflops(ultra.load_model(models["baseline"])[0])
    for name, row in rows.items():
        row.update(epochs=epochs[name], gflops_fraction=gflops(ultra.load_model(models[name])[0]) / base)
    settings = _settings(out, ratio, steps, budget, threads, runs)
    return {"settings": settings, "models": rows, "steps": history, "slim": slim_side}


def _check_run_args(cfg: Config, out_name: str, variants: list) -> None:
    if out_name == cfg.name:
        raise UsageError(f"--name must differ from the config's name '{cfg.name}', whose runs this benchmark reads")
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown or not variants:
        raise UsageError(f"unknown variants {unknown}: choose from {', '.join(VARIANTS)}")


def _settings(cfg: Config, ratio: float, steps: int, budget: dict, threads: list, runs: int) -> dict:
    from importlib.metadata import version  # torch_pruning.__version__ of the 1.6.1 wheel still says 1.6.0

    cpu = platform.processor()
    if Path("/proc/cpuinfo").exists():
        names = [line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")]
        cpu = names[0] if names else cpu
    return {
        "date": datetime.now().isoformat(timespec="seconds"), "cpu": cpu, "cpus": len(os.sched_getaffinity(0)),
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     **{name: version(name) for name in ("ultralytics", "torch-pruning", "onnxruntime")}},
        "imgsz": cfg.imgsz, "slim_ratio": ratio, "tp_steps": steps, "tp_epoch_budget": budget,
        "finetune": cfg.finetune.args, "latency_threads": threads, "latency_runs": runs,
    }


# --- writing it down -------------------------------------------------------------------------------------------
COLUMNS = [
    ("model", "model", ""),
    ("epochs", "epochs after baseline", "d"),
    ("params", "params", ",d"),
    ("gflops", "GFLOPs", ".3f"),
    ("gflops_fraction", "GFLOPs vs baseline", ".3f"),
    ("mAP50", "mAP50", ".3f"),
    ("mAP50_95", "mAP50-95", ".3f"),
    ("onnx_mb", "ONNX MB", ".2f"),
]


def results_markdown(results: dict) -> str:
    """The comparison table, the per-step table of each Torch-Pruning run, and the workarounds, as Markdown."""
    threads = results["settings"]["latency_threads"]
    columns = COLUMNS + [(f"latency_ms_{t}t", f"ORT ms, {t} thread{'s' * (t > 1)}", ".2f") for t in threads]
    rows = []
    for row in results["models"].values():
        rows.append({**row, "load_plain": _yes_no(row["load_plain"]), "load_safe": _yes_no(row["load_safe"])})
    columns += [("load_plain", "plain YOLO(path)", ""), ("load_safe", "ULTRALYTICS_SAFE_LOAD=1", "")]
    parts = [markdown_table(rows, columns)]
    step_columns = [("step", "step", "d"), ("ratio", "ratio", ".3f"), ("epochs", "epochs", "d"),
                    ("gflops_fraction", "GFLOPs vs start", ".3f"), ("pruned", "mAP50-95 pruned", ".3f"),
                    ("finetuned", "mAP50-95 finetuned", ".3f")]
    for variant, history in results["steps"].items():
        flat = [{**h, "pruned": h["pruned_val"]["mAP50_95"], "finetuned": h["finetuned_val"]["mAP50_95"]}
                for h in history]
        parts.append(f"**{variant}**, step by step:\n\n" + markdown_table(flat, step_columns))
    for title, items in (("Workarounds", WORKAROUNDS), ("Fairness", FAIRNESS)):
        parts.append(f"{title}:\n\n" + "\n".join(f"{i}. {w}" for i, w in enumerate(items, 1)))
    return "\n\n".join(parts) + "\n"


def _yes_no(check: dict) -> str:
    return "yes" if check["ok"] else f"no: {check['error'][:120]}"


def plot_steps(results: dict, out: Path) -> Path:
    """mAP50-95 against GFLOPs through every prune step (pruned, then finetuned), each run one line."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.2))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    models, slim_side = results["models"], results["slim"]
    first = {"train": (1.0, models["baseline"]["mAP50_95"]), "sparsity": (1.0, slim_side["sparse_val"]["mAP50_95"])}
    slim_pts = [first["sparsity"], (slim_side["gflops_fraction"], slim_side["pruned_val"]["mAP50_95"]),
                (models["slim"]["gflops_fraction"], models["slim"]["mAP50_95"])]
    ax.plot(*zip(*slim_pts), "o-", lw=2, label="slim (from its sparse model: prune once, finetune)")
    for variant, history in results["steps"].items():
        start = VARIANTS[variant][0]
        points = [first[start]]
        for h in history:
            points += [(h["gflops_fraction"], h["pruned_val"]["mAP50_95"]),
                       (h["gflops_fraction"], h["finetuned_val"]["mAP50_95"])]
        where = "trained baseline" if start == "train" else "slim's sparse model"
        ax.plot(*zip(*points), "s--", alpha=0.8, label=f"Torch-Pruning {variant} (from {where})")
    ax.axhline(models["baseline"]["mAP50_95"], color="grey", lw=0.8, ls=":", label="trained baseline")
    low = min(r["gflops_fraction"] for r in models.values())
    ax.set(xlabel="GFLOPs vs baseline", ylabel="mAP50-95 (val)", xlim=(1.03, max(low - 0.1, 0)), ylim=(0, None),
           title="Prune steps: each drop is a prune, each rise its finetune")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return write_atomic(out, lambda f: fig.savefig(f, format="png", dpi=110, bbox_inches="tight"))


def write_results(results: dict, folder: Path) -> tuple:
    """results as JSON and Markdown under `folder`; returns both paths."""
    as_json = write_json(folder / "bench_torch_pruning.json", results)
    as_md = write_text(folder / "bench_torch_pruning.md", results_markdown(results))
    return as_json, as_md
