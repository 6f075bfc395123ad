"""The training stages and how every stage runs: each finds its input in the previous stage's folder and writes its
own, inside one stage-run context (refuse an earlier run, claim the folder, finish or release). Pruning: slim/pruning.py.

Layout under <project>/<name>/: train/weights/best.pt -> sparsity/weights/last.pt -> prune/pruned.pt ->
finetune/weights/best.pt, and prune/pruned.pt -> transfer/weights/best.pt (finetuned onto transfer.data).
Any stage can instead be pointed at a user's own file with `weights`.
A stage holds its folder's lock (slim.lock) while it writes there; `resume` continues an interrupted training run.
"""

from __future__ import annotations

import dataclasses
import logging
from contextlib import contextmanager
from pathlib import Path

from torch import nn

from slim import lock, provenance, ultra
from slim.config import Config, dump_config, ultralytics_args
from slim.data import DEMOS, generator_of, make_demo_dataset
from slim.errors import SlimError, UsageError
from slim.groups import analyze
from slim.stage_table import STAGES, TRAINED
from slim.targeted import select_removed

# derived from the one table of stages (slim/stage_table.py)
OUTPUTS = {name: stage.writes for name, stage in STAGES.items()}
PREVIOUS = {name: stage.reads for name, stage in STAGES.items() if stage.reads}
LOG = logging.getLogger("slim")


def model_settings(weights: str | Path) -> dict:
    """The config layer a user's checkpoint brings, read as `YOLO(path).val()` reads it: the image size and dataset
    it was trained with (its train_args), auto device, and outputs under a folder named for the model. The demo's
    data, size, device and folder never apply to it. An architecture yaml brings nothing.
    """
    path = Path(weights)
    if path.suffix in (".yaml", ".yml"):
        return {}
    train_args = ultra.load_model(path)[1].get("train_args") or {}
    layer = {"name": run_name(path), "device": "", "data": str(train_args.get("data") or "")}
    imgsz = train_args.get("imgsz")
    if imgsz:  # ultralytics keeps an int, or [h, w] from a val or export call: slim's sizes are square
        layer["imgsz"] = int(max(imgsz) if isinstance(imgsz, (list, tuple)) else imgsz)
    return layer


def run_name(weights: Path) -> str:
    """The experiment folder for a user's model: the slim run it came from (runs/<name>/<stage>/...), the
    ultralytics run it came from (runs/detect/<run>/weights/best.pt), else the file's name."""
    path = Path(weights).resolve()
    if path.parent.name == "weights":
        run = path.parent.parent
        return run.parent.name if run.name in OUTPUTS else run.name
    if path.parent.name == "prune":
        return path.parent.parent.name
    return path.stem


def output_of(cfg: Config, stage: str) -> Path:
    return cfg.stage_dir(stage) / OUTPUTS[stage]


def input_for(cfg: Config, stage: str, weights: str | Path | None) -> Path:
    """The model a stage reads: `weights` when given, else the previous stage's output."""
    return Path(weights) if weights else finished_output(cfg, PREVIOUS[stage])


def finished_output(cfg: Config, stage: str) -> Path:
    """A stage's output, for the next step to read; an error when it is missing or was made with other settings.

    Only the settings are compared here, not the stage's input: `make pipeline` redoes whole chains.
    """
    path = output_of(cfg, stage)
    point = interrupted(cfg, stage)  # sparsity's output is its last.pt, which an interrupted run has too
    if point:
        raise SlimError(f"the {stage} run in {cfg.stage_dir(stage)} was interrupted after epoch {point[0]} of "
                        f"{point[1]}: finish it with `slim {stage} ... --resume` (the command that started it), "
                        "or pass --weights")
    if not path.exists():
        raise SlimError(f"no {stage} output at {path}: run `slim {stage}` first, or pass --weights")
    saved = provenance.read(cfg.stage_dir(stage))
    changed = provenance.changes(saved, provenance.wanted(cfg, stage, None), with_input=False) if saved else []
    if changed:
        raise SlimError(f"{path} was made with {', '.join(changed)}: redo it with `slim {stage} --exist-ok` "
                        "(or `slim pipeline`), or pass --weights")
    return path


def interrupted(cfg: Config, stage: str) -> tuple[int, int] | None:
    """(epochs done, epochs in all) when the stage's folder holds an interrupted run of it: no finished record,
    and a last.pt that can resume; else None."""
    folder = cfg.stage_dir(stage)
    last = folder / "weights" / "last.pt"
    if stage not in TRAINED or provenance.read(folder) is not None or not last.is_file():
        return None
    try:
        return ultra.resume_point(last)
    except SlimError:  # a last.pt cut short by a kill during its save: nothing to resume from
        return None


@contextmanager
def stage_run(cfg: Config, stage: str, source: str | Path | None, exist_ok: bool):
    """One run of a stage in its folder: refused (once) when the folder is another run's or the input's, then
    claimed (the lock, the pending record, the resolved config), finished on success (the record becomes the
    folder's), released however it ends. Checks that need no folder belong before it: a refused or failed check
    leaves nothing behind. Yields the folder.
    """
    with _locked(cfg, stage) as folder:
        record = provenance.wanted(cfg, stage, source)  # the input is hashed once, here
        _refuse_earlier_run(cfg, stage, source, record, exist_ok)
        provenance.start(folder, record)
        dump_config(cfg, folder / "config.yaml")
        yield folder
        provenance.finish(folder)


