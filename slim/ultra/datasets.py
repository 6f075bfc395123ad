"""Datasets: read a dataset description with ultralytics' own checks (never a download).

Fail in one line when it is missing, its images are, or its classes differ from the model's.
"""

from __future__ import annotations

from pathlib import Path

from torch import nn
from ultralytics.data.utils import check_cls_dataset, check_det_dataset
from ultralytics.nn.tasks import guess_model_task, yaml_model_load

from slim.errors import SlimError
from slim.ultra.checkpoints import load_model


def check_inputs(
    source: str | Path, data: str | None, splits: tuple = ("train", "val"), new_classes: bool = False
) -> None:
    """Fail before a stage writes anything: the model loads, the dataset reads, and their classes agree.

    Args:
        source: a model yaml (fresh training: the dataset sets the classes) or a .pt checkpoint.
        data: the dataset yaml (or classification folder); None means the checkpoint's own (resume).
        splits: the dataset splits whose images must exist.
        new_classes: accept a dataset with another class count (the head's class outputs get rebuilt).
    """
    if str(source).endswith((".yaml", ".yml")):
        read_dataset(data, guess_model_task(_model_yaml(source)), splits)
        return
    model, ckpt = load_model(source)
    data = data or ckpt.get("train_args", {}).get("data")
    if new_classes:
        read_dataset(data, model.task, splits)
    else:
        check_classes(model, data, splits)


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
            f"dataset '{data}' has {info['nc']} classes but the model has {nc}; use a dataset with the model's classes, "
            "or finetune onto it (slim finetune) to rebuild the head for its classes"
        )
