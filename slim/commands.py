"""The `slim` subcommands, one function per stage: parse its flags, load the config, run the stage, print.

Each takes the arguments after its name (`slim prune --prune-ratio 0.6` -> prune(["--prune-ratio", "0.6"])).
scripts/*.py and the `slim` command (slim/cli.py) both call these, so their flags are the same.
The stage modules are imported inside each command, after its flags are parsed: they import ultralytics, which
must come after the offline guard that slim/cli.py applies, and `--help` stays fast.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import warnings
from pathlib import Path
from typing import Callable

from slim.errors import USAGE

DEFAULT_CONFIG = "default"  # the packaged slim/configs/default.yaml, found from any folder
COMMANDS: dict[str, Callable[[list], None]] = {}  # name -> command, in `slim --help` order


def command(name: str):
    """Register a function as `slim <name>`; its docstring's first line is its summary in `slim --help`."""

    def register(fn):
        COMMANDS[name] = fn
        return fn

    return register


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (plus exit code 2), like every other slim error."""

    def parse_args(self, args=None, namespace=None):
        # key=value overrides may come before and after flags: `slim prune ratio=0.6 --config c.yaml name=x`
        return self.parse_intermixed_args(args, namespace)

    def error(self, message: str):
        print(f"error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(USAGE)


def parser(prog: str, description: str, exist_ok: bool = True, resume: bool = False) -> Parser:
    """The flags every command shares: --config, --exist-ok (stages that write a run folder), --resume (training
    stages), key=value."""
    p = Parser(prog=prog, description=description)
    p.add_argument("--config",
                   help="experiment YAML shared by every stage: a path, or a packaged config's name "
                        "(default, custom_example); default: the --weights model's own settings (its image size, "
                        f"dataset and task), or without --weights the demo's ({DEFAULT_CONFIG})")
    if exist_ok:
        p.add_argument("--exist-ok", action="store_true", help="replace this stage's earlier outputs")
    if resume:
        p.add_argument("--resume", action="store_true",
                       help="continue this stage's interrupted run from its weights/last.pt, with its own settings: "
                            "the command that started it, plus --resume")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="override any config entry, e.g. prune.ratio=0.6")
    return p


def load(args: argparse.Namespace, stage: str | None, flags: dict, weights: str | None = None):
    """The config for a stage: slim's defaults, the model's own settings, the YAML, then the flags a user typed
    and key=value overrides (each layer over the one before).

    Args:
        flags: config key -> value for the flags that were given (None values are skipped).
        weights: the checkpoint the user passed (--weights): its own image size and dataset apply, and outputs go
            under a folder named for it. Without it and without --config, the demo's config applies.
    """
    from slim.config import load_config, user_model_layer

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    warnings.formatwarning = lambda message, *_, **__: f"warning: {message}\n"  # one line, no source echo
    typed = [f"{k}={v}" for k, v in flags.items() if v is not None]
    own = {}
    if weights:
        from slim.stages import model_settings  # imports ultralytics: after the offline guard, only when needed

        own = model_settings(weights)
    if own and args.config is None:  # a user's model on its own: slim's settings for a trained model, not the demo's
        own = user_model_layer(own)
    config = args.config or (None if own else DEFAULT_CONFIG)
    return load_config(config, typed + list(args.overrides), stage=stage, model_layer=own)


@command("data")
def data(argv: list) -> None:
    """Generate the built-in demo dataset once (then reused) and print its data.yaml."""
    args = parser("slim data", data.__doc__, exist_ok=False).parse_args(argv)
    from slim import stages

    print(stages.resolve_data(load(args, "demo", {})))


@command("train")
def train(argv: list) -> None:
    """Stage 1, normal training of the config's model (an architecture yaml, or a trained .pt to start from)."""
    p = parser("slim train", train.__doc__, resume=True)
    p.add_argument("--weights", help="start from this model (.yaml architecture or trained .pt) instead of model:")
    p.add_argument("--epochs", help="training epochs")
    args = p.parse_args(argv)
    from slim import stages

    cfg = load(args, "train", {"model": args.weights, "train.epochs": args.epochs}, args.weights)
    print(f"train: {stages.train(cfg, resume=args.resume, exist_ok=args.exist_ok)}")


