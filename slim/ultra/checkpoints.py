"""Checkpoints: find (a bare asset name the way ultralytics does), load, diagnose a bad file, save atomically.

Checkpoints stay in ultralytics' own format, so `YOLO("pruned.pt")` works without slim.
"""

from __future__ import annotations

import codecs
import copy
from datetime import datetime
from pathlib import Path

import torch
import ultralytics
from torch import nn
from ultralytics.nn.tasks import BaseModel, load_checkpoint
from ultralytics.utils import ONLINE, SETTINGS
from ultralytics.utils.downloads import attempt_download_asset

from slim.errors import SlimError
from slim.io import write_atomic


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


def resume_point(last: str | Path) -> tuple[int, int] | None:
    """(epochs done, epochs in all) of the interrupted run that wrote `last`; None when that run finished (ultralytics
    strips the optimizer from a finished run's checkpoints, and marks them epoch -1)."""
    _, ckpt = load_model(last)
    if ckpt.get("optimizer") is None or ckpt.get("epoch", -1) < 0:
        return None
    return ckpt["epoch"] + 1, ckpt.get("train_args", {}).get("epochs")


def check_resumable(last: str | Path) -> tuple[int, int]:
    """Fail in one line unless `last` is the last.pt of an interrupted run; (epochs done, epochs in all) if it is."""
    point = resume_point(last)
    if point is None:
        epochs = load_model(last)[1].get("train_args", {}).get("epochs", "all")
        raise SlimError(f"nothing to resume: the run that wrote '{last}' finished ({epochs} epochs); start a new one "
                        "with --exist-ok, or name=<new name>")
    return point
