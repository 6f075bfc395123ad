"""Everything that touches ultralytics internals: checkpoints, trainers, the sparsity hook, validation.

An ultralytics upgrade should break here and nowhere else. Only subclassing and callbacks, no patching.
"""

from __future__ import annotations

import codecs
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
from ultralytics.nn.tasks import BaseModel, guess_model_task, load_checkpoint, yaml_model_load
from ultralytics.utils import LOGGER, ONLINE, RANK, SETTINGS
from ultralytics.utils.downloads import attempt_download_asset
from ultralytics.utils.torch_utils import get_flops, unwrap_model

from slim.errors import SlimError
from slim.groups import prunable_bns
from slim.sparsity import gamma_stats, register_l1_hook, sr_at

_UMASK = os.umask(0o022)  # read once at import: os.umask can only be read by setting it, which races with threads
os.umask(_UMASK)

BASE_TRAINERS = {
    "detect": detect.DetectionTrainer,
    "segment": segment.SegmentationTrainer,
    "pose": pose.PoseTrainer,
    "obb": obb.OBBTrainer,
    "classify": classify.ClassificationTrainer,
}


# --- checkpoints ---------------------------------------------------------------------------------------------
def check_weights_file(path: str | Path) -> Path:
    """Fail in one line when `path` cannot be a checkpoint at all (missing, a folder, empty), before any loading."""
    path = Path(path)
    if not path.exists() and path.parent == Path(".") and path.suffix == ".pt":
        path = _find_asset(path)
    if not path.exists():
        raise SlimError(f"weights file '{path}' does not exist: check the path, or pass --weights with an existing .pt")
    if path.is_dir():
        raise SlimError(f"weights '{path}' is a folder; pass a .pt file")
    if path.stat().st_size == 0:
        raise SlimError(f"weights file '{path}' is empty (0 bytes, an interrupted copy?): pass a complete .pt file")
    return path


def _find_asset(name: Path) -> Path:
    """A bare name such as yolov8s.pt, the way ultralytics resolves it: the current folder, then the settings'
    weights_dir, then a download (where ultralytics is online). Offline, one line says where to put the file."""
    local = SETTINGS["weights_dir"] / name
    if local.exists():
        return local
    where = f"put it in {Path.cwd()} or in ultralytics' weights_dir {SETTINGS['weights_dir']}, or pass a path"
    if not ONLINE:  # YOLO_OFFLINE (slim's offline guard sets it) or no network
        raise SlimError(f"weights '{name}' not found and ultralytics is offline, so it cannot download it: {where}")
    try:
        return Path(attempt_download_asset(str(name)))
    except Exception as e:  # noqa: BLE001 - a failed download is one line, whatever ultralytics raised
        raise SlimError(f"weights '{name}' not found and its download failed ({type(e).__name__}): {where}") from e


def load_model(path: str | Path) -> tuple:
    """Load an ultralytics checkpoint as (model in fp32 eval mode, checkpoint dict), or fail in one clear line."""
    path = check_weights_file(path)
    try:
        # absolute: ultralytics re-downloads a damaged file requested by a bare asset name such as yolov8n.pt
        model, ckpt = load_checkpoint(str(path.resolve()))
    except Exception as e:  # noqa: BLE001 - every way a file can be bad ends in one line for the user
        raise SlimError(_diagnose(path, e)) from e
    if not isinstance(model, BaseModel):
        raise SlimError(f"'{path}' holds a {type(model).__name__}, not an ultralytics YOLO model: pass a .pt written "
                        "by YOLO training or by slim")
    return model, ckpt


_TO_DO = "pass a .pt written by YOLO training or by slim"


