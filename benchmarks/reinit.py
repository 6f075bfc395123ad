"""The capacity control: a model's architecture with fresh random weights, as a checkpoint to train from scratch.

    python -m benchmarks.reinit runs/X/prune/pruned.pt scratch.pt
    slim finetune --weights scratch.pt finetune.epochs=... (the baseline's own recipe)

Trained with the baseline's recipe, it shows what the pruned architecture can reach at all, without the dense
model's weights: the ceiling a pruning method works under (BENCHMARKS.md, "Why neither method reaches the targets").
"""

import sys

import torch

from slim import ultra


def reinitialize_(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Every layer's own default initialisation, then the Detect head's prior biases, as a fresh ultralytics model.

    The DFL's conv is not a learned layer: its fixed weights (0, 1, ..., reg_max - 1) decode the box distribution,
    and randomising them leaves a model whose loss falls while every box it predicts is wrong.
    """
    torch.manual_seed(seed)
    fixed = {id(m) for dfl in model.modules() if type(dfl).__name__ == "DFL" for m in dfl.modules()}
    for module in model.modules():
        if hasattr(module, "reset_parameters") and module is not model and id(module) not in fixed:
            module.reset_parameters()  # conv: kaiming uniform; BN: gamma 1, beta 0, running stats reset
    model.model[-1].bias_init()  # the class/box priors ultralytics sets on a model built from yaml (needs strides)
    return model


def main(argv: list[str]) -> None:
    source, target = argv
    model, ckpt = ultra.load_model(source)
    ultra.save_checkpoint(reinitialize_(model.float()), target, ckpt.get("train_args", {}), ckpt.get("slim") or {})
    print(f"reinit: {target} ({sum(p.numel() for p in model.parameters()):,} parameters, random weights)")


if __name__ == "__main__":
    main(sys.argv[1:])
