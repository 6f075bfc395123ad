"""Training: ultralytics' trainers, subclassed to keep a pruned architecture, and the sparsity callback.

Only subclassing and callbacks, no patching.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import torch
from torch import nn
from ultralytics import YOLO
from ultralytics.models.yolo import classify, detect, obb, pose, segment
from ultralytics.utils import LOGGER, RANK
from ultralytics.utils.torch_utils import select_device, unwrap_model

from slim.groups import prunable_bns
from slim.errors import SlimError
from slim.heads import rebuild_class_outputs_
from slim.io import write_text
from slim.sparsity import gamma_stats, register_l1_hook, sr_at
from slim.ultra.datasets import check_inputs, read_dataset

BASE_TRAINERS = {
    "detect": detect.DetectionTrainer,
    "segment": segment.SegmentationTrainer,
    "pose": pose.PoseTrainer,
    "obb": obb.OBBTrainer,
    "classify": classify.ClassificationTrainer,
}


class KeepArchitecture:
    """Trainer mixin: train the loaded model as it is.

    Stock ultralytics rebuilds the model from model.yaml and copies the tensors whose shapes match, which
    silently undoes pruning; and resume of a pruned run crashes. Returning the loaded module fixes both.
    """

    def get_model(self, cfg=None, weights=None, verbose=True):
        if not isinstance(weights, nn.Module):
            return super().get_model(cfg=cfg, weights=weights, verbose=verbose)
        for p in weights.parameters():
            p.requires_grad = True
        return weights


def _keep_architecture_trainer(base: type) -> type:
    # module-level names so DDP workers (which cloudpickle the trainer class) import them by reference
    cls = type(f"Slim{base.__name__}", (KeepArchitecture, base), {"__module__": __name__})
    globals()[cls.__name__] = cls
    return cls


TRAINERS = {task: _keep_architecture_trainer(base) for task, base in BASE_TRAINERS.items()}


class SparsityCallback:
    """Adds the L1 subgradient on prunable BN gammas once per optimizer step, after unscaling and clipping.

    It is a callback object, not trainer state, because ultralytics rebuilds the trainer in each DDP worker from
    its class, args and callbacks: attributes set on a trainer are lost there, a callback's are not.
    The hook is an optimizer step pre-hook: it runs inside scaler.step(), i.e. after scaler.unscale_() and
    clip_grad_norm_(), so neither the AMP loss scale nor the clip (always active on YOLO) shrinks it, and it
    runs once per step whatever the gradient accumulation.
    """

    def __init__(self, sr: float, schedule: str = "linear"):
        self.sr, self.schedule = sr, schedule
        self._hooked = None
        self._bns = []
        self._logged_epoch = -1

    def strength(self, trainer) -> float:
        return sr_at(self.sr, trainer.epoch, trainer.epochs, self.schedule)

    def on_train_epoch_start(self, trainer) -> None:
        if self._hooked is not trainer.optimizer:  # first epoch, or ultralytics rebuilt the optimizer
            self._bns = prunable_bns(unwrap_model(trainer.model))
            register_l1_hook(trainer.optimizer, self._bns, lambda: self.strength(trainer))
            self._hooked = trainer.optimizer

    def on_fit_epoch_end(self, trainer) -> None:
        # the event fires once more after the final validation, with the epoch counter past the end
        if RANK not in {-1, 0} or trainer.epoch == self._logged_epoch or trainer.epoch >= trainer.epochs:
            return
        self._logged_epoch = trainer.epoch
        # the checkpoint ultralytics saves (and the prune stage reads) is the EMA, not the live model: log both
        ema = {f"ema_{k}": v for k, v in gamma_stats(prunable_bns(trainer.ema.ema)).items()} if trainer.ema else {}
        stats = {"epoch": trainer.epoch + 1, "sr": self.strength(trainer), **gamma_stats(self._bns), **ema}
        shown = "ema_" if ema else ""  # what the prune stage will see
        LOGGER.info(
            f"sparsity: sr {stats['sr']:.2e}, mean |gamma| {stats[shown + 'gamma_mean']:.4f}, "
            f"{stats[shown + 'gamma_small']:.1%} of {len(self._bns)} prunable BNs' gammas below 1e-2"
            f"{' (EMA, the saved model)' if ema else ''}"
        )
        _append_csv(Path(trainer.save_dir) / "sparsity.csv", stats)

    def attach(self, model: YOLO) -> None:
        model.add_callback("on_train_epoch_start", self.on_train_epoch_start)
        model.add_callback("on_fit_epoch_end", self.on_fit_epoch_end)


def _append_csv(path: Path, row: dict) -> None:
    """Add an epoch's row to a CSV file, rewriting it whole (atomically) so a killed run never leaves half a line.

    Rows of this epoch and later ones go first: a resumed run redoes the epochs after its last.pt, and each epoch
    appears once, as the run that finished it logged it.
    """
    kept = []
    if path.exists():
        with open(path, newline="") as f:
            kept = [r for r in csv.DictReader(f) if int(r["epoch"]) < row["epoch"]]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(row), lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows([*kept, row])
    write_text(path, buffer.getvalue())


def check_device(device: str) -> None:
    """Fail in one line when `device` names hardware this machine lacks (ultralytics' own message is ten lines)."""
    try:
        select_device(device, verbose=False)
    except ValueError:
        raise SlimError(f"device={device!r} is not available here: torch sees {torch.cuda.device_count()} CUDA "
                        "GPU(s); pass device=cpu, or the index of a GPU this machine has") from None


def adapt_classes_(model: nn.Module, names: dict) -> str | None:
    """Fit a model to a dataset with another class count, in place: only the head's class outputs are rebuilt.

    The body and every other head layer keep their (pruned) widths and weights; the names, the class count
    and the loss (built lazily from the head's nc by ultralytics) follow the dataset.

    Returns:
        One line saying what was rebuilt, or None when the class count already matches (nothing changes).
    """
    old = len(model.names) if isinstance(getattr(model, "names", None), (dict, list)) else model.model[-1].nc
    if old == len(names):
        return None
    head = model.model[-1]
    before = sum(p.numel() for p in head.parameters())
    rebuilt = rebuild_class_outputs_(head, len(names))
    model.names = dict(names)
    model.nc = len(names)
    if isinstance(getattr(model, "yaml", None), dict):
        model.yaml["nc"] = len(names)
    model.criterion = None  # a cached loss holds the old class count
    change = sum(p.numel() for p in head.parameters()) - before
    return (f"classes: the model has {old}, the dataset {len(names)}: rebuilt the {type(head).__name__} head's class "
            f"outputs ({', '.join(rebuilt)}; {change:+d} parameters), every other layer kept as it is")


def train(source: str | Path, args: dict, keep_architecture: bool, sparsity=None, new_classes: bool = False,
          inputs_checked: bool = False) -> Path:
    """Run ultralytics training and return the path of the best checkpoint.

    Args:
        source: a model yaml (fresh training) or a .pt checkpoint.
        args: ultralytics training arguments (data, epochs, imgsz, project, name, ...).
        keep_architecture: train the loaded module as it is (pruned models, sparsity stage).
        sparsity: a SparsityCallback or TargetedSparsityCallback to attach, or None.
        new_classes: a checkpoint may go to a dataset with another class count: its class outputs are rebuilt.
        inputs_checked: the caller ran check_inputs on these already (the stages do, before they claim a folder).
    """
    if not inputs_checked:  # resume (no data given): the run's own dataset
        check_inputs(source, args.get("data"), new_classes=new_classes)
    model = YOLO(str(source))
    if new_classes and model.ckpt:
        message = adapt_classes_(model.model, read_dataset(args["data"], model.task, ())["names"])
        if message:
            LOGGER.info(message)
    if sparsity is not None:
        sparsity.attach(model)
    trainer = TRAINERS[model.task] if keep_architecture else None
    model.train(trainer=trainer, **args)
    best = Path(model.trainer.best)
    return best if best.exists() else Path(model.trainer.last)