def _diagnose(path: Path, error: Exception) -> str:
    """Say what kind of bad file this is: not a checkpoint, a bare state_dict, or a checkpoint of something else."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=False)
    except ModuleNotFoundError as e:
        return (f"'{path}' holds objects of the Python module '{e.name}', which cannot be imported here: "
                f"add the folder that holds {e.name} to PYTHONPATH")
    except Exception:  # noqa: BLE001
        return f"'{path}' is not a readable PyTorch checkpoint: {_unreadable_kind(path)}; {_TO_DO}"
    if isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return f"'{path}' is a plain state_dict; slim needs a full ultralytics checkpoint ({_TO_DO})"
    if not isinstance(obj, dict):
        return f"'{path}' holds a {type(obj).__name__}, not an ultralytics checkpoint: {_TO_DO}"
    if not any(isinstance(obj.get(k), nn.Module) for k in ("model", "ema")):
        return f"'{path}' is not an ultralytics checkpoint: it has no 'model' entry; {_TO_DO}"
    first = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"'{path}' could not be loaded as an ultralytics model ({type(error).__name__}: {first}); {_TO_DO}"


def _unreadable_kind(path: Path) -> str:
    """Why torch.load failed, guessed from the first bytes: a cut-off archive, a text file, or other bytes."""
    with open(path, "rb") as f:
        head = f.read(512)
    if head.startswith(b"PK\x03\x04") or head.startswith(b"\x80"):  # torch's zip format, or its legacy pickle
        return "it is damaged or truncated (an interrupted save or copy?)"
    try:
        text = codecs.getincrementaldecoder("utf-8")().decode(head)  # a character cut at byte 512 is fine
    except UnicodeDecodeError:
        text = "\0"
    if all(c.isprintable() or c.isspace() for c in text):
        return "it is a text file"
    return "its bytes are not a PyTorch file"


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
    """Call write(file_object) on a temporary file beside `path`, then rename it into place.

    A reader, or a process killed mid-write, sees either the old file or the complete new one, never part of one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())  # the bytes are on disk before the rename makes them the file
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes it owner-only; give it the permissions open() would
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


# --- datasets ------------------------------------------------------------------------------------------------
def check_inputs(source: str | Path, data: str | None, splits: tuple = ("train", "val")) -> None:
    """Fail before a stage writes anything: the model loads, the dataset reads, and their classes agree.

    Args:
        source: a model yaml (fresh training: the dataset sets the classes) or a .pt checkpoint.
        data: the dataset yaml (or classification folder); None means the checkpoint's own (resume).
        splits: the dataset splits whose images must exist.
    """
    if str(source).endswith((".yaml", ".yml")):
        read_dataset(data, guess_model_task(_model_yaml(source)), splits)
        return
    model, ckpt = load_model(source)
    check_classes(model, data or ckpt.get("train_args", {}).get("data"), splits)


def _model_yaml(source: str | Path) -> dict:
    try:
        return yaml_model_load(str(source))
    except FileNotFoundError:
        raise SlimError(f"model yaml '{source}' is neither a file nor an ultralytics architecture: set model: "
                        "(--weights) to e.g. yolov8n.yaml, or to a trained .pt") from None


def read_dataset(data: str | None, task: str, splits: tuple = ("val",)) -> dict:
    """Read a dataset description (ultralytics' own checks, never a download) and check its image folders exist.

    Returns:
        ultralytics' dataset dict (with "nc", "names" and absolute split paths).
    """
    if not data:
        raise SlimError("no dataset given: set data: to your dataset's yaml")
    if task == "classify" and not Path(data).is_dir():  # ultralytics would try to download a missing one
        raise SlimError(f"classification dataset folder '{data}' does not exist: set data: to a local image folder")
    try:
        info = check_cls_dataset(data) if task == "classify" else check_det_dataset(data, autodownload=False)
    except Exception as e:  # noqa: BLE001 - ultralytics raises several types for a missing or malformed dataset
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise SlimError(f"dataset '{data}' could not be read: {first}; fix it, or set data: to another dataset") from e
    for split in splits:
        missing = [p for p in _as_list(info.get(split)) if not Path(p).exists()]
        if missing:
            raise SlimError(f"dataset '{data}': the {split} images at '{missing[0]}' do not exist; fix '{split}:' "
                            "in the dataset yaml")
    return info


def _as_list(paths) -> list:
    return [] if paths is None else list(paths) if isinstance(paths, (list, tuple)) else [paths]


def check_classes(model: nn.Module, data: str, splits: tuple = ("val",)) -> None:
    """Fail in one line when a dataset is missing or its class count differs from the model's."""
    info = read_dataset(data, model.task, splits)
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
    check_inputs(source, args.get("data"))  # resume (no data given): the run's own dataset
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
