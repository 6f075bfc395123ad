"""Shared helpers for tests: models from yaml with random BN statistics, and output flattening."""

import copy
import functools
from pathlib import Path

import torch
from torch import nn
from ultralytics import YOLO



def random_bn_model(yaml: str, seed: int = 0) -> nn.Module:
    """A model from yaml in eval mode whose BNs have random gamma, beta and running stats (a fresh copy per call).

    Freshly built YOLO models have gamma 1 and beta 0 everywhere, which would hide every indexing bug.
    """
    return copy.deepcopy(_random_bn_model(yaml, seed))


@functools.lru_cache(maxsize=None)
def _random_bn_model(yaml: str, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    model = YOLO(yaml).model.float().eval()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.weight.data = torch.rand_like(m.weight) * 2 - 1
            m.bias.data = torch.randn_like(m.bias) * 0.5
            m.running_mean.data = torch.randn_like(m.running_mean) * 0.1
            m.running_var.data = torch.rand_like(m.running_var) + 0.5
    return model


def saved_and_loaded(model: nn.Module, folder: Path, name: str = "model.pt") -> nn.Module:
    """`model` the way users' models come: saved as an ultralytics checkpoint (fp16) and loaded by slim's loader.

    ultralytics' load_checkpoint turns every activation in-place and hands back fp32 with fp16-representable
    values; a model built from yaml has neither, which hides aliasing bugs from tests that never save.
    """
    from slim.ultra import load_model

    path = Path(folder) / name
    torch.save({"model": copy.deepcopy(model).half(), "ema": None, "train_args": {}}, path)
    loaded, _ = load_model(path)
    assert any(getattr(m, "inplace", False) for m in loaded.modules())  # the hazard the tests must exercise
    return loaded.eval()


def outputs(o) -> list:
    """Every output tensor a model returns, skipping the neck features ultralytics also hands back."""
    if isinstance(o, torch.Tensor):
        return [o]
    if isinstance(o, dict):
        return [t for k, v in o.items() if k != "feats" for t in outputs(v)]
    if isinstance(o, (list, tuple)):
        return [t for v in o for t in outputs(v)]
    return []


def max_difference(a: nn.Module, b: nn.Module, x: torch.Tensor) -> tuple:
    """(largest absolute output difference, largest absolute output) of two models on one input."""
    with torch.no_grad():
        ya, yb = outputs(a(x)), outputs(b(x))
    assert len(ya) == len(yb) and ya, "models return different outputs"
    diff = max(float((u - v).abs().max()) for u, v in zip(ya, yb))
    return diff, max(float(u.abs().max()) for u in ya)


def run_two_ranks(worker, out: Path) -> tuple:
    """Spawn worker(rank, 2, port, out) as two gloo ranks on a free local port; the rank0.pt and rank1.pt it saved."""
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(worker, args=(2, port, str(out)), nprocs=2, join=True)
    return tuple(torch.load(Path(out) / f"rank{r}.pt") for r in (0, 1))


def in_ddp_worker_state(callback, data: Path, folder: Path, event: str) -> tuple:
    """What a DDP worker gets: `callback` attached to a model, the trainer written to ultralytics' DDP state file
    (cloudpickled, as generate_ddp_file does) and read back. Returns (the objects of callback's class registered
    for `event`, the whole state)."""
    import os

    from ultralytics.utils.dist import generate_ddp_file
    from ultralytics.utils.patches import torch_load

    from slim.ultra import TRAINERS

    model = YOLO("yolov8n.yaml")
    callback.attach(model)
    trainer = TRAINERS["detect"](overrides={"model": "yolov8n.yaml", "data": str(data), "project": str(folder)},
                                 _callbacks=model.callbacks)
    trainer.model = model.model
    script = generate_ddp_file(trainer)
    try:
        state = torch_load(script.replace(".py", ".pt"), map_location="cpu")
    finally:
        for suffix in (".py", ".pt"):
            os.unlink(script.replace(".py", suffix))
    found = [getattr(f, "__self__", None) for f in state["callbacks"][event]]
    return [c for c in found if isinstance(c, type(callback))], state
