"""Targeted sparsity: only the selected channels move, to exact zeros, after the step; the prune is then exact."""

import csv
import os

import pytest
import torch
from torch import nn

from slim import ultra
from slim.groups import analyze
from slim.plan import build_plan
from slim.surgery import prune_model
from slim.targeted import bind, prox_shrink_, register_prox_hook, select_removed, shrink_at, zero_selected_
from tests.models import in_ddp_worker_state, outputs, random_bn_model, run_two_ranks

BUDGET = {"target_gflops": 0.4, "imgsz": 64}
AMOUNT = 0.05
RTOL = 1e-5  # float32 rounding over ~60 layers, relative to the output's largest value (as in test_surgery)


def _model():
    model = random_bn_model("yolov8n.yaml").train()
    for p in model.parameters():
        p.requires_grad_(True)
    return model


def _loss(model, seed):
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(seed))
    return sum(o.float().pow(2).mean() for o in outputs(model(x)))


def _bn_state(model):
    return {n: (m.weight.detach().clone(), m.bias.detach().clone())
            for n, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)}


def _selected(model):
    masks, plan = select_removed(model, analyze(model), BUDGET)
    return masks, plan, bind(model, masks)


def _soft(x, amount):
    return x.sign() * (x.abs() - amount).clamp(min=0)


def test_selection_is_what_the_prune_at_that_budget_removes():
    model = _model()
    masks, plan, _ = _selected(model)
    again = build_plan(model, analyze(model), **BUDGET)
    assert plan.gflops_fraction <= 0.4 and again.keep == plan.keep
    for name, mask in masks.items():
        assert sorted(int(i) for i in (~mask).nonzero().flatten()) == plan.keep[name]
    assert 0 < sum(int(m.sum()) for m in masks.values()) < sum(len(m) for m in masks.values())


@pytest.mark.parametrize("optimizer", ["SGD", "AdamW"])
def test_only_selected_channels_shrink_and_kept_ones_get_no_penalty(optimizer):
    """One real optimizer step with and without the hook: kept gammas (and every other BN) equal the hook-less twin
    bit for bit; selected gamma and beta are the twin's, soft-thresholded by exactly AMOUNT."""
    results = {}
    for hooked in (False, True):
        model = _model()
        opt = getattr(torch.optim, optimizer)(model.parameters(), lr=1e-3)
        masks, _, selected = _selected(model)
        if hooked:
            register_prox_hook(opt, lambda: prox_shrink_(selected, AMOUNT))
        _loss(model, 0).backward()
        opt.step()
        results[hooked] = _bn_state(model)
    selected_bns = {f"{name}.bn": mask for name, mask in masks.items()}
    for name, (twin_w, twin_b) in results[False].items():
        w, b = results[True][name]
        mask = selected_bns.get(name, torch.zeros_like(twin_w, dtype=torch.bool))
        assert torch.equal(w[~mask], twin_w[~mask]) and torch.equal(b[~mask], twin_b[~mask])
        assert torch.equal(w[mask], _soft(twin_w[mask], AMOUNT)) and torch.equal(b[mask], _soft(twin_b[mask], AMOUNT))


@pytest.mark.parametrize("accumulate", [1, 3])
def test_shrink_runs_once_per_step_under_a_real_grad_scaler_and_not_on_a_skipped_step(accumulate):
    """The sequence ultralytics' optimizer_step runs: scaled backward(s), unscale_, clip at 10, scaler.step.
    With inf gradients the scaler skips optimizer.step() and the post-hook with it."""
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.0)  # lr 0: only the hook moves weights
    scaler = torch.amp.GradScaler("cpu", init_scale=65536.0, enabled=True)
    _, _, selected = _selected(model)
    calls = []
    register_prox_hook(opt, lambda: (calls.append(1), prox_shrink_(selected, AMOUNT)))
    before = [bn.weight.detach().clone() for bn, _ in selected]
    for i in range(accumulate):
        scaler.scale(_loss(model, i)).backward()
    scaler.unscale_(opt)
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=10.0)
    scaler.step(opt)
    scaler.update()
    assert calls == [1] and scaler.get_scale() == 65536.0
    for (bn, mask), w in zip(selected, before):
        assert torch.equal(bn.weight.detach()[mask], _soft(w[mask], AMOUNT))  # once, not `accumulate` times
    opt.zero_grad()
    shrunk = [bn.weight.detach().clone() for bn, _ in selected]
    scaler.scale(_loss(model, 9) * float("inf")).backward()
    scaler.unscale_(opt)
    scaler.step(opt)
    scaler.update()
    assert calls == [1] and scaler.get_scale() < 65536.0  # skipped: no shrink
    assert all(torch.equal(bn.weight.detach(), w) for (bn, _), w in zip(selected, shrunk))


