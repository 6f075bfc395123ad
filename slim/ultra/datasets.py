"""Datasets: read a dataset description with ultralytics' own checks (never a download); letterbox an image.

Fail in one line when it is missing, its images are, or its classes differ from the model's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from torch import nn
from ultralytics.data.augment import LetterBox
from ultralytics.data.utils import IMG_FORMATS, check_cls_dataset, check_det_dataset, img2label_paths
from ultralytics.nn.tasks import guess_model_task, yaml_model_load

from slim.errors import SlimError
from slim.ultra.checkpoints import load_model


def check_inputs(
    source: str | Path, data: str | None, splits: tuple = ("train", "val"), new_classes: bool = False
) -> tuple | None:
    """Fail before a stage writes anything: the model loads, the dataset reads, and their classes agree.

    Returns:
        The checkpoint as load_model gives it, (model, checkpoint dict), for the caller to use; None for a yaml.

    Args:
        source: a model yaml (fresh training: the dataset sets the classes) or a .pt checkpoint.
        data: the dataset yaml (or classification folder); None means the checkpoint's own (resume).
        splits: the dataset splits whose images must exist.
        new_classes: accept a dataset with another class count (the head's class outputs get rebuilt).
    """
    if str(source).endswith((".yaml", ".yml")):
        read_dataset(data, guess_model_task(_model_yaml(source)), splits)
        return None
    model, ckpt = load_model(source)
    data = data or ckpt.get("train_args", {}).get("data")
    if new_classes:
        read_dataset(data, model.task, splits)
    else:
        check_classes(model, data, splits)
    return model, ckpt


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
    if task != "classify":
        check_task(info, task, data, splits)
    return info


# what one label line holds for each task, and how many values that is (ultralytics' label formats)
_LABEL_FORMATS = {
    "detect": "class and box (5 values) or polygon",
    "segment": "class and a polygon of 3 or more points (7 or more values)",
    "obb": "class and 4 corner points (9 values)",
    "pose": "class, box and keypoints",
}


def check_task(info: dict, task: str, data: str, splits: tuple = ("val",)) -> None:
    """Fail in one line when the dataset's labels are not the model's task (an obb model on detect boxes), which
    ultralytics only finds deep inside its data loader. The first labelled image of the splits decides."""
    values = _first_label_width(info, splits)
    if values is None:  # no labels yet: nothing to tell, ultralytics trains on background images
        return
    if task == "pose":
        shape = info.get("kpt_shape")
        if not shape:
            raise SlimError(f"dataset '{data}' has no kpt_shape, but the model is a pose model: pass data= a pose "
                            "dataset (its yaml sets kpt_shape)")
        ok = values == 5 + shape[0] * shape[1]
    else:
        ok = {"detect": values == 5 or values >= 7 and values % 2, "segment": values >= 7 and values % 2,
              "obb": values == 9}.get(task, True)
    if not ok:
        raise SlimError(f"dataset '{data}' does not fit the model's task ({task}): its labels have {values} values "
                        f"per object, where the model needs {_LABEL_FORMATS[task]}; pass data= a dataset labelled "
                        f"for {task}")


def _first_label_width(info: dict, splits: tuple, images_to_look_at: int = 50) -> int | None:
    """How many values a label line of the dataset holds, from the first labelled image found; None if none."""
    for split in splits:
        for root in _as_list(info.get(split)):
            for label in img2label_paths([str(p) for p in _some_images(Path(root), images_to_look_at)]):
                lines = Path(label).read_text().split("\n") if Path(label).is_file() else []
                widths = [len(line.split()) for line in lines if line.strip()]
                if widths:
                    return widths[0]
    return None


def _some_images(root: Path, n: int) -> list:
    """The first n image paths of a split given as a folder or as a .txt list of images."""
    if root.is_file() and root.suffix == ".txt":
        paths = [(root.parent / line.strip()) for line in root.read_text().splitlines() if line.strip()]
        return paths[:n]
    images = (p for p in root.rglob("*") if p.suffix[1:].lower() in IMG_FORMATS)  # lazy: a split may be large
    return [p for _, p in zip(range(n), images)]


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


def letterbox(image: np.ndarray, imgsz: int) -> np.ndarray:
    """An (H, W, 3) BGR image resized keeping its aspect and padded with 114 to (imgsz, imgsz, 3), centred: the way
    ultralytics' predictor feeds an ONNX model of fixed size."""
    return LetterBox((imgsz, imgsz), auto=False)(image=image)
