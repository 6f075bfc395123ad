"""The user's path, end to end: a checkpoint on disk, scripts/prune.py, and the result loaded in a fresh process.

The pruned checkpoint must compute, through plain `YOLO(path)` with no slim import, what the input checkpoint
computes with the removed channels silenced. Checkpoints are loaded with in-place activations and stored in fp16,
which models built from yaml in memory never exercise.
"""

import copy
import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from slim.plan import PruningPlan
from slim.surgery import silence_
from slim.ultra import load_model
from tests.models import outputs, random_bn_model

ROOT = Path(__file__).resolve().parents[1]
RTOL = 1e-5  # float32 rounding over ~60 layers, relative to the output's largest value (as in test_surgery)

# Runs in a fresh Python with ultralytics only: what a user of the pruned file does.
PLAIN_YOLO = textwrap.dedent('''
    import sys, torch
    from ultralytics import YOLO
    model = YOLO(sys.argv[1]).model.float().eval()
    torch.save(model(torch.load(sys.argv[2])), sys.argv[3])
''')


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _checkpoint(model: torch.nn.Module, path: Path) -> Path:
    torch.save({"model": copy.deepcopy(model).half(), "ema": None, "train_args": {}}, path)
    return path


def _prune_and_run(tmp_path: Path, source: Path, *args: str) -> tuple:
    """scripts/prune.py on `source`, then the pruned file through plain YOLO: (its outputs, its slim plan, image)."""
    out = tmp_path / "pruned.pt"
    env = {**os.environ, "YOLO_OFFLINE": "1", "YOLO_CONFIG_DIR": str(tmp_path / "cfg")}
    run = subprocess.run([sys.executable, str(ROOT / "scripts/prune.py"), "--config", str(ROOT / "configs/default.yaml"),
                          f"project={tmp_path / 'runs'}", "--weights", str(source), "--out", str(out), *args],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    image = torch.rand(2, 3, 96, 96, generator=torch.Generator().manual_seed(0))
    torch.save(image, tmp_path / "image.pt")
    fresh = subprocess.run([sys.executable, "-c", PLAIN_YOLO, str(out), str(tmp_path / "image.pt"),
                            str(tmp_path / "y.pt")], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert fresh.returncode == 0, fresh.stderr[-3000:]
    plan = PruningPlan.from_dict(torch.load(out, weights_only=False)["slim"]["plan"])
    return outputs(torch.load(tmp_path / "y.pt", weights_only=False)), plan, image


def _assert_close(got: list, want: list) -> None:
    assert len(got) == len(want) and got
    scale = max(float(w.abs().max()) for w in want)
    assert max(float((g - w).abs().max()) for g, w in zip(got, want)) <= RTOL * scale


@pytest.mark.slow
def test_cli_prune_equals_silenced_input_in_a_fresh_process(tmp_path):
    """Random gammas and betas, ratio 0.5, no folding: the pruned file == the input with removed channels zeroed."""
    source = _checkpoint(random_bn_model("yolov8n.yaml"), tmp_path / "sparse.pt")
    before = _sha(source)
    got, plan, image = _prune_and_run(tmp_path, source, "--prune-ratio", "0.5", "prune.fold_beta=false")
    assert _sha(source) == before  # the input is never touched
    assert plan.removed_fraction > 0.4
    silenced = silence_(load_model(source)[0], plan)
    with torch.no_grad():
        _assert_close(got, outputs(silenced(image)))


@pytest.mark.slow
def test_cli_prune_weights_from_cuts_the_dense_model_to_the_sparse_models_channels(tmp_path):
    """--weights-from: the sparse model's gammas choose, the dense model's weights are kept; the pruned file ==
    the dense model with the chosen channels zeroed, and the plan is the one the sparse model alone gives."""
    sparse = _checkpoint(random_bn_model("yolov8n.yaml", seed=0), tmp_path / "sparse.pt")
    dense = _checkpoint(random_bn_model("yolov8n.yaml", seed=1), tmp_path / "dense.pt")
    before = _sha(dense)
    (tmp_path / "alone").mkdir()
    alone = _prune_and_run(tmp_path / "alone", sparse, "--prune-ratio", "0.5", "prune.fold_beta=false")[1]
    got, plan, image = _prune_and_run(tmp_path, sparse, "--prune-ratio", "0.5", "prune.fold_beta=false",
                                      "--weights-from", str(dense))
    assert _sha(dense) == before
    assert plan.keep == alone.keep and plan.removed_fraction > 0.4
    assert torch.load(tmp_path / "pruned.pt", weights_only=False)["slim"]["weights_from"] == str(dense)
    with torch.no_grad():
        want = outputs(silence_(load_model(dense)[0], plan)(image))
        _assert_close(got, want)
        assert not torch.allclose(outputs(silence_(load_model(sparse)[0], plan)(image))[0], want[0])


@pytest.mark.slow
@pytest.mark.parametrize("yaml", ["yolov8n-seg.yaml", "yolo11n.yaml"])
def test_cli_prune_with_default_folding_is_lossless_on_dead_channels(tmp_path, yaml):
    """The default settings (beta folding on): channels with gamma = beta = 0 go, and the output does not move."""
    model = random_bn_model(yaml)
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():  # a random half of every BN's channels dead; the kept ones keep random nonzero betas
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                dead = torch.rand(m.num_features, generator=g) < 0.5
                m.weight[dead], m.bias[dead] = 0.0, 0.0
    source = _checkpoint(model, tmp_path / "sparse.pt")
    got, plan, image = _prune_and_run(tmp_path, source, "--threshold", "1e-12", "prune.min_channels=1",
                                      "prune.min_fraction=0")
    assert plan.removed_fraction > 0.2
    original, _ = load_model(source)
    with torch.no_grad():
        _assert_close(got, outputs(original(image)))


@pytest.mark.slow
def test_cli_prune_to_a_gflops_target_prints_and_records_the_fraction_reached(tmp_path):
    source = _checkpoint(random_bn_model("yolov8n.yaml"), tmp_path / "sparse.pt")
    out = tmp_path / "pruned.pt"
    env = {**os.environ, "YOLO_OFFLINE": "1", "YOLO_CONFIG_DIR": str(tmp_path / "cfg")}
    run = subprocess.run([sys.executable, str(ROOT / "scripts/prune.py"), "--config", str(ROOT / "configs/default.yaml"),
                          f"project={tmp_path / 'runs'}", "--weights", str(source), "--out", str(out),
                          "--target-gflops", "0.4"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    meta = json.loads(out.with_suffix(".plan.json").read_text())
    plan, sizes = meta["plan"], meta["sizes"]
    assert plan["target_gflops"] == 0.4 and plan["ratio"] is None and plan["gflops_fraction"] <= 0.4
    assert f"GFLOPs target      40.0% of the model's, reached {plan['gflops_fraction']:.1%}" in run.stdout
    # the plan.json keeps the measured sizes, and they agree with the planner's count (test_plan: within 0.01)
    assert abs(sizes["after"]["gflops"] / sizes["before"]["gflops"] - plan["gflops_fraction"]) <= 0.01