@contextmanager
def _locked(cfg: Config, stage: str):
    """The stage's folder, held by this run alone (slim.lock) until the block ends, a crash or a kill included;
    stopped by Ctrl-C after an epoch was saved, it says how to go on."""
    folder = cfg.stage_dir(stage)
    with lock.scope():
        lock.acquire(folder)
        try:
            yield folder
        except KeyboardInterrupt:
            point = interrupted(cfg, stage)
            if point:
                LOG.info(f"{stage}: stopped with {point[0]} of {point[1]} epochs done; the same command "
                         f"with --resume (`slim {stage} ... --resume`) continues from epoch {point[0] + 1}")
            raise


def _refuse_earlier_run(cfg: Config, stage: str, source: str | Path | None, record: dict, exist_ok: bool) -> None:
    """A usage error when the stage would read its input from its own folder (slim never overwrites its input), or
    when the folder already holds a run (an interrupted one: offer --resume) and exist_ok is not set."""
    folder = cfg.stage_dir(stage)
    point = None if exist_ok else interrupted(cfg, stage)
    if point:
        pending = provenance.read(folder, pending=True)
        changed = provenance.changes(pending, record) if pending else []
        how = f", made with {', '.join(changed)}" if changed else ""
        raise UsageError(f"{folder} holds an interrupted {stage} run ({point[0]} of {point[1]} epochs done{how}): "
                         f"add --resume to continue it from epoch {point[0] + 1} (`slim {stage} ... --resume`), "
                         "--exist-ok to start over, or name=<new name> for a new run")
    if source is not None and Path(source).resolve().is_relative_to(folder.resolve()):
        raise UsageError(f"{source} is inside {folder}, which this {stage} run writes to; slim never overwrites its "
                         "input: copy it elsewhere first, or pass name=<new name> for a new run")
    if any(p.name != lock.LOCK for p in folder.iterdir()) and not exist_ok:
        saved = provenance.read(folder)
        changed = provenance.changes(saved, record) if saved else []
        how = f", made with {', '.join(changed)}" if changed else ", made with these same settings" if saved else ""
        raise UsageError(f"{folder} already holds a {stage} run{how}; pass --exist-ok to replace it, "
                         "or name=<new name> for a new run")


def resume_run(cfg: Config, stage: str, sparsity=None) -> Path:
    """Continue the stage's interrupted run from its last.pt with ultralytics' resume (optimizer, EMA, epoch and
    scheduler come back); the run's own provenance record, pending until now, becomes the folder's at the end.

    The config must ask for what the interrupted run was started with: ultralytics resumes with the checkpoint's
    own arguments, and slim's (the sparsity callback's sr and schedule) must agree with them and with the record.
    """
    folder = cfg.stage_dir(stage)
    last = folder / "weights" / "last.pt"
    if not last.is_file():
        raise SlimError(f"no {stage} run to resume in {folder} (it has no weights/last.pt): start one with "
                        f"`slim {stage}`")
    with _locked(cfg, stage):
        if provenance.read(folder) is not None:
            raise SlimError(f"nothing to resume: the {stage} run in {folder} finished; start a new one with "
                            "--exist-ok, or name=<new name>")
        ultra.check_resumable(last)
        pending = provenance.read(folder, pending=True)
        changed = provenance.changes(pending, provenance.wanted(cfg, stage, None), with_input=False) if pending else []
        if changed:
            raise UsageError(f"the interrupted {stage} run in {folder} was made with {', '.join(changed)}: resume it "
                             "with its own settings, or pass --exist-ok to start over")
        ultra.check_device(cfg.device)
        resolve_data(transfer_config(cfg) if stage == "transfer" else cfg)  # a removed demo set comes back, the same
        ultra.train(last, {"resume": True, "device": cfg.device}, keep_architecture=stage != "train",
                    sparsity=sparsity)
        provenance.finish(folder)
    return output_of(cfg, stage)


def resolve_data(cfg: Config) -> str:
    """The dataset yaml: a built-in demo set (generated once, then reused) or the user's file.

    A user's model brings the dataset it was trained on (model_settings); when that is not on this machine, the
    stage stops here, before it writes anything.
    """
    if cfg.data not in DEMOS:
        if not cfg.data:
            raise SlimError("no dataset: the model records none and none was given; pass data=<your dataset yaml>")
        if not Path(cfg.data).exists():
            raise SlimError(f"dataset '{cfg.data}' does not exist on this machine (the model or the config names it): "
                            "pass data=<your dataset yaml>")
        return cfg.data
    d = cfg.demo
    version = generator_of(cfg.data).split()[-1]  # in the name: a newer generator makes a new folder, not an error
    root = Path(cfg.project) / "demo_data" / f"{cfg.data}-{version}-{d.n_train}-{d.n_val}-{d.imgsz}-{d.seed}"
    return str(make_demo_dataset(root.resolve(), d.n_train, d.n_val, d.imgsz, d.seed, *DEMOS[cfg.data]))


