"""The ultralytics layer: checkpoints in, checkpoints out, training that keeps the pruned architecture."""

import ast
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from slim import ultra
from slim.errors import SlimError
from slim.groups import analyze, prunable_bns
from slim.plan import build_plan
from slim.sparsity import gamma_stats
from slim.surgery import prune_model


def _args(data, project, name, **extra):
    base = dict(data=str(data), imgsz=64, epochs=1, batch=16, workers=0, plots=False, device="cpu",
                project=str(project), name=name, exist_ok=True, verbose=False, seed=0)
    return {**base, **extra}


@pytest.fixture(scope="module")
def baseline(tiny_data, tmp_path_factory):
    return ultra.train("yolov8n.yaml", _args(tiny_data, tmp_path_factory.mktemp("runs"), "train"), False)


@pytest.fixture(scope="module")
def pruned(baseline, tmp_path_factory):
    model, ckpt = ultra.load_model(baseline)
    plan = build_plan(model, analyze(model), ratio=0.5)
    path = tmp_path_factory.mktemp("pruned") / "pruned.pt"
    ultra.save_checkpoint(prune_model(model, plan), path, ckpt["train_args"], {"plan": json.loads(plan.to_json())})
    return path


def _params(path):
    return sum(p.numel() for p in ultra.load_model(path)[0].parameters())


