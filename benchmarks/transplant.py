"""The architecture control: one model cut to the channels another prune kept, as a checkpoint to finetune.

    python -m benchmarks.transplant runs/X/prune/pruned.pt BASELINE cut.pt
    slim finetune --weights cut.pt finetune.epochs=...

X's plan (the kept channels, recorded in its checkpoint) applied to BASELINE's weights: the architecture a sparsity
method chose, with none of its training. Beside the no-sparsity control (the baseline cut by its own gammas) it
separates what a method's chosen architecture is worth from what its sparsity epochs are (BENCHMARKS.md, "hard").
"""

import sys

from pathlib import Path

from slim import ultra
from slim.groups import analyze
from slim.plan import PruningPlan
from slim.surgery import prune_model


def main(argv: list[str]) -> None:
    plan_source, weights, target = argv
    meta = ultra.load_model(plan_source)[1].get("slim") or {}
    if "plan" not in meta:
        sys.exit(f"transplant: '{plan_source}' records no pruning plan (not written by slim prune)")
    plan = PruningPlan.from_dict(meta["plan"])
    model, ckpt = ultra.load_model(weights)
    pruned = prune_model(model, plan, fold_beta=meta.get("fold_beta", True), graph=analyze(model))
    ultra.save_checkpoint(pruned, Path(target), ckpt.get("train_args", {}), {**meta, "source": str(weights)})
    print(f"transplant: {target} ({sum(p.numel() for p in pruned.parameters()):,} parameters, "
          f"{plan_source}'s channels, {weights}'s weights)")


if __name__ == "__main__":
    main(sys.argv[1:])
