"""Everything that touches ultralytics internals: checkpoints, trainers, the sparsity hook, validation.

An ultralytics upgrade should break here and nowhere else. Only subclassing and callbacks, no patching.
"""

from __future__ import annotations

import copy
import csv
import os
import tempfile
from datetime import datetime
from pathlib import Path

import torch
import ultralytics
from torch import nn
from ultralytics import YOLO
from ultralytics.data.utils import check_cls_dataset, check_det_dataset
from ultralytics.models.yolo import classify, detect, obb, pose, segment
from ultralytics.nn.tasks import BaseModel, load_checkpoint
from ultralytics.utils import LOGGER, RANK, SETTINGS
from ultralytics.utils.torch_utils import get_flops, unwrap_model

from slim.errors import SlimError
from slim.groups import prunable_bns
from slim.sparsity import gamma_stats, register_l1_hook, sr_at

SETTINGS.update({"sync": False})  # no analytics events

BASE_TRAINERS = {
    "detect": detect.DetectionTrainer,
    "segment": segment.SegmentationTrainer,
    "pose": pose.PoseTrainer,
    "obb": obb.OBBTrainer,
    "classify": classify.ClassificationTrainer,
}


# --- checkpoints ---------------------------------------------------------------------------------------------
def load_model(path: str | Path) -> tuple:
    """Load an ultralytics checkpoint as (model in fp32 eval mode, checkpoint dict), or fail in one clear line."""
    path = Path(path)
    if not path.exists():
        if path.parent == Path(".") and path.suffix == ".pt":
            raise SlimError(f"weights '{path}' not found locally; slim never downloads weights: pass a local .pt path")
        raise SlimError(f"weights file '{path}' does not exist")
    if path.is_dir():
        raise SlimError(f"weights '{path}' is a folder; pass a .pt file")
    if path.stat().st_size == 0:
        raise SlimError(f"weights file '{path}' is empty")
    try:
        model, ckpt = load_checkpoint(str(path))
    except Exception as e:  # noqa: BLE001 - every way a file can be bad ends in one line for the user
        raise SlimError(_diagnose(path, e)) from e
    if not isinstance(model, BaseModel):
        raise SlimError(f"'{path}' holds a {type(model).__name__}, not an ultralytics YOLO model")
    return model, ckpt


