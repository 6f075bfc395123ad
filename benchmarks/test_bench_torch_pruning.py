"""The Torch-Pruning side of the benchmark: the example's C2f swap, its prune step, GFLOPs targeting, loadability."""

import copy

import pytest
import torch

pytest.importorskip("torch_pruning")

from ultralytics.nn.modules import C2f  # noqa: E402

from benchmarks.bench_torch_pruning import (  # noqa: E402
    C2fSplit,
    gflops,
    loads_plain,
    merge_c2f_,
    ratio_for_gflops,
    split_c2f_,
    step_epochs,
    tp_prune_,
)
from slim import ultra  # noqa: E402
from slim.errors import SlimError, UsageError  # noqa: E402
from tests.models import max_difference, random_bn_model  # noqa: E402

IMGSZ = 64
RTOL = 1e-5  # float32 rounding over ~60 layers, as in test_surgery


def _image() -> torch.Tensor:
    return torch.rand(2, 3, IMGSZ, IMGSZ, generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="module")
def pruned_once():
    """yolov8n with C2fSplit blocks, pruned by one step at ratio 0.3, frozen first as ultralytics loads checkpoints
    (traced frozen, Torch-Pruning would find no autograd graph and silently prune nothing)."""
    model = random_bn_model("yolov8n.yaml")
    assert split_c2f_(model) == 8  # yolov8n has 8 C2f blocks
    return tp_prune_(model.requires_grad_(False), 0.3, IMGSZ)


@pytest.fixture
def pruned(pruned_once):
    return copy.deepcopy(pruned_once)


def test_split_c2f_computes_what_c2f_computes():
    model = random_bn_model("yolov8n.yaml")
    split = random_bn_model("yolov8n.yaml")
    split_c2f_(split)
    assert not any(type(m) is C2f for m in split.modules())
    diff, scale = max_difference(model, split.eval(), _image())
    assert diff <= RTOL * scale


def test_tp_prune_shrinks_gflops_and_the_model_still_runs(pruned):
    before = random_bn_model("yolov8n.yaml")
    assert gflops(pruned) < 0.75 * gflops(before)
    assert sum(p.numel() for p in pruned.parameters()) < 0.8 * sum(p.numel() for p in before.parameters())
    with torch.no_grad():
        y = pruned(_image())[0]
    assert y.shape == (2, 4 + 80, 84)  # boxes + 80 classes at 8x8 + 4x4 + 2x2 anchors: the Detect head is untouched
    blocks = [m for m in pruned.modules() if isinstance(m, C2fSplit)]
    assert all(b.cv0.conv.out_channels == b.cv1.conv.out_channels < b.c for b in blocks)  # uniform ratio


def test_merge_c2f_is_exact_and_gives_stock_classes(pruned):
    merged = copy.deepcopy(pruned)
    assert merge_c2f_(merged) == 8
    assert not any(isinstance(m, C2fSplit) for m in merged.modules())
    diff, scale = max_difference(pruned, merged, _image())
    assert diff <= RTOL * scale


def test_merge_refuses_unequal_halves(pruned):
    block = next(m for m in pruned.modules() if isinstance(m, C2fSplit))
    block.cv0.conv.out_channels += 1  # as global ranking would leave it
    with pytest.raises(SlimError, match="equal halves"):
        merge_c2f_(pruned)


def test_ratio_for_gflops_lands_on_the_target():
    model = random_bn_model("yolov8n.yaml")
    split_c2f_(model)
    target = 0.6 * gflops(model)
    ratio = ratio_for_gflops(model, target, IMGSZ, iters=4)  # 4 halvings: the ratio to within 0.06
    got = gflops(tp_prune_(model, ratio, IMGSZ))
    assert 0.85 * target <= got <= target


def test_only_the_merged_checkpoint_loads_with_plain_ultralytics(pruned, tmp_path):
    """A fresh process without slim, the benchmarks or torch_pruning: the C2fSplit pickle fails, stock classes load."""
    raw = pruned
    raw.names, raw.args = {i: str(i) for i in range(80)}, {"imgsz": IMGSZ}  # what YOLO() reads besides the model
    raw_pt = ultra.save_checkpoint(raw, tmp_path / "raw.pt", {"imgsz": IMGSZ}, {})
    merge_c2f_(raw)
    stock_pt = ultra.save_checkpoint(raw, tmp_path / "stock.pt", {"imgsz": IMGSZ}, {})
    assert loads_plain(stock_pt, IMGSZ, safe=True)["ok"]
    failed = loads_plain(raw_pt, IMGSZ, safe=False)
    assert not failed["ok"] and "benchmarks" in failed["error"]  # C2fSplit lives in benchmarks/, hidden there


def test_step_epochs_split_the_budget():
    assert step_epochs(40, 4) == [10, 10, 10, 10]
    assert step_epochs(20, 3) == [6, 7, 7]
    with pytest.raises(UsageError, match="at least one epoch per step"):
        step_epochs(3, 4)
