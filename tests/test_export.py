"""ONNX export and its parity check (slim/export.py), and ONNX/PyTorch latency (slim/latency.py)."""

import hashlib
import os

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from ultralytics import YOLO

from slim.errors import SlimError, UsageError
from slim.export import check_onnx_parity, export_onnx
from slim.groups import analyze
from slim.latency import compare_latency, onnx_latency_ms, torch_latency_ms
from slim.plan import build_plan
from slim.surgery import prune_model
from slim.ultra import save_checkpoint
from tests.models import random_bn_model

IMGSZ = 64


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def checkpoint(folder, cfg):
    """A checkpoint built from an ultralytics yaml (no download), with BN statistics of real activations.

    Fresh BN layers hold mean 0, var 1, so an untrained model's activations shrink layer by layer and its
    outputs are little more than its biases: then no weight change would show in the outputs. One forward
    pass in train mode on a noise batch gives every BN the statistics it sees, as training would.
    """
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{cfg.removesuffix('.yaml')}.pt"
    torch.manual_seed(0)
    yolo = YOLO(cfg)
    for m in yolo.model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the batch
    yolo.model.train()
    with torch.no_grad():
        yolo.model(torch.rand(4, 3, IMGSZ, IMGSZ))
    yolo.model.eval()
    yolo.save(str(path))
    return path


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """cfg -> (checkpoint, ExportResult, hash before export, input folder listing before export)."""
    root = tmp_path_factory.mktemp("export")
    result = {}
    for cfg in ("yolov8n.yaml", "yolov8n-seg.yaml"):
        weights = checkpoint(root / cfg.removesuffix(".yaml"), cfg)
        before, listing = sha256(weights), sorted(os.listdir(weights.parent))
        res = export_onnx(weights, root / "out" / weights.with_suffix(".onnx").name, IMGSZ)
        result[cfg] = weights, res, before, listing
    return result


@pytest.mark.slow
@pytest.mark.parametrize("cfg, outputs", [("yolov8n.yaml", ["output0"]), ("yolov8n-seg.yaml", ["output0", "output1"])])
def test_export_writes_checked_onnx_and_leaves_input_alone(exported, cfg, outputs):
    weights, res, sha_before, listing_before = exported[cfg]
    assert res.path.is_file() and res.size_bytes == res.path.stat().st_size
    # fp32 weights dominate the file: 4 bytes per parameter, plus a small graph
    params = sum(p.numel() for p in YOLO(str(weights)).model.parameters())
    assert 4 * params * 0.9 < res.size_bytes < 4 * params * 1.2
    assert 0 <= res.max_abs_diff < 1e-3
    assert sha256(weights) == sha_before  # checkpoint bytes unchanged
    assert sorted(os.listdir(weights.parent)) == listing_before  # no .onnx (or anything) written beside it
    assert not [p for p in res.path.parent.iterdir() if p.name.startswith(".slim-export-")]  # temp folder gone
    model = onnx.load(str(res.path))
    assert [o.name for o in model.graph.output] == outputs
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["task"] == YOLO(str(weights)).task  # ultralytics metadata survives onnxsim
    assert not [n for n in model.graph.node if n.op_type == "BatchNormalization"]  # BN folded into the convs


@pytest.mark.slow
def test_pruned_checkpoint_exports_with_its_own_widths(tmp_path):
    # yolo11n: C3k2 and C2PSA split by widths that pruning changes, read from the modules, not the yaml
    model = random_bn_model("yolo11n.yaml")
    pruned = prune_model(model, build_plan(model, analyze(model), ratio=0.5))
    weights = save_checkpoint(pruned, tmp_path / "pruned.pt", {}, {})
    res = export_onnx(weights, tmp_path / "pruned.onnx", IMGSZ)
    assert res.max_abs_diff < 1e-3  # measured 1.2e-5
    params = sum(p.numel() for p in pruned.parameters())
    assert params < 0.6 * sum(p.numel() for p in model.parameters())
    assert 4 * params * 0.9 < res.size_bytes < 4 * params * 1.2


@pytest.mark.parametrize("cfg, layer", [("yolov8n.yaml", "/model.0/"), ("yolov8n-seg.yaml", "/proto/cv3/")])
def test_parity_fails_on_altered_weights(exported, tmp_path, cfg, layer):
    # the segment case alters a conv that feeds only the mask prototypes (output1): every output is compared
    weights, res, _, _ = exported[cfg]
    model = onnx.load(str(res.path))
    conv = next(n for n in model.graph.node if n.op_type == "Conv" and layer in n.name)
    init = next(i for i in model.graph.initializer if i.name == conv.input[1])
    init.CopyFrom(onnx.numpy_helper.from_array(onnx.numpy_helper.to_array(init) * 1.5, init.name))
    altered = tmp_path / "altered.onnx"
    onnx.save(model, str(altered))
    with pytest.raises(SlimError, match="tolerance"):
        check_onnx_parity(weights, altered, IMGSZ, atol=1e-3)
    assert check_onnx_parity(weights, res.path, IMGSZ, atol=1e-3) < 1e-3  # the unaltered file still passes


