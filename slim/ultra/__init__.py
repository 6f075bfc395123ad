"""Everything that touches ultralytics internals, one module per job: an upgrade breaks here and nowhere else.

arguments    ultralytics' argument tables and range check, for validating slim's config
checkpoints  find, load, diagnose and save ultralytics checkpoints (atomically); where a run would resume
datasets     read a dataset with ultralytics' checks; classes agree with the model; letterbox an image
exporter     export a checkpoint to ONNX with ultralytics' exporter; the model that export is checked against
modules      the ultralytics module classes slim.groups recognises (isinstance checks), re-exported
trainers     trainers that keep a pruned architecture; the sparsity callback; new classes; device; train()
targeted     the targeted-sparsity callback; the optimizer settings a checkpoint was trained with
validation   validate a checkpoint or an ONNX file; params and GFLOPs

Callers use the names below (`ultra.load_model`), not the submodules, except slim.config (`arguments`) and
slim.groups (`modules`). A name's submodule is imported at its first use, so `import slim.ultra.arguments` loads
ultralytics' argument tables and not its trainers.

What crosses the boundary: the module classes in `modules` (Conv, DWConv, Concat, Bottleneck, C2f, C3, C3k2, C3k,
SPP, SPPF, C2PSA, PSABlock, Attention, Proto, Classify, Detect, Segment, Pose, OBB), which slim.groups matches by
type. Besides them, ultralytics models travel as torch nn.Modules, and a few of their attributes are read or set by
name outside this package: slim.groups reads each layer's `f` (its inputs), `add`, `n` and `d`; slim.surgery sets a
split block's `c`; slim.heads rebuilds a head's class outputs by its branch names (`cv3`, `linear`, `nc`, `no`).
"""

import importlib

_HOMES = {
    "check_resumable": "checkpoints", "check_weights_file": "checkpoints", "load_model": "checkpoints",
    "resume_point": "checkpoints", "save_checkpoint": "checkpoints",
    "check_classes": "datasets", "check_inputs": "datasets", "letterbox": "datasets", "read_dataset": "datasets",
    "export_copy": "exporter", "exported_model": "exporter",
    "BASE_TRAINERS": "trainers", "TRAINERS": "trainers", "KeepArchitecture": "trainers",
    "SparsityCallback": "trainers", "adapt_classes_": "trainers", "check_device": "trainers", "train": "trainers",
    "TargetedSparsityCallback": "targeted", "inherited_optimizer": "targeted",
    "model_size": "validation", "validate": "validation", "validate_onnx": "validation",
}
__all__ = sorted(_HOMES)


def __getattr__(name: str):
    """Import the submodule that holds `name` at its first use, and keep the name here."""
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
    globals()[name] = value
    return value
