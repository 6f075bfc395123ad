"""GReg's regularizer inside a training step: it shrinks the prunable groups' BN gammas by exactly lr * reg per channel,
leaves the ignored Detect head's alone, and its reg grows each epoch, most for the least important channels."""

from types import SimpleNamespace

import pytest
import torch
from torch import nn

pytest.importorskip("torch_pruning")

from benchmarks.bench_greg import GRegCallback, greg_prune_  # noqa: E402
from benchmarks.bench_torch_pruning import gflops, split_c2f_  # noqa: E402
from slim.ultra.modules import Detect  # noqa: E402
from tests.models import random_bn_model  # noqa: E402

IMGSZ = 64
LR, REG, DELTA = 0.1, 0.01, 0.05


def _zero_grad_step(trainer) -> None:
    """One optimizer step with a zero task gradient: only the penalty moves weights."""
    for p in trainer.model.parameters():
        p.grad = torch.zeros_like(p)
    trainer.optimizer.step()


def _gammas(model: nn.Module) -> dict:
    return {name: m.weight.detach().clone() for name, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)}


@pytest.fixture(scope="module")
def trained():
    """yolov8n (C2f split) through two epochs of one zero-gradient SGD step each, under GRegCallback."""
    model = random_bn_model("yolov8n.yaml")
    split_c2f_(model)
    model.train()
    trainer = SimpleNamespace(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=LR), epoch=0)
    callback = GRegCallback(IMGSZ, reg=REG, delta_reg=DELTA)
    gammas, regs = [_gammas(model)], []
    for epoch in range(2):
        trainer.epoch = epoch
        callback.on_train_epoch_start(trainer)
        regs.append({g: r.clone() for g, r in callback.pruner.group_reg.items()})  # the reg this epoch's step uses
        _zero_grad_step(trainer)
        gammas.append(_gammas(model))
        callback.on_train_epoch_end(trainer)
    return model, callback, gammas, regs


def _bn_regs(model, callback, regs) -> dict:
    """BN name -> its channels' reg, for the BNs of the pruner's groups (the Detect head's are in none)."""
    names = {m: n for n, m in model.named_modules()}
    out = {}
    for group, reg in regs.items():
        for k, (dep, idxs) in enumerate(group):
            if isinstance(dep.layer, nn.BatchNorm2d):
                out[names[dep.layer]] = (torch.tensor(list(idxs)), reg[torch.tensor(group[k].root_idxs)])
    return out


def test_each_step_shrinks_exactly_the_regularized_gammas(trained):
    model, callback, gammas, regs = trained
    detect = {n for n, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)
              and any(m in list(d.modules()) for d in model.modules() if isinstance(d, Detect))}
    for epoch in range(2):
        regularized = _bn_regs(model, callback, regs[epoch])
        assert len(regularized) + len(detect) == len(gammas[0])  # every BN outside the head is regularized
        for name in detect:
            assert torch.equal(gammas[epoch + 1][name], gammas[epoch][name])
        for name, (idxs, reg) in regularized.items():
            before, after = gammas[epoch][name][idxs], gammas[epoch + 1][name][idxs]
            torch.testing.assert_close(after, before * (1 - LR * reg))  # SGD on reg/2 * gamma**2, nothing else


def test_reg_grows_each_epoch_most_for_the_least_important(trained):
    _, callback, _, regs = trained
    for group, first in regs[0].items():
        grown = regs[1][group] - first
        assert torch.allclose(first, torch.full_like(first, REG))
        assert grown.min() >= 0 and grown.max() == pytest.approx(DELTA)
        if len(grown) > 1:
            assert grown.min() == pytest.approx(0, abs=1e-9)  # the most important channel of the group
    last = callback.pruner.group_reg
    assert all((last[g] >= regs[1][g]).all() for g in last)  # and again after the second epoch
    assert len(callback.history) == 2 and callback.history[1]["reg_max"] > callback.history[0]["reg_max"]


def test_greg_prune_removes_channels():
    model = random_bn_model("yolov8n.yaml")
    split_c2f_(model)
    before = gflops(model)
    greg_prune_(model.requires_grad_(False), 0.3, IMGSZ)  # frozen, as ultralytics loads checkpoints
    assert gflops(model) < 0.75 * before


def test_prune_head_prunes_the_hidden_head_convs_and_keeps_its_outputs():
    model = random_bn_model("yolov8n.yaml")
    split_c2f_(model)
    head = model.model[-1]
    outputs = [branch[-1].out_channels for branch in (*head.cv2, *head.cv3)]
    hidden = sum(branch[0].conv.out_channels for branch in (*head.cv2, *head.cv3))
    greg_prune_(model.requires_grad_(False), 0.5, IMGSZ, prune_head=True)
    assert [branch[-1].out_channels for branch in (*head.cv2, *head.cv3)] == outputs  # boxes and classes intact
    assert sum(branch[0].conv.out_channels for branch in (*head.cv2, *head.cv3)) < 0.6 * hidden