def _ultra_args(cfg: Config, stage: str) -> dict:
    ultra.check_device(cfg.device)  # before the dataset is generated
    return {**ultralytics_args(cfg, stage), "data": resolve_data(cfg)}


def train(cfg: Config, resume: bool = False, exist_ok: bool = False) -> Path:
    """Stage 1: ordinary ultralytics training from cfg.model (a yaml or a .pt)."""
    if resume:
        return resume_run(cfg, "train")
    lock.check_free(cfg.stage_dir("train"))  # a running one is named before any work
    args = _ultra_args(cfg, "train")
    ultra.check_inputs(cfg.model, args["data"])  # a bad input fails before the stage's folder is made
    with stage_run(cfg, "train", cfg.model, exist_ok):
        ultra.train(cfg.model, args, keep_architecture=False, inputs_checked=True)
    return output_of(cfg, "train")


def sparsity(cfg: Config, weights: str | Path | None = None, resume: bool = False, exist_ok: bool = False) -> Path:
    """Stage 2: continue training with the L1 subgradient on prunable BN gammas (method l1), or with the proximal
    shrink of only the channels the prune budget removes (method targeted).

    Resumed, the callback's schedule goes on from the resumed epoch (it reads the trainer's epoch).
    """
    if resume:
        return resume_run(cfg, "sparsity", _sparsity_callback(cfg))
    lock.check_free(cfg.stage_dir("sparsity"))
    source = input_for(cfg, "sparsity", weights)
    args = _ultra_args(cfg, "sparsity")
    model, _ = ultra.check_inputs(source, args["data"])
    callback, changed = _sparsity_method(cfg, model, source)
    with stage_run(cfg, "sparsity", source, exist_ok):
        ultra.train(source, {**args, **changed}, keep_architecture=True, sparsity=callback, inputs_checked=True)
    return output_of(cfg, "sparsity")


def _sparsity_callback(cfg: Config):
    """The method's callback: SparsityCallback (l1) or TargetedSparsityCallback (targeted)."""
    s = cfg.sparsity
    if s.method == "targeted":
        return ultra.TargetedSparsityCallback(s.shrink, sparsity_budget(cfg))
    return ultra.SparsityCallback(s.sr, s.schedule)


def _sparsity_method(cfg: Config, model: nn.Module, source: Path) -> tuple:
    """The method's callback and the ultralytics arguments it changes. A budget the model cannot meet fails here,
    in one line before the stage's folder is made, not in the first epoch."""
    callback = _sparsity_callback(cfg)
    if cfg.sparsity.method != "targeted":
        return callback, {}
    select_removed(model, analyze(model), callback.budget)
    inherit = cfg.sparsity.inherit_optimizer
    return callback, ultra.inherited_optimizer(source) if inherit else {}  # as the model was trained


def sparsity_budget(cfg: Config) -> dict:
    """The prune stage's cut as build_plan's keyword arguments: targeted sparsity selects with exactly these."""
    p = cfg.prune
    return {"ratio": p.ratio, "target_gflops": p.target_gflops, "min_channels": p.min_channels,
            "min_fraction": p.min_fraction, "round_to": p.round_to, "imgsz": cfg.imgsz}


def finetune(cfg: Config, weights: str | Path | None = None, resume: bool = False, exist_ok: bool = False) -> Path:
    """Stage 4: train the pruned model as it is (stock ultralytics would rebuild the unpruned one).

    A dataset with another class count is accepted: only the head's class outputs are rebuilt for it (transfer).
    """
    if resume:
        return resume_run(cfg, "finetune")
    return _train_pruned(cfg, "finetune", input_for(cfg, "finetune", weights), exist_ok)


def transfer_config(cfg: Config) -> Config:
    """The experiment as seen from the transfer stage and its val/export: the same, on transfer.data."""
    if not cfg.transfer.data:
        raise UsageError("transfer.data is not set: pass transfer.data=<dataset yaml> or transfer.data=demo-other")
    return dataclasses.replace(cfg, data=cfg.transfer.data)


def transfer(cfg: Config, weights: str | Path | None = None, resume: bool = False, exist_ok: bool = False) -> Path:
    """Finetune the pruned model onto transfer.data with the finetune settings; its class outputs are rebuilt."""
    if resume:
        return resume_run(cfg, "transfer")
    return _train_pruned(cfg, "transfer", input_for(cfg, "transfer", weights), exist_ok)


def _train_pruned(cfg: Config, stage: str, source: Path, exist_ok: bool) -> Path:
    """Finetune or transfer: train a pruned model as it is, on a dataset whose class count may differ."""
    lock.check_free(cfg.stage_dir(stage))
    on = transfer_config(cfg) if stage == "transfer" else cfg
    args = {**_ultra_args(on, STAGES[stage].section), "name": stage}
    ultra.check_inputs(source, args["data"], new_classes=True)
    with stage_run(cfg, stage, source, exist_ok):
        ultra.train(source, args, keep_architecture=True, new_classes=True, inputs_checked=True)
    return output_of(cfg, stage)
