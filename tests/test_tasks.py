"""Every task through the real ultralytics trainers: sparsity penalises, pruning shrinks, finetune keeps the shape.

Segment, pose, obb and classify datasets are derived from the tiny detection demo set (box corners as polygons,
box centres as one keypoint, box crops as class folders), so no download is needed.
"""

import json

import pytest
from torch import nn

from slim import ultra
from slim.data import task_dataset
from slim.groups import analyze, prunable_bns
from slim.plan import build_plan
from slim.surgery import prune_model

pytestmark = pytest.mark.slow  # end to end: real trainings or the CLI in subprocesses


MODELS = {"segment": "yolov8n-seg.yaml", "obb": "yolov8n-obb.yaml", "pose": "yolov8n-pose.yaml",
          "classify": "yolov8n-cls.yaml"}


def _args(data, project, name, **extra):
    base = dict(data=str(data), imgsz=64, epochs=1, batch=8, workers=0, plots=False, device="cpu",
                project=str(project), name=name, exist_ok=True, verbose=False, seed=0)
    return {**base, **extra}


def _params(path):
    return sum(p.numel() for p in ultra.load_model(path)[0].parameters())


@pytest.mark.parametrize("task", list(MODELS))
def test_sparsity_prune_finetune_for_every_task(task, tiny_data, tmp_path):
    data = task_dataset(task, tiny_data, tmp_path / "data")
    baseline = ultra.train(MODELS[task], _args(data, tmp_path, "train"), keep_architecture=False)
    sparse = ultra.train(baseline, _args(data, tmp_path, "sparsity", optimizer="SGD", lr0=0.01), True,
                         ultra.SparsityCallback(sr=1.0, schedule="constant"))
    before, after = ultra.load_model(baseline)[0], ultra.load_model(sparse)[0]
    penalised = {id(bn) for bn in prunable_bns(before)}
    mods_a = dict(after.named_modules())
    drops = {True: [], False: []}
    for name, bn in before.named_modules():
        if isinstance(bn, nn.BatchNorm2d):
            drops[id(bn) in penalised].append(float(bn.weight.abs().mean() - mods_a[name].weight.abs().mean()))
    assert sum(drops[True]) / len(drops[True]) > 5 * abs(sum(drops[False]) / len(drops[False]))

    model, ckpt = ultra.load_model(sparse)
    plan = build_plan(model, analyze(model), ratio=0.5)
    pruned_path = tmp_path / "pruned.pt"
    ultra.save_checkpoint(prune_model(model, plan), pruned_path, ckpt["train_args"], {"plan": json.loads(plan.to_json())})
    assert _params(pruned_path) < 0.8 * _params(sparse)
    finetuned = ultra.train(pruned_path, _args(data, tmp_path, "finetune"), keep_architecture=True)
    assert _params(finetuned) == _params(pruned_path)
