"""Torch-Pruning's growing-regularization pruner (GReg, Wang et al. ICLR 2021) as a peer arm at one GFLOPs budget.

From the dense baseline: GReg's regularized training through slim's keep-architecture trainer (its penalty added at
every optimizer step, its reg grown after every epoch, as Torch-Pruning's benchmarks/main.py trains it), Torch-Pruning's
prune to the budget, then slim's own finetune and val stages. Benchmark only: torch_pruning is imported lazily.
"""

from __future__ import annotations

import functools
import logging
import platform
import time
from datetime import datetime
from importlib.metadata import version
from pathlib import Path

import torch
from torch import nn

from benchmarks.bench_torch_pruning import (
    gflops,
    merge_c2f_,
    ratio_for_gflops,
    require_torch_pruning,
    split_c2f_,
    validate,
)
from slim import deploy, stages, ultra
from slim.config import Config, ultralytics_args
from slim.errors import UsageError
from slim.io import write_json
from slim.ultra.modules import Detect

LOG = logging.getLogger("slim")
# Torch-Pruning's benchmarks/main.py defaults are reg 5e-4 and delta_reg 1e-4 per epoch over 100 epochs; here the same
# reg trajectory is compressed into the 8 epochs of slim's sparsity stage: 1e-4 * 100 / 8 per epoch
REG, DELTA_REG = 5e-4, 1.25e-3


def ignored_layers(model: nn.Module, prune_head: bool = False) -> list:
    """What Torch-Pruning must not prune: the whole Detect head, as its YOLOv8 example; with prune_head only the
    head's output convs (the last of each box and class branch, and the DFL), so its hidden convs can be pruned."""
    heads = [m for m in model.modules() if isinstance(m, Detect)]
    if not prune_head:
        return heads
    return [layer for d in heads for layer in (*(branch[-1] for branch in (*d.cv2, *d.cv3)), d.dfl)]


def greg_pruner(model: nn.Module, imgsz: int, ratio: float = 0.5, global_pruning: bool = False,
                reg: float = REG, delta_reg: float = DELTA_REG, prune_head: bool = False):
    """Torch-Pruning's GrowingRegPruner on `model` (C2f blocks split, split_c2f_), as its benchmarks build it: squared
    L2 group importance (GroupMagnitudeImportance(p=2)), one prune step; ignored layers as ignored_layers()."""
    tp = require_torch_pruning()
    for p in model.parameters():  # ultralytics loads frozen weights; TP would see no autograd graph, prune nothing
        p.requires_grad = True
    device = next(model.parameters()).device
    example = torch.randn(1, 3, imgsz, imgsz, generator=torch.Generator().manual_seed(0)).to(device)
    return tp.pruner.GrowingRegPruner(
        model,
        example,
        importance=tp.importance.GroupMagnitudeImportance(p=2),
        reg=reg,
        delta_reg=delta_reg,
        pruning_ratio=ratio,
        global_pruning=global_pruning,
        iterative_steps=1,
        ignored_layers=ignored_layers(model, prune_head),
    )


def greg_prune_(model: nn.Module, ratio: float, imgsz: int, global_pruning: bool = False,
                prune_head: bool = False) -> nn.Module:
    """One GReg prune step at `ratio` (of each group's channels, or of all with global_pruning), in place."""
    model.train()  # as bench_torch_pruning.tp_prune_
    greg_pruner(model, imgsz, ratio, global_pruning, prune_head=prune_head).step()
    return model.eval()


class GRegCallback:
    """GReg inside ultralytics training: its penalty at every optimizer step, its reg grown after every epoch.

    The penalty adds reg * w to the gradients of each prunable group's conv and BN weights, per channel, as an
    optimizer step pre-hook, the way slim's L1 is added: after unscaling and clipping, once per step. update_reg()
    (Torch-Pruning's) adds delta_reg * (max - imp) / (max - min) to each channel's reg, imp its group importance: the
    least important channel of each group grows by delta_reg, the most important not at all. The pruner is built on
    the live model at the first epoch, because its groups hold that model's layers.
    """

    def __init__(self, imgsz: int, reg: float = REG, delta_reg: float = DELTA_REG, prune_head: bool = False):
        self.imgsz, self.reg, self.delta_reg, self.prune_head = imgsz, reg, delta_reg, prune_head
        self.pruner = None
        self.history = []  # one row per epoch: reg and |gamma| of the regularized BNs after it
        self._terms = []
        self._hooked = None

    def on_train_epoch_start(self, trainer) -> None:
        if self.pruner is None:
            model = getattr(trainer.model, "module", trainer.model)  # DDP wraps it; on one device it is the model
            self.pruner = greg_pruner(model, self.imgsz, reg=self.reg, delta_reg=self.delta_reg,
                                      prune_head=self.prune_head)
            self._terms = penalty_terms(self.pruner)
        if self._hooked is not trainer.optimizer:  # first epoch, or ultralytics rebuilt the optimizer
            trainer.optimizer.register_step_pre_hook(lambda *_: add_penalty_grad_(self._terms))
            self._hooked = trainer.optimizer

    def on_train_epoch_end(self, trainer) -> None:
        self.pruner.update_reg()
        self._terms = penalty_terms(self.pruner)
        self.history.append({"epoch": trainer.epoch + 1, **reg_stats(self.pruner)})
        row = self.history[-1]
        LOG.info(f"greg: reg max {row['reg_max']:.2e}, mean {row['reg_mean']:.2e}; mean |gamma| of the regularized "
                 f"BNs {row['gamma_mean']:.4f}")

    def attach(self, model) -> None:
        model.add_callback("on_train_epoch_start", self.on_train_epoch_start)
        model.add_callback("on_train_epoch_end", self.on_train_epoch_end)


