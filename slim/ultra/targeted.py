"""The targeted-sparsity callback: select the channels the prune budget removes, shrink only those to exact zeros.

A callback object, not trainer state, for the reason SparsityCallback gives (DDP rebuilds the trainer in each worker
from its class, args and callbacks). Every worker selects from its own copy of the model: DDP keeps those copies
equal, and the planner is deterministic, so every rank shrinks the same channels by the same amount.
"""

from __future__ import annotations

import math
from pathlib import Path

from ultralytics.utils import LOGGER, RANK
from ultralytics.utils.torch_utils import unwrap_model

from slim.groups import analyze
from slim.targeted import (
    bind,
    prox_shrink_,
    register_prox_hook,
    select_removed,
    selected_stats,
    shrink_at,
    zero_selected_,
)
from slim.ultra.checkpoints import load_model
from slim.ultra.trainers import _append_csv

INHERITED = ("optimizer", "lr0", "lrf", "momentum", "weight_decay")  # what "train the way the model was trained" takes


class TargetedSparsityCallback:
    """After every optimizer step, soft-threshold gamma and beta of the channels the budget removes; nothing else.

    The selection is redone with the prune stage's planner at the start of every epoch, from the live model, so a
    channel whose gamma the task holds up while the shrink is weak is rescued. The shrink per step is
    shrink_at(shrink, progress) / steps per epoch, after the optimizer step (decoupled from Adam, the AMP scaler,
    clipping and accumulation). The last epoch holds the selected channels at exactly zero after every step, and
    zeroes them in the EMA at its end: ultralytics saves the EMA, which only decays toward the live model's zeros.
    """

    def __init__(self, shrink: float, budget: dict):
        """Args:
            shrink: |gamma| and |beta| taken off per epoch at the end of the linear ramp (sparsity.shrink).
            budget: build_plan's keyword arguments for the prune's cut (ratio or target_gflops, floors, imgsz).
        """
        self.shrink, self.budget = shrink, budget
        self._hooked = None
        self._masks, self._selected, self._fraction = {}, [], None
        self._step, self._steps = 0, 1
        self._logged_epoch = -1

    def progress(self, trainer) -> float:
        return (trainer.epoch + min(self._step / self._steps, 1.0)) / max(trainer.epochs, 1)

    def on_train_epoch_start(self, trainer) -> None:
        model = unwrap_model(trainer.model)
        if self._hooked is not trainer.optimizer:  # first epoch, or ultralytics rebuilt the optimizer
            register_prox_hook(trainer.optimizer, lambda: self.after_step(trainer))
            self._hooked = trainer.optimizer
        self._masks, plan = select_removed(model, analyze(model), self.budget)
        self._selected, self._fraction = bind(model, self._masks), plan.gflops_fraction
        # optimizer steps this epoch, approximately: warmup may accumulate fewer batches per step
        self._step, self._steps = 0, max(1, math.ceil(len(trainer.train_loader) / max(trainer.accumulate, 1)))

    def after_step(self, trainer) -> None:
        self._step += 1
        if trainer.epoch >= trainer.epochs - 1:
            zero_selected_(self._selected)
        else:
            prox_shrink_(self._selected, shrink_at(self.shrink, self.progress(trainer)) / self._steps)

    def on_train_epoch_end(self, trainer) -> None:
        # runs before validation and saving: the saved EMA of the last epoch carries the exact zeros
        if trainer.epoch >= trainer.epochs - 1 and trainer.ema:
            zero_selected_(bind(trainer.ema.ema, self._masks))

    def on_fit_epoch_end(self, trainer) -> None:
        # the event fires once more after the final validation, with the epoch counter past the end
        if RANK not in {-1, 0} or trainer.epoch == self._logged_epoch or trainer.epoch >= trainer.epochs:
            return
        self._logged_epoch = trainer.epoch
        ema = {f"ema_{k}": v for k, v in selected_stats(bind(trainer.ema.ema, self._masks)).items()
               if k != "selected"} if trainer.ema else {}
        stats = {"epoch": trainer.epoch + 1, "shrink": shrink_at(self.shrink, self.progress(trainer)),
                 "gflops_fraction": self._fraction, **selected_stats(self._selected), **ema}
        left = "" if self._fraction is None else f" ({self._fraction:.1%} of the GFLOPs left)"
        LOGGER.info(f"sparsity (targeted): {stats['selected']} channels selected{left}, "
                    f"mean |gamma| {stats['selected_gamma_mean']:.4f}, "
                    f"{stats['selected_zero']:.1%} exactly zero; kept mean |gamma| {stats['kept_gamma_mean']:.4f}")
        _append_csv(Path(trainer.save_dir) / "sparsity.csv", stats)

    def attach(self, model) -> None:
        for event in ("on_train_epoch_start", "on_train_epoch_end", "on_fit_epoch_end"):
            model.add_callback(event, getattr(self, event))


def inherited_optimizer(source: str | Path) -> dict:
    """The optimizer settings the checkpoint was trained with (its train_args): optimizer, lr0, lrf, momentum,
    weight_decay, those it records. With optimizer auto, ultralytics picks again for this run and ignores lr0."""
    train_args = load_model(source)[1].get("train_args") or {}
    inherited = {k: train_args[k] for k in INHERITED if train_args.get(k) is not None}
    shown = ", ".join(f"{k}={v}" for k, v in inherited.items())
    LOGGER.info(f"sparsity (targeted): training with the checkpoint's own {shown} (sparsity.inherit_optimizer)")
    return inherited