def test_sparsity_training_shrinks_penalised_gammas_only(baseline, tiny_data, tmp_path):
    before = ultra.load_model(baseline)[0]
    callback = ultra.SparsityCallback(sr=1.0, schedule="constant")  # large, so one tiny epoch shows it
    sparse = ultra.train(baseline, _args(tiny_data, tmp_path, "sparsity", optimizer="SGD", lr0=0.01), True, callback)
    after = ultra.load_model(sparse)[0]
    penalised = {id(bn) for bn in prunable_bns(before)}
    names = [n for n, m in before.named_modules() if isinstance(m, nn.BatchNorm2d)]
    mods_b, mods_a = dict(before.named_modules()), dict(after.named_modules())
    drop = {True: [], False: []}
    for n in names:
        gb, ga = mods_b[n].weight.abs().mean(), mods_a[n].weight.abs().mean()
        drop[id(mods_b[n]) in penalised].append(float(gb - ga))
    mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
    assert mean(drop[True]) > 0.01 and mean(drop[True]) > 5 * abs(mean(drop[False]))
    with open(tmp_path / "sparsity" / "sparsity.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["epoch", "sr", "gamma_mean", "gamma_small", "ema_gamma_mean", "ema_gamma_small"]
    assert len(rows) == 1  # one row per epoch
    # the EMA columns describe the model that was saved, the one the prune stage reads (up to its fp16 storage)
    saved = gamma_stats(prunable_bns(after))
    assert float(rows[0]["ema_gamma_mean"]) == pytest.approx(saved["gamma_mean"], rel=2e-3)
    assert float(rows[0]["ema_gamma_small"]) == pytest.approx(saved["gamma_small"], abs=0.01)


@pytest.mark.slow
def test_pruned_checkpoint_loads_with_plain_ultralytics_under_safe_load(pruned, tmp_path):
    code = (
        "import sys, torch; from ultralytics import YOLO; m = YOLO(sys.argv[1]); "
        "r = m.predict(torch.zeros(1, 3, 64, 64), imgsz=64, verbose=False); "
        "assert 'slim' not in sys.modules; print(sum(p.numel() for p in m.model.parameters()))"
    )
    env = {**os.environ, "ULTRALYTICS_SAFE_LOAD": "1", "YOLO_OFFLINE": "1", "YOLO_CONFIG_DIR": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code, str(pruned)], env=env, capture_output=True, text=True,
                         cwd=tmp_path, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert int(out.stdout.strip().splitlines()[-1]) == _params(pruned)


def test_checkpoint_round_trip_is_bit_for_bit(pruned, tmp_path):
    model, ckpt = ultra.load_model(pruned)
    again = ultra.save_checkpoint(model, tmp_path / "again.pt", ckpt["train_args"], ckpt["slim"])
    a = torch.load(pruned, weights_only=False)["model"].state_dict()
    b = torch.load(again, weights_only=False)["model"].state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert ckpt["slim"]["plan"]["ratio"] == 0.5


def test_finetune_keeps_the_pruned_architecture(pruned, tiny_data, tmp_path):
    best = ultra.train(pruned, _args(tiny_data, tmp_path, "finetune"), keep_architecture=True)
    assert _params(best) == _params(pruned)


class _Crash(Exception):
    pass


def test_resume_of_a_pruned_run(pruned, tiny_data, tmp_path):
    def crash_after_first_epoch(trainer):
        if trainer.epoch == 0:
            raise _Crash

    from ultralytics import YOLO

    model = YOLO(str(pruned))
    model.add_callback("on_fit_epoch_end", crash_after_first_epoch)
    with pytest.raises(_Crash):
        model.train(trainer=ultra.TRAINERS["detect"], **_args(tiny_data, tmp_path, "ft", epochs=2))
    last = tmp_path / "ft" / "weights" / "last.pt"
    best = ultra.train(last, {"resume": True}, keep_architecture=True)
    assert torch.load(best, weights_only=False)["epoch"] == -1  # finished (final checkpoints are stripped)
    assert _params(best) == _params(pruned)


def test_class_count_mismatch_is_one_clear_error(pruned, tmp_path):
    from slim.data import make_demo_dataset

    data = make_demo_dataset(tmp_path / "d", n_train=2, n_val=2, imgsz=64)
    text = data.read_text()
    other = tmp_path / "two_classes.yaml"
    names = "names:\n  0: a\n  1: b\n"
    other.write_text(text[: text.index("names:")] + names)
    with pytest.raises(SlimError, match="has 2 classes but the model has"):
        ultra.train(pruned, _args(other, tmp_path, "x"), keep_architecture=True)
    with pytest.raises(SlimError, match="has 2 classes"):
        ultra.validate(pruned, {"data": str(other), "imgsz": 64})


def _write(path, data: bytes):
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    "make, words",
    [
        (lambda d, p: d / "missing.pt", "does not exist"),
        (lambda d, p: _write(d / "empty.pt", b""), "is empty"),
        (lambda d, p: _write(d / "random.pt", os.urandom(4096)), "not a readable PyTorch checkpoint"),
        (lambda d, p: _write(d / "text.pt", b"hello, I am a text file\n"), "not a readable PyTorch checkpoint"),
        (lambda d, p: _write(d / "cut.pt", p.read_bytes()[:50_000]), "not a readable PyTorch checkpoint"),
        (lambda d, p: _torch_save(d / "sd.pt", ultra.load_model(p)[0].state_dict()), "plain state_dict"),
        (lambda d, p: _torch_save(d / "other.pt", {"model": nn.Linear(2, 2)}), "not an ultralytics YOLO model"),
        (lambda d, p: _torch_save(d / "nomodel.pt", {"epoch": 3}), "no 'model' entry"),
        (lambda d, p: d, "is a folder"),
    ],
)
def test_bad_weights_are_one_clear_error(pruned, tmp_path, make, words):
    with pytest.raises(SlimError, match=words):
        ultra.load_model(make(tmp_path, pruned))


def test_bare_model_name_offline_is_not_downloaded(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the tests run offline (conftest): ultralytics' resolution finds no file
    with pytest.raises(SlimError, match=f"not found and ultralytics is offline.*put it in {tmp_path} or in"):
        ultra.load_model("yolov8n.pt")


def _torch_save(path, obj):
    torch.save(obj, path)
    return path


def test_only_slim_ultra_imports_ultralytics():
    """The boundary slim/ultra/__init__.py describes: every import of ultralytics lives in slim/ultra/."""
    root = Path(ultra.__file__).parents[1]
    outside = []
    for path in sorted(root.rglob("*.py")):
        if path.parent == Path(ultra.__file__).parent:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            outside += [f"{path.relative_to(root)}: {n}" for n in names if n.split(".")[0] == "ultralytics"]
    assert outside == []


def test_names_of_slim_ultra_all_resolve():
    """slim.ultra imports a name's submodule at its first use: every listed name is there."""
    assert all(getattr(ultra, name) is not None for name in ultra.__all__)
    with pytest.raises(AttributeError):
        ultra.no_such_name
