"""Everything that touches ultralytics internals, one module per job: an upgrade breaks here and nowhere else.

arguments    ultralytics' argument tables and range check, for validating slim's config
checkpoints  find, load, diagnose and save ultralytics checkpoints (atomically); where a run would resume
datasets     read a dataset with ultralytics' checks; classes agree with the model
trainers     trainers that keep a pruned architecture; the sparsity callback; new classes; device; train()
targeted     the targeted-sparsity callback; the optimizer settings a checkpoint was trained with
validation   validate a checkpoint or an ONNX file; params and GFLOPs

Callers use the names below (`ultra.load_model`), not the submodules; slim.config and slim.config_schema
import `arguments`' tables by name.
"""

from slim.ultra.checkpoints import check_resumable, check_weights_file, load_model, resume_point, save_checkpoint
from slim.ultra.datasets import check_classes, check_inputs, read_dataset
from slim.ultra.trainers import (
    BASE_TRAINERS,
    TRAINERS,
    KeepArchitecture,
    SparsityCallback,
    adapt_classes_,
    check_device,
    train,
)
from slim.ultra.targeted import TargetedSparsityCallback, inherited_optimizer
from slim.ultra.validation import model_size, validate, validate_onnx

__all__ = [
    "BASE_TRAINERS", "TRAINERS", "KeepArchitecture", "SparsityCallback", "TargetedSparsityCallback", "adapt_classes_",
    "check_classes", "check_device", "check_inputs", "check_resumable", "check_weights_file", "inherited_optimizer",
    "load_model", "model_size", "read_dataset", "resume_point", "save_checkpoint", "train", "validate", "validate_onnx",
]