def test_shrink_grows_over_the_run():
    assert shrink_at(0.5, 0.0) == 0.0 and shrink_at(0.5, 0.5) == 0.25 and shrink_at(0.5, 1.0) == 0.5
    assert shrink_at(0.5, 1.5) == 0.5


def test_prune_at_the_same_budget_equals_the_zeroed_model():
    """Exactness: with the selected gamma and beta at zero, the prune at the budget is the sparse model itself
    (fold_beta on, as the prune stage runs by default; act(0) = 0 leaves nothing to fold)."""
    model = random_bn_model("yolov8n.yaml")
    _, _, selected = _selected(model)
    zero_selected_(selected)
    plan = build_plan(model, analyze(model), **BUDGET)
    pruned = prune_model(model, plan)
    assert sum(p.numel() for p in pruned.parameters()) < 0.6 * sum(p.numel() for p in model.parameters())
    x = torch.rand(2, 3, 96, 96, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want, got = outputs(model(x)), outputs(pruned(x))
    scale = max(float(w.abs().max()) for w in want)
    assert max(float((g - w).abs().max()) for g, w in zip(got, want)) <= RTOL * scale


@pytest.mark.slow
def test_targeted_training_reaches_exact_zeros_and_the_prune_is_exact(tiny_data, tmp_path):
    """Two real epochs under AdamW: the first shrinks the selected channels, the last holds them at zero; the saved
    checkpoint (the EMA) has them at exactly zero, so the prune at the same budget computes what it computes."""
    budget = {**BUDGET, "min_channels": 8, "min_fraction": 0.05, "round_to": 1}
    callback = ultra.TargetedSparsityCallback(shrink=0.5, budget=budget)
    args = dict(data=str(tiny_data), imgsz=64, epochs=2, batch=8, nbs=8, workers=0, plots=False, device="cpu",
                project=str(tmp_path), name="sparsity", exist_ok=True, verbose=False, seed=0, optimizer="AdamW",
                lr0=0.002, warmup_epochs=0)
    ultra.train("yolov8n.yaml", args, False, callback)
    with open(tmp_path / "sparsity" / "sparsity.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 and float(rows[0]["gflops_fraction"]) <= 0.4
    assert float(rows[1]["selected_gamma_mean"]) < float(rows[0]["selected_gamma_mean"]) < 1.0  # fresh gammas: 1.0
    assert float(rows[0]["kept_gamma_mean"]) > 0.9  # the kept channels are not pulled down
    assert float(rows[1]["selected_zero"]) == 1.0 and float(rows[1]["ema_selected_zero"]) == 1.0
    sparse, _ = ultra.load_model(tmp_path / "sparsity" / "weights" / "last.pt")
    masks, plan, selected = _selected(sparse)
    assert all(torch.all(bn.weight[m] == 0) and torch.all(bn.bias[m] == 0) for bn, m in selected)
    pruned = prune_model(sparse, plan)
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        want, got = outputs(sparse(x)), outputs(pruned(x))
    scale = max(float(w.abs().max()) for w in want)
    assert max(float((g - w).abs().max()) for g, w in zip(got, want)) <= RTOL * scale


def test_ddp_worker_state_carries_the_targeted_settings(tmp_path, tiny_data):
    """ultralytics rebuilds the trainer in each DDP worker from a cloudpickled state file: the budget must be in it."""
    found, _ = in_ddp_worker_state(ultra.TargetedSparsityCallback(0.3, BUDGET), tiny_data, tmp_path,
                                   "on_train_epoch_end")
    assert found and found[0].shrink == 0.3 and found[0].budget == BUDGET


@pytest.mark.slow
def test_stage_trains_with_the_checkpoints_optimizer_and_the_prune_keeps_its_accuracy(tmp_path):
    """slim's stages on the demo at tiny size: the targeted sparsity run takes the train stage's optimizer and lr0
    (not the section's SGD 0.04), and the prune at the same budget computes what the sparse checkpoint computes.
    (The report's pruned and sparse rows come from these two files; at this size both validate at mAP 0.)"""
    import yaml

    from slim import pruning, stages
    from slim.config import load_config

    cfg = load_config(None, [f"project={tmp_path}", "demo.n_train=16", "demo.n_val=8", "demo.imgsz=64", "imgsz=64",
                             "train.epochs=1", "sparsity.epochs=2", "sparsity.method=targeted",
                             "prune.target_gflops=0.4"])
    stages.train(cfg)
    sparse = stages.sparsity(cfg)
    used = yaml.safe_load((cfg.stage_dir("sparsity") / "args.yaml").read_text())
    assert (used["optimizer"], used["lr0"]) == (cfg.train.args["optimizer"], cfg.train.args["lr0"]) == ("AdamW", 0.003)
    pruned, plan, sizes = pruning.prune(cfg)
    assert plan.gflops_fraction <= 0.4 and sizes["after"]["gflops"] < 0.45 * sizes["before"]["gflops"]
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():  # both as saved (fp16 on disk), loaded the way the report's val loads them
        want, got = (outputs(ultra.load_model(path)[0](x)) for path in (sparse, pruned))
    scale = max(float(w.abs().max()) for w in want)
    assert max(float((g - w).abs().max()) for g, w in zip(got, want)) <= RTOL * scale


def _ddp_worker(rank: int, world: int, port: int, out: str):
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.set_num_threads(1)
    model = _model()
    ddp = nn.parallel.DistributedDataParallel(model, find_unused_parameters=True)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    masks, _, selected = _selected(model)  # each rank selects from its own copy, as TargetedSparsityCallback does
    register_prox_hook(opt, lambda: prox_shrink_(selected, AMOUNT))
    _loss(ddp, seed=rank).backward()  # each rank sees different data; DDP averages the gradients
    opt.step()
    torch.save({"masks": masks, "bns": _bn_state(model)}, f"{out}/rank{rank}.pt")
    dist.destroy_process_group()


@pytest.mark.slow
def test_ddp_ranks_select_and_shrink_the_same_channels(tmp_path):
    r0, r1 = run_two_ranks(_ddp_worker, tmp_path)
    assert r0["masks"].keys() == r1["masks"].keys()
    assert all(torch.equal(r0["masks"][n], r1["masks"][n]) for n in r0["masks"])
    for name, (w0, b0) in r0["bns"].items():
        w1, b1 = r1["bns"][name]
        assert torch.equal(w0, w1) and torch.equal(b0, b1)  # the ranks stay identical after the shrink
    for name, mask in r0["masks"].items():
        w = r0["bns"][f"{name}.bn"][0]
        assert torch.all(w[mask].abs() < _model().get_submodule(f"{name}.bn").weight.detach()[mask].abs())


def test_an_unreachable_budget_fails_before_the_sparsity_run_folder_is_made(tmp_path):
    from slim import stages
    from slim.config import load_config
    from slim.errors import UsageError

    model = random_bn_model("yolov8n.yaml")
    ultra.adapt_classes_(model, {i: str(i) for i in range(5)})  # the demo set has 5 classes
    source = ultra.save_checkpoint(model, tmp_path / "trained.pt", {}, {})
    cfg = load_config(None, [f"project={tmp_path}", "demo.n_train=4", "demo.n_val=2", "demo.imgsz=64", "imgsz=64",
                             "sparsity.method=targeted", "prune.target_gflops=0.01"])
    with pytest.raises(UsageError, match="cannot be met"):
        stages.sparsity(cfg, source)
    assert not cfg.stage_dir("sparsity").exists()


@pytest.mark.slow
def test_targeted_sparsity_resumes_and_still_ends_at_exact_zeros(tmp_path):
    """Stopped by SIGINT in epoch 2 of 3 and resumed (the live model restarts from the saved EMA): the last epoch
    still holds the selected channels at zero, in the EMA that is saved too."""
    import signal

    from tests.test_resume import rows, slim, start_paused

    targeted = ["sparsity.method=targeted", "prune.target_gflops=0.4"]
    slim(tmp_path, "train", "name=cut", "train.epochs=1")
    run = start_paused(tmp_path, "sparsity", "name=cut", *targeted)
    run.send_signal(signal.SIGINT)
    run.communicate(timeout=120)
    assert run.returncode == 130
    slim(tmp_path, "sparsity", "name=cut", "--resume", *targeted)
    folder = tmp_path / "runs" / "cut" / "sparsity"
    logged = rows(folder / "sparsity.csv")
    assert [r["epoch"] for r in logged] == ["1", "2", "3"]
    assert float(logged[-1]["selected_zero"]) == 1.0 and float(logged[-1]["ema_selected_zero"]) == 1.0
    sparse, _ = ultra.load_model(folder / "weights" / "last.pt")
    _, _, selected = _selected(sparse)
    assert all(torch.all(bn.weight[m] == 0) and torch.all(bn.bias[m] == 0) for bn, m in selected)