def test_parity_scales_per_channel_so_small_scores_count(tmp_path):
    # An untrained 1000-class classifier outputs probabilities of about 1e-3 (at most 6e-3 here): a plain
    # absolute tolerance of 1e-3 barely sees them. 5% larger classifier weights move them by under 1e-3.
    weights = checkpoint(tmp_path, "yolov8n-cls.yaml")
    res = export_onnx(weights, tmp_path / "cls.onnx", IMGSZ)
    model = onnx.load(str(res.path))
    gemm = next(n for n in model.graph.node if n.op_type == "Gemm")
    init = next(i for i in model.graph.initializer if i.name == gemm.input[1])
    init.CopyFrom(onnx.numpy_helper.from_array(onnx.numpy_helper.to_array(init) * 1.05, init.name))
    altered = tmp_path / "altered.onnx"
    onnx.save(model, str(altered))
    x = np.random.default_rng(0).random((1, 3, IMGSZ, IMGSZ), dtype=np.float32)
    run = lambda p: ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]).run(None, {"images": x})[0]
    assert np.abs(run(altered) - run(res.path)).max() < 1e-3  # an absolute check would pass this file
    with pytest.raises(SlimError, match="tolerance"):
        check_onnx_parity(weights, altered, IMGSZ, atol=1e-3)


def test_parity_rejects_an_onnx_of_another_model(exported):
    weights, _, _, _ = exported["yolov8n.yaml"]
    _, seg, _, _ = exported["yolov8n-seg.yaml"]
    with pytest.raises(SlimError, match="shapes"):
        check_onnx_parity(weights, seg.path, IMGSZ, atol=1e-3)


def test_export_refuses_missing_input_and_overwriting_it(exported, tmp_path):
    weights, _, _, _ = exported["yolov8n.yaml"]
    with pytest.raises(SlimError, match="not found"):
        export_onnx(tmp_path / "missing.pt", tmp_path / "m.onnx", IMGSZ)
    with pytest.raises(UsageError):
        export_onnx(weights, weights, IMGSZ)
    with pytest.raises(UsageError, match="multiple of the model's stride"):  # ultralytics rounds 72 up to 96
        export_onnx(weights, tmp_path / "odd.onnx", IMGSZ + 8)
    assert not list(tmp_path.iterdir())  # no file, no temporary folder left


def test_onnx_latency_states_threads_and_runs(exported):
    _, res, _, _ = exported["yolov8n.yaml"]
    lat = onnx_latency_ms(res.path, IMGSZ, runs=5, warmup=1, threads=1)
    assert lat["threads"] == 1 and lat["runs"] == 5
    assert 0 < lat["median_ms"] <= lat["p90_ms"]
    default = onnx_latency_ms(res.path, IMGSZ, runs=2, warmup=0)
    assert default["threads"] == len(os.sched_getaffinity(0))  # None means every CPU we may run on, stated
    with pytest.raises(UsageError):
        onnx_latency_ms(res.path, IMGSZ, runs=0)


def test_compare_latency_times_every_model(exported):
    paths = {cfg: exported[cfg][1].path for cfg in exported}
    lat = compare_latency(paths, IMGSZ, runs=4, warmup=1, threads=1)
    assert set(lat) == set(paths)
    for r in lat.values():
        assert r["median_ms"] > 0 and r["threads"] == 1 and r["runs"] == 4


def test_compare_latency_on_a_provider_this_onnxruntime_lacks_is_one_clear_error(exported):
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime has CUDA: the missing-provider path cannot be reached here")
    with pytest.raises(SlimError, match="no CUDAExecutionProvider.*onnxruntime-gpu"):
        compare_latency({"m": exported["yolov8n.yaml"][1].path}, IMGSZ, runs=1, provider="CUDAExecutionProvider")


def test_torch_latency_does_not_change_the_model(exported):
    weights, _, _, _ = exported["yolov8n.yaml"]
    model = YOLO(str(weights)).model
    training, dtype = model.training, next(model.parameters()).dtype
    lat = torch_latency_ms(model, IMGSZ, "cpu", runs=3, warmup=1)
    assert lat["median_ms"] > 0 and lat["runs"] == 3 and lat["threads"] == torch.get_num_threads()
    assert model.training == training and next(model.parameters()).dtype == dtype
