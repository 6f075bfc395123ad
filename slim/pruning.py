"""The prune stage: one global |gamma| threshold (from a ratio, a threshold or a GFLOPs target) picks the channels,
and a physically smaller checkpoint is rebuilt with the kept weights; or the same on one file (`--out`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import warnings
from pathlib import Path

from torch import nn

from slim import lock, ultra
from slim.config import Config
from slim.errors import SlimError, UsageError
from slim.groups import analyze
from slim.io import write_json
from slim.plan import PruningPlan, build_plan
from slim.sparsity import SMALL_GAMMA, gamma_stats
from slim.stage_table import STAGES
from slim.stages import finished_output, input_for, stage_run
from slim.surgery import prune_model


def prune(cfg: Config, weights: str | Path | None = None, out: str | Path | None = None, exist_ok: bool = False):
    """Stage 3: choose channels by one global |gamma| threshold (from a ratio, a threshold or a GFLOPs target) and
    rebuild a physically smaller model. With `out`, the pruned checkpoint goes there and no stage folder is made.

    Every check runs before anything is written; the checkpoint is written atomically.

    Returns:
        (path of the pruned checkpoint, PruningPlan, {"before": sizes, "after": sizes}).
    """
    if out is None:
        lock.check_free(cfg.stage_dir("prune"))
    source = input_for(cfg, "prune", weights)
    inputs = [source] + ([_dense_path(cfg)] if cfg.prune.weights_from else [])
    target = _checked_out(Path(out), inputs, exist_ok) if out is not None else None
    pruned = prune_checkpoint(cfg, source)
    if target is None:
        with stage_run(cfg, "prune", source, exist_ok) as folder:
            target = pruned.save(folder / STAGES["prune"].writes)
    else:
        pruned.save(target)
    return target, pruned.plan, pruned.sizes


def _checked_out(target: Path, inputs: list, exist_ok: bool) -> Path:
    """prune --out: a file that is neither an input (--weights, prune.weights_from) nor a folder, and replaced only
    with exist_ok."""
    if any(target.resolve() == source.resolve() for source in inputs):
        raise UsageError(f"--out {target} is an input checkpoint; slim never overwrites its input: pass another --out")
    if target.is_dir() or str(target).endswith(("/", os.sep)):
        raise UsageError(f"--out {target} is a folder; pass a file path for the pruned checkpoint, e.g. "
                         f"{target / 'pruned.pt'}")
    if target.exists() and not exist_ok:
        raise UsageError(f"{target} already exists; pass --exist-ok to replace it")
    return target


@dataclasses.dataclass
class PrunedCheckpoint:
    """A pruned model in memory, with what its checkpoint records: the source's train_args and slim's plan."""

    model: nn.Module
    train_args: dict
    meta: dict  # {"plan", "source", "fold_beta", "sizes"}, saved under the checkpoint's "slim" key and as plan.json
    plan: PruningPlan
    sizes: dict  # {"before": sizes, "after": sizes} at the config's image size

    def save(self, target: Path) -> Path:
        """The checkpoint at `target` (atomically), its plan beside it as <target>.plan.json."""
        ultra.save_checkpoint(self.model, target, self.train_args, self.meta)
        write_json(target.with_suffix(".plan.json"), self.meta)
        return target


def prune_checkpoint(cfg: Config, source: Path) -> PrunedCheckpoint:
    """Prune the checkpoint `source` with cfg.prune, sized at cfg.imgsz; nothing is written."""
    p = cfg.prune
    dense = _dense_path(cfg) if p.weights_from else None
    model, ckpt = ultra.load_model(source)
    graph = analyze(model)
    _warn_if_not_sparse(_ranked_bns(model, graph, source))
    plan = build_plan(model, graph, p.ratio, p.threshold, p.min_channels, p.min_fraction, p.round_to,
                      p.target_gflops, cfg.imgsz)
    if plan.floored:
        shown = ", ".join(plan.floored[:3]) + (f" and {len(plan.floored) - 3} more" if len(plan.floored) > 3 else "")
        warnings.warn(f"{len(plan.floored)} layer(s) held at the per-layer floor (min_channels {p.min_channels}, "
                      f"min_fraction {p.min_fraction}) so that none is emptied: {shown}")
    if dense:  # the same layers (checked), so the sparse model's graph, which names them, serves
        model, ckpt = _dense_model(dense, model, source)
    pruned = prune_model(model, plan, fold_beta=p.fold_beta, graph=graph)
    sizes = {"before": ultra.model_size(model, cfg.imgsz), "after": ultra.model_size(pruned, cfg.imgsz)}
    meta = {"plan": json.loads(plan.to_json()), "source": str(source), "fold_beta": p.fold_beta, "sizes": sizes}
    if dense:
        meta["weights_from"] = str(dense)
    return PrunedCheckpoint(pruned, ckpt.get("train_args", {}), meta, plan, sizes)


def _dense_path(cfg: Config) -> Path:
    """prune.weights_from as a file: "train" is the train stage's output; checked before any work."""
    if cfg.prune.weights_from == "train":
        return finished_output(cfg, "train")
    path = Path(cfg.prune.weights_from)
    if not path.is_file():
        raise SlimError(f"prune.weights_from: '{path}' does not exist: pass the checkpoint sparsity training started "
                        "from (or \"train\", the train stage's output)")
    return path


def _dense_model(path: Path, sparse: nn.Module, source: Path) -> tuple:
    """prune.weights_from: the model sparsity training started from, checked to have `sparse`'s every layer.

    The sparse model only chooses the channels; the kept weights come from here, before sparsity training pulled
    them. Finetuned as long as sparsity + finetune this measured within the seeds' spread of l1's own weights
    (BENCHMARKS.md, "l1's channels with the dense model's weights"), so it is an option, off by default.
    """
    try:
        model, ckpt = ultra.load_model(path)
    except SlimError as e:
        raise SlimError(f"prune.weights_from: {e}") from e
    want = {k: tuple(v.shape) for k, v in sparse.state_dict().items()}
    have = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    if have != want:
        diff = next((k for k in want if have.get(k) != want[k]), None) or next(k for k in have if k not in want)
        raise SlimError(f"prune.weights_from '{path}' is not the model '{source}' was trained from: {diff} is "
                        f"{have.get(diff, 'missing')} there, {want.get(diff, 'missing')} in the sparse model; pass "
                        "the checkpoint sparsity training started from")
    return model, ckpt


def _ranked_bns(model: nn.Module, graph, source: Path) -> list:
    """The BatchNorms whose |gamma| ranks the prunable channels; one clear error when the model has none."""
    bns = list(graph.prunable_bns(model).values())
    if bns:
        return bns
    if not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
        raise SlimError(f"'{source}' has no BatchNorm layers (fused for inference?), so there is nothing to prune: "
                        "network slimming ranks channels by BN gamma; pass the checkpoint from before fusing")
    raise SlimError(f"'{source}' has no prunable BatchNorm channels, so there is nothing to prune: every BN feeds "
                    "a residual add, a head or a module slim does not know")


def _warn_if_not_sparse(bns: list) -> None:
    """Pruning a model that never had sparsity training destroys it (see NOTES): say so, then proceed."""
    small = gamma_stats(bns)["gamma_small"]
    if small < 0.05:
        warnings.warn(
            f"only {small:.1%} of prunable gammas are below {SMALL_GAMMA:g}: this model looks like it was never "
            f"sparsity-trained, and pruning it will cost accuracy (run `slim sparsity` first)"
        )
