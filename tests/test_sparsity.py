"""The L1 subgradient: exact, once per optimizer step, after AMP unscaling and clipping, identical on DDP ranks."""

import os

import pytest
import torch
import torch.distributed as dist
from torch import nn
from ultralytics import YOLO

from slim.groups import analyze, prunable_bns
from slim.sparsity import gamma_stats, register_l1_hook, sr_at
from tests.models import in_ddp_worker_state, run_two_ranks

SR = 1e-2


def _model():
    torch.manual_seed(0)
    model = YOLO("yolov8n.yaml").model.float().train()
    for bn in (m for m in model.modules() if isinstance(m, nn.BatchNorm2d)):
        bn.weight.data = torch.randn_like(bn.weight)  # both signs, so sign() is not trivially +1
    return model


def _loss(model, seed):
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(seed))
    return sum(o.float().pow(2).mean() for o in _flat(model(x)))


def _flat(o):
    if isinstance(o, torch.Tensor):
        return [o]
    items = o.values() if isinstance(o, dict) else o
    return [t for v in items for t in _flat(v)]


def _all_bn_grads(model):
    return {n: m.weight.grad.clone() for n, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)}


@pytest.mark.parametrize("accumulate", [1, 3])
def test_penalty_is_added_once_per_step_to_unscaled_clipped_gradients(accumulate):
    """The sequence ultralytics' optimizer_step runs: scaled backward(s), unscale_, clip at 10, scaler.step."""
    model = _model()
    penalised = prunable_bns(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)  # lr 0: the step leaves weights, we read gradients
    scaler = torch.amp.GradScaler("cpu", init_scale=65536.0, enabled=True)
    seen = {}
    register_l1_hook(optimizer, [], lambda: 0.0)  # placeholder so the order below is explicit
    optimizer.register_step_pre_hook(lambda *_: seen.update(before=_all_bn_grads(model)))
    register_l1_hook(optimizer, penalised, lambda: SR)
    optimizer.register_step_pre_hook(lambda *_: seen.update(after=_all_bn_grads(model)))
    for i in range(accumulate):
        scaler.scale(_loss(model, i)).backward()
    scaler.unscale_(optimizer)
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=10.0)
    scaler.step(optimizer)
    names = {id(m): n for n, m in model.named_modules()}
    penalised_names = {names[id(bn)] for bn in penalised}
    assert scaler.get_scale() == 65536.0  # the step was taken: no inf/nan skipped it
    for name, before in seen["before"].items():
        after = seen["after"][name]
        if name in penalised_names:
            gamma = dict(model.named_modules())[name].weight.detach()
            assert torch.equal(after, before + SR * torch.sign(gamma))
        else:
            assert torch.equal(after, before)  # residual-tied and other skipped BNs are untouched


def test_linear_schedule_matches_the_reference():
    assert sr_at(SR, 0, 50) == SR
    assert sr_at(SR, 25, 50) == pytest.approx(SR * 0.55)
    assert sr_at(SR, 50, 50) == pytest.approx(SR * 0.1)
    assert sr_at(SR, 25, 50, "constant") == SR


def test_gamma_stats():
    bn = nn.BatchNorm2d(4)
    bn.weight.data = torch.tensor([0.001, -0.005, 0.5, 1.5])
    stats = gamma_stats([bn])
    assert stats["gamma_small"] == 0.5 and stats["gamma_mean"] == pytest.approx(0.5015)


def _ddp_worker(rank: int, world: int, port: int, out: str):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.set_num_threads(1)
    model = _model()
    ddp = nn.parallel.DistributedDataParallel(model, find_unused_parameters=True)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    penalised = prunable_bns(model)
    grads = {}
    optimizer.register_step_pre_hook(lambda *_: grads.update(before=[bn.weight.grad.clone() for bn in penalised]))
    register_l1_hook(optimizer, penalised, lambda: SR)
    optimizer.register_step_pre_hook(lambda *_: grads.update(after=[bn.weight.grad.clone() for bn in penalised]))
    _loss(ddp, seed=rank).backward()  # each rank sees different data; DDP averages the gradients
    optimizer.step()
    signs = [torch.sign(bn.weight.detach()) for bn in penalised]
    torch.save({"before": grads["before"], "after": grads["after"], "signs": signs}, f"{out}/rank{rank}.pt")
    dist.destroy_process_group()


@pytest.mark.slow
def test_ddp_ranks_apply_the_penalty_once_and_identically(tmp_path):
    r0, r1 = run_two_ranks(_ddp_worker, tmp_path)
    for b0, a0, s0, b1, a1 in zip(r0["before"], r0["after"], r0["signs"], r1["before"], r1["after"]):
        assert torch.equal(b0, b1)  # all-reduced loss gradients agree
        assert torch.equal(a0, a1)  # and so do the penalised ones
        assert torch.equal(a0, b0 + SR * s0)  # penalty added once, after the all-reduce


def test_ddp_worker_state_carries_the_sparsity_settings(tmp_path, tiny_data):
    """ultralytics rebuilds the trainer in each DDP worker from a cloudpickled state file: sr must be in it."""
    from slim.ultra import TRAINERS, SparsityCallback

    found, state = in_ddp_worker_state(SparsityCallback(3e-3, "constant"), tiny_data, tmp_path,
                                       "on_train_epoch_start")
    assert found and found[0].sr == 3e-3 and found[0].schedule == "constant"
    assert state["trainer"] is TRAINERS["detect"]
    assert len(analyze(state["model"]).prunable) == 47  # the model (pruned or not) travels as an object