@command("sparsity")
def sparsity(argv: list) -> None:
    """Stage 2, sparsity training: an L1 penalty on the BatchNorm gammas, or the targeted shrink (--method)."""
    p = parser("slim sparsity", sparsity.__doc__, resume=True)
    p.add_argument("--weights", help="trained checkpoint to continue from (default: the train stage's best.pt)")
    p.add_argument("--method", help="l1 (every prunable gamma) or targeted (only those the prune budget removes)")
    p.add_argument("--sr", help="L1 strength on BN gammas (the network-slimming lambda; method l1)")
    p.add_argument("--epochs", help="sparsity-training epochs")
    args = p.parse_args(argv)
    from slim import stages

    cfg = load(args, "sparsity", {"sparsity.method": args.method, "sparsity.sr": args.sr,
                                  "sparsity.epochs": args.epochs}, args.weights)
    print(f"sparsity: {stages.sparsity(cfg, args.weights, resume=args.resume, exist_ok=args.exist_ok)}")


@command("prune")
def prune(argv: list) -> None:
    """Stage 3, prune: remove the channels with the smallest BN gammas, by ratio, threshold or GFLOPs target."""
    p = parser("slim prune", prune.__doc__)
    p.add_argument("--weights", help="sparsity-trained checkpoint (default: the sparsity stage's last.pt)")
    p.add_argument("--prune-ratio", help="fraction of prunable BN channels to remove, globally, in (0, 1)")
    p.add_argument("--threshold", help="instead of a ratio: remove channels whose |gamma| is below this")
    p.add_argument("--target-gflops", help="instead of a ratio: prune to at most this fraction of the model's GFLOPs, "
                                           "in (0, 1)")
    p.add_argument("--weights-from", help="copy the kept weights from this checkpoint, the one sparsity training "
                                          "started from: the sparse model only chooses the channels")
    p.add_argument("--out", help="where to write the pruned checkpoint (default: runs/<name>/prune/pruned.pt)")
    args = p.parse_args(argv)
    from slim import pruning
    from slim.report import prune_table

    cfg = load(args, "prune", {"prune.ratio": args.prune_ratio, "prune.threshold": args.threshold,
                               "prune.target_gflops": args.target_gflops, "prune.weights_from": args.weights_from},
               args.weights)
    out, plan, sizes = pruning.prune(cfg, args.weights, args.out, exist_ok=args.exist_ok)
    print(prune_table(plan, sizes))
    if cfg.prune.weights_from:
        print(f"weights from {cfg.prune.weights_from}; channels chosen by {args.weights or 'the sparse model'}")
    print(f"prune: {out}")


@command("finetune")
def finetune(argv: list) -> None:
    """Stage 4, finetune the pruned model, keeping its architecture."""
    p = parser("slim finetune", finetune.__doc__, resume=True)
    p.add_argument("--weights", help="pruned checkpoint (default: the prune stage's pruned.pt)")
    p.add_argument("--epochs", help="finetuning epochs")
    args = p.parse_args(argv)
    from slim import stages

    cfg = load(args, "finetune", {"finetune.epochs": args.epochs}, args.weights)
    print(f"finetune: {stages.finetune(cfg, args.weights, resume=args.resume, exist_ok=args.exist_ok)}")


@command("transfer")
def transfer(argv: list) -> None:
    """Carry the pruned model to a dataset with other classes (only the head's class outputs are rebuilt)."""
    p = parser("slim transfer", transfer.__doc__, resume=True)
    p.add_argument("--weights", help="pruned checkpoint (default: the prune stage's pruned.pt)")
    p.add_argument("--data", help="dataset to transfer to (transfer.data; demo-other = the built-in one)")
    p.add_argument("--epochs", help="finetuning epochs")
    args = p.parse_args(argv)
    from slim import stages

    cfg = load(args, "transfer", {"transfer.data": args.data, "finetune.epochs": args.epochs}, args.weights)
    print(f"transfer: {stages.transfer(cfg, args.weights, resume=args.resume, exist_ok=args.exist_ok)}")