def _diagnose(path: Path, error: Exception) -> str:
    """Say what kind of bad file this is: not a checkpoint, a bare state_dict, or a checkpoint of something else."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # noqa: BLE001
        first = str(e).strip().splitlines()[0][:120] if str(e).strip() else type(e).__name__
        return f"'{path}' is not a readable PyTorch checkpoint (corrupt or truncated?): {first}"
    if isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return f"'{path}' is a plain state_dict; slim needs a full ultralytics checkpoint (a .pt from YOLO training or slim)"
    if isinstance(obj, dict) and not any(isinstance(obj.get(k), nn.Module) for k in ("model", "ema")):
        return f"'{path}' is not an ultralytics checkpoint: it has no 'model' entry"
    return f"'{path}' could not be loaded as an ultralytics model: {type(error).__name__}: {error}"


def save_checkpoint(model: nn.Module, path: Path, train_args: dict, slim_meta: dict) -> Path:
    """Write `model` as an ultralytics checkpoint (fp16, like ultralytics' own), atomically.

    `slim_meta` (the pruning plan and its settings) travels under the key "slim"; ultralytics ignores it.
    """
    ckpt = {
        "date": datetime.now().isoformat(),
        "version": ultralytics.__version__,
        "epoch": -1,
        "best_fitness": None,
        "model": copy.deepcopy(model).half(),
        "ema": None,
        "updates": None,
        "optimizer": None,
        "train_args": train_args,
        "slim": slim_meta,
    }
    return write_atomic(path, lambda f: torch.save(ckpt, f))


def write_atomic(path: Path, write) -> Path:
    """Call write(file_object) on a temporary file beside `path`, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def check_classes(model: nn.Module, data: str) -> None:
    """Fail in one line when a dataset is missing or its class count differs from the model's."""
    try:
        info = check_cls_dataset(data) if model.task == "classify" else check_det_dataset(data, autodownload=False)
    except Exception as e:  # noqa: BLE001 - ultralytics raises several types for a missing or malformed dataset
        raise SlimError(f"dataset '{data}' could not be read: {str(e).strip().splitlines()[0]}") from e
    nc = len(model.names) if isinstance(getattr(model, "names", None), (dict, list)) else None
    if nc is not None and info["nc"] != nc:
        raise SlimError(
            f"dataset '{data}' has {info['nc']} classes but the model has {nc}; use a dataset with the model's classes"
        )


def model_size(model: nn.Module, imgsz: int) -> dict:
    """Parameter count and GFLOPs at imgsz (ultralytics' own counter)."""
    return {"params": sum(p.numel() for p in model.parameters()), "gflops": round(get_flops(model, imgsz), 3)}


# --- trainers ------------------------------------------------------------------------------------------------
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
        stats = {"epoch": trainer.epoch + 1, "sr": self.strength(trainer), **gamma_stats(self._bns)}
        LOGGER.info(
            f"sparsity: sr {stats['sr']:.2e}, mean |gamma| {stats['gamma_mean']:.4f}, "
            f"{stats['gamma_small']:.1%} of {len(self._bns)} prunable BNs' gammas below 1e-2"
        )
        _append_csv(Path(trainer.save_dir) / "sparsity.csv", stats)

    def attach(self, model: YOLO) -> None:
        model.add_callback("on_train_epoch_start", self.on_train_epoch_start)
        model.add_callback("on_fit_epoch_end", self.on_fit_epoch_end)


def _append_csv(path: Path, row: dict) -> None:
    new = not path.exists()
    with open(path, "a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(row))
        if new:
            writer.writeheader()
        writer.writerow(row)


def train(source: str | Path, args: dict, keep_architecture: bool, sparsity: SparsityCallback | None = None) -> Path:
    """Run ultralytics training and return the path of the best checkpoint.

    Args:
        source: a model yaml (fresh training) or a .pt checkpoint.
        args: ultralytics training arguments (data, epochs, imgsz, project, name, ...).
        keep_architecture: train the loaded module as it is (pruned models, sparsity stage).
    """
    if not str(source).endswith((".yaml", ".yml")):
        loaded, ckpt = load_model(source)
        check_classes(loaded, args.get("data") or ckpt.get("train_args", {}).get("data"))  # resume: the run's data
    model = YOLO(str(source))
    if sparsity is not None:
        sparsity.attach(model)
    trainer = TRAINERS[model.task] if keep_architecture else None
    model.train(trainer=trainer, **args)
    best = Path(model.trainer.best)
    return best if best.exists() else Path(model.trainer.last)


def validate(weights: str | Path, args: dict) -> dict:
    """Validate a checkpoint and return the same fields for every model, so any two runs compare."""
    model, _ = load_model(weights)
    check_classes(model, args["data"])
    metrics = YOLO(str(weights)).val(**args)
    return {"weights": str(weights), **model_size(model, args.get("imgsz", 640)), **_metric_fields(metrics)}


def validate_onnx(onnx_path: str | Path, args: dict) -> dict:
    """Validate an ONNX file through ultralytics' own ONNX Runtime backend (task read from the file's metadata)."""
    metrics = YOLO(str(onnx_path)).val(**args)
    return {"weights": str(onnx_path), **_metric_fields(metrics)}


def _metric_fields(metrics) -> dict:
    if hasattr(metrics, "top1"):
        fields = {"top1": float(metrics.top1), "top5": float(metrics.top5)}
    else:
        box = metrics.box
        fields = {"precision": float(box.mp), "recall": float(box.mr), "mAP50": float(box.map50),
                  "mAP50_95": float(box.map)}
    return {**fields, "speed_ms": {k: round(float(v), 3) for k, v in metrics.speed.items()}}