def penalty_terms(pruner) -> list:
    """GrowingRegPruner.regularize's penalty as (weight, dim, channels, reg) terms, from its groups and group_reg.

    Its own regularize() is not used, for two reasons found on torch-pruning 1.6.1: its BN term,
    `grad.data[idxs].add_(...)` with idxs a list, adds to a copy, so BN gammas are never regularized; and it
    recomputes every group's importance at every step only to skip NaNs (1.7 s a step for yolov8n on this CPU).
    The terms are what it computes otherwise: BN weights and conv output channels of non-ignored layers, and the
    input channels of every conv that reads the group (ignored or not, as there), each scaled by its channel's reg.
    """
    tp = require_torch_pruning()
    out_fns, in_fns = (tp.prune_conv_out_channels,), (tp.prune_conv_in_channels,)
    terms = []
    for group in pruner._groups:
        reg = pruner.group_reg[group]
        for k, (dep, idxs) in enumerate(group):
            layer, fn = dep.layer, dep.pruning_fn
            chosen = reg[torch.tensor(group[k].root_idxs, dtype=torch.long)]
            channels = torch.tensor(list(idxs), dtype=torch.long)
            ignored = layer in pruner.ignored_layers
            if isinstance(layer, nn.BatchNorm2d) and layer.affine and not ignored:
                terms.append((layer.weight, 0, channels, chosen))
            elif isinstance(layer, nn.Conv2d) and fn in out_fns and not ignored:
                terms.append((layer.weight, 0, channels, chosen))
            elif isinstance(layer, nn.Conv2d) and fn in in_fns:
                terms.append((layer.weight, 1, channels, chosen))
    return terms


@torch.no_grad()
def add_penalty_grad_(terms: list) -> None:
    """grad += reg * w on each term's channels along its dim (the gradient of reg/2 * w**2); no grad, no term."""
    for weight, dim, channels, reg in terms:
        if weight.grad is None:  # frozen (the DFL conv)
            continue
        shape = [1] * weight.dim()
        shape[dim] = -1
        picked = weight.index_select(dim, channels.to(weight.device))
        weight.grad.index_add_(dim, channels.to(weight.device), picked * reg.to(weight).view(shape))


@torch.no_grad()
def reg_stats(pruner) -> dict:
    """Max and mean per-channel reg over the pruner's groups, and mean |gamma| of the BNs it regularizes."""
    regs = torch.cat(list(pruner.group_reg.values()))
    bns = {id(dep.layer): dep.layer for group in pruner._groups for dep, _ in group
           if isinstance(dep.layer, nn.BatchNorm2d) and dep.layer not in pruner.ignored_layers}
    gammas = torch.cat([bn.weight.abs().flatten() for bn in bns.values()])
    return {"reg_max": float(regs.max()), "reg_mean": float(regs.mean()), "gamma_mean": float(gammas.mean())}