@command("val")
def val(argv: list) -> None:
    """Validate a model; prints and writes runs/<name>/val/<tag>.json (--tag, or the model's name)."""
    p = parser("slim val", val.__doc__)
    p.add_argument("--weights", help="checkpoint to validate (default: the finetune stage's best.pt)")
    p.add_argument("--tag", help="name of the results file (default: the stage's model name, e.g. finetuned)")
    args = p.parse_args(argv)
    from slim import deploy

    print(json.dumps(deploy.val(load(args, "val", {}, args.weights), args.weights, args.tag, exist_ok=args.exist_ok), indent=1))


@command("export")
def export(argv: list) -> None:
    """Export to ONNX, checked against ONNX Runtime; --int8 adds a statically quantized copy."""
    p = parser("slim export", export.__doc__)
    p.add_argument("--weights", help="checkpoint to export (default: the finetune stage's best.pt)")
    p.add_argument("--tag", help="name of the .onnx file (default: the stage's model name, e.g. finetuned)")
    p.add_argument("--imgsz", help="input image size")
    p.add_argument("--opset", help="ONNX opset")
    p.add_argument("--dynamic", action="store_const", const="true", help="dynamic batch and image size")
    p.add_argument("--int8", action="store_const", const="true", help="also write <name>-int8.onnx (static PTQ)")
    args = p.parse_args(argv)
    from slim import deploy

    flags = {"imgsz": args.imgsz, "export.opset": args.opset, "export.dynamic": args.dynamic, "export.int8": args.int8}
    cfg = load(args, "export", flags, args.weights)
    out = deploy.export(cfg, args.weights, args.tag, exist_ok=args.exist_ok)
    print(f"export: {out['onnx']} ({out['onnx_bytes'] / 1e6:.2f} MB), "
          f"largest difference to PyTorch {out['max_abs_diff']:.2e} (tolerance {cfg.export.atol:g})")
    if "int8" in out:
        print(f"export: {out['int8']} ({out['int8_bytes'] / 1e6:.2f} MB, int8)")


@command("vis")
def vis(argv: list) -> None:
    """Plot |gamma| of the prunable BN channels, e.g. before and after sparsity training."""
    p = parser("slim vis", vis.__doc__, exist_ok=False)
    p.add_argument("--weights", nargs="+", help="checkpoints to compare (default: the baseline and the sparse one)")
    p.add_argument("--out", help="folder for the PNGs (default: runs/<name>/vis)")
    args = p.parse_args(argv)
    from slim import stages, ultra
    from slim.report import plot_gamma_histograms, plot_gamma_per_layer

    cfg = load(args, None, {}, args.weights[0] if args.weights else None)
    paths = [Path(w) for w in args.weights] if args.weights else [
        stages.input_for(cfg, "sparsity", None), stages.input_for(cfg, "prune", None)]
    models = {_label(path, paths): ultra.load_model(path)[0] for path in paths}
    out = Path(args.out) if args.out else cfg.stage_dir("vis")
    print(f"vis: {plot_gamma_histograms(models, out / 'gamma_hist.png')}")
    print(f"vis: {plot_gamma_per_layer(models, out / 'gamma_layers.png')}")


def _label(path: Path, paths: list) -> str:
    """Pipeline checkpoints are named by their stage's tag (baseline, sparse, ...); others by their file name."""
    from slim import deploy

    if path.parent.name == "weights":
        return deploy.tag_of(path)
    return path.stem if [p.stem for p in paths].count(path.stem) == 1 else str(path)


@command("pipeline")
def pipeline(argv: list) -> None:
    """Every stage on one config (finished stages are reused, interrupted ones resumed), then REPORT.md."""
    args = parser("slim pipeline", pipeline.__doc__).parse_args(argv)
    from slim import pipeline as run

    print(f"report: {run.run(load(args, None, {}), args.config or DEFAULT_CONFIG, exist_ok=args.exist_ok)}")


@command("report")
def report(argv: list) -> None:
    """Rebuild REPORT.md from the stages' outputs: val, export, latency, plots."""
    args = parser("slim report", report.__doc__, exist_ok=False).parse_args(argv)
    from slim import pipeline as run

    print(f"report: {run.report(load(args, None, {}), args.config or DEFAULT_CONFIG)}")