# --- the arm ---------------------------------------------------------------------------------------------------
def run(cfg: Config, command: str, baseline: Path, target: float, reg: float = REG, delta_reg: float = DELTA_REG,
        global_pruning: bool = False, prune_head: bool = False) -> Path:
    """GReg from `baseline` to at most `target` of its GFLOPs: regularize (cfg's sparsity epochs and batch, the
    baseline's own optimizer), prune, finetune and validate as slim's stages do; returns the results JSON.

    Everything goes under <project>/<cfg.name>/: bench_greg/ (regularized run, pruned.pt, results.json), finetune/,
    val/ (greg-pruned, finetuned).
    """
    require_torch_pruning()  # fail before any training
    if not 0 < target < 1:
        raise UsageError(f"--target-gflops must be in (0, 1), got {target}")
    check_reachable(baseline, target, cfg.imgsz, global_pruning, prune_head)
    folder = cfg.stage_dir("bench_greg")
    folder.mkdir(parents=True, exist_ok=True)
    clock = {"start": time.time()}
    callback = GRegCallback(cfg.imgsz, reg, delta_reg, prune_head)
    regularized, args = regularize(cfg, baseline, folder, callback)
    clock["regularized"] = time.time()
    pruned, facts = prune(cfg, regularized, target, folder, global_pruning, prune_head)
    pruned_val = validate(cfg, pruned, "greg-pruned")
    clock["pruned"] = time.time()
    finetuned = stages.finetune(cfg, pruned, exist_ok=True)  # = python -m slim finetune --weights PRUNED
    finetuned_val = deploy.val(cfg, finetuned, "finetuned", exist_ok=True)  # = python -m slim val --tag finetuned
    clock["finetuned"] = time.time()
    result = {
        "command": command, "date": datetime.now().isoformat(timespec="seconds"),
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch thread(s)",
        "versions": {name: version(name) for name in ("torch", "ultralytics", "torch-pruning")},
        "baseline": str(baseline), "target_gflops": target, **facts,
        "baseline_mAP50_95": validate(cfg, baseline, "baseline")["mAP50_95"],
        "regularized_mAP50_95": validate(cfg, regularized, "greg-regularized")["mAP50_95"],
        "pruned_mAP50_95": pruned_val["mAP50_95"], "finetuned_mAP50_95": finetuned_val["mAP50_95"],
        "epochs": {"regularize": args["epochs"], "finetune": cfg.finetune.args["epochs"]},
        "settings": {"regularize": {k: v for k, v in args.items() if k not in ("data", "project", "name")},
                     "reg": reg, "delta_reg": delta_reg, "importance": "GroupMagnitudeImportance(p=2)",
                     "global_pruning": global_pruning, "finetune": cfg.finetune.args,
                     "ignored": "Detect's output convs and DFL" if prune_head else "the Detect head"},
        "reg_history": callback.history,
        "wall_s": {"regularize": round(clock["regularized"] - clock["start"]),
                   "prune_and_val": round(clock["pruned"] - clock["regularized"]),
                   "finetune_and_val": round(clock["finetuned"] - clock["pruned"])},
        "weights": {"regularized": str(regularized), "pruned": str(pruned), "finetuned": str(finetuned)},
    }
    return write_json(folder / "results.json", result)


def check_reachable(baseline: Path, target: float, imgsz: int, global_pruning: bool, prune_head: bool) -> None:
    """Fail before training when no prune ratio reaches the budget (ignoring the whole head sets a floor: 0.19 of
    yolov8n's GFLOPs per layer, 0.20 globally, on the converged demo model).

    Raises:
        SlimError: from ratio_for_gflops, naming the GFLOPs it cannot reach.
    """
    model = ultra.load_model(baseline)[0]
    split_c2f_(model)
    prune_ = functools.partial(greg_prune_, prune_head=prune_head)
    ratio_for_gflops(model, target * gflops(model), imgsz, global_pruning, iters=0, prune_=prune_)


def regularize(cfg: Config, baseline: Path, folder: Path, callback: GRegCallback) -> tuple:
    """The baseline with its C2f blocks split, trained with GReg for cfg's sparsity epochs and batch, with the
    baseline's own optimizer (GReg's penalty is an L2 on the gradients: no optimizer of its own).

    Returns:
        (the run's last.pt, as the sparsity stage reads, and the ultralytics arguments it trained with).
    """
    model, ckpt = ultra.load_model(baseline)
    split_c2f_(model)  # Torch-Pruning cannot prune stock C2f (bench_torch_pruning.WORKAROUNDS)
    split = ultra.save_checkpoint(model, folder / "split.pt", ckpt.get("train_args", {}),
                                  {"bench": "greg, C2f split", "source": str(baseline)})
    args = {**ultralytics_args(cfg, "sparsity"), **ultra.inherited_optimizer(baseline),
            "data": stages.resolve_data(cfg), "project": str(folder.resolve()), "name": "regularize"}
    ultra.train(split, args, keep_architecture=True, sparsity=callback)
    return folder / "regularize" / "weights" / "last.pt", args


def prune(cfg: Config, regularized: Path, target: float, folder: Path, global_pruning: bool,
          prune_head: bool) -> tuple:
    """GReg's one-step prune of the regularized model to at most `target` of its GFLOPs (ultralytics' counter at
    640 px, as bench_torch_pruning); per-layer C2f halves are merged back to stock C2f, so slim's stages load it.

    Returns:
        (pruned.pt, {"ratio", "gflops", "gflops_fraction", "params"}).
    """
    model, ckpt = ultra.load_model(regularized)
    start = gflops(model)
    prune_ = functools.partial(greg_prune_, prune_head=prune_head)
    ratio = ratio_for_gflops(model, target * start, cfg.imgsz, global_pruning, prune_=prune_)
    prune_(model, ratio, cfg.imgsz, global_pruning)
    if not global_pruning:  # global ranking leaves C2f halves unequal: no stock C2f holds that
        merge_c2f_(model)
    pruned = ultra.save_checkpoint(model, folder / "pruned.pt", ckpt.get("train_args", {}),
                                   {"bench": "greg", "source": str(regularized), "ratio": ratio})
    sizes = ultra.model_size(model, cfg.imgsz)
    return pruned, {"ratio": ratio, "gflops_640": gflops(model), "gflops_fraction": gflops(model) / start,
                    "params": sizes["params"]}
