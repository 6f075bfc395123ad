"""INT8 static quantization and calibration image selection (slim/quantize.py)."""

import hashlib
import shutil

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from ultralytics import YOLO

from slim.errors import SlimError, UsageError
from slim.export import export_onnx
from slim.quantize import Int8Settings, calibration_images, letterbox, quantize_int8

IMGSZ = 96


def write_images(folder, n, zeros=False):
    """n small BGR images of different shapes: gradients, noise and a filled box, or all black."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        h, w = 72 + 12 * i, 128
        yy, xx = np.mgrid[0:h, 0:w]
        channels = [(xx * 255 // w + 30 * i) % 256, yy * 255 // h, rng.integers(0, 256, (h, w))]
        img = np.ascontiguousarray(np.stack(channels, -1), dtype=np.uint8)
        cv2.rectangle(img, (10 + 5 * i, 10), (60, 50 + i), (255 - 30 * i, 40 * i % 256, 128), -1)
        cv2.imwrite(str(folder / f"{i:03d}.png"), np.zeros_like(img) if zeros else img)


def write_dataset(root, n, zeros=False):
    """An ultralytics dataset: images, labels, a stray non-image file and data.yaml; returns the yaml."""
    write_images(root / "images" / "train", n, zeros)
    (root / "labels" / "train").mkdir(parents=True)
    for i in range(n):
        (root / "labels" / "train" / f"{i:03d}.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    (root / "images" / "train" / "notes.md").write_text("not an image\n")
    yaml_file = root / "data.yaml"
    yaml_file.write_text(f"path: {root}\ntrain: images/train\nval: images/train\nnames:\n  0: box\n")
    return yaml_file


def snapshot(folder):
    return {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in sorted(folder.rglob("*"))}


def detector(path, images):
    """A yolov8n checkpoint whose outputs depend on its input, as a trained model's do.

    BN statistics come from one train-mode pass over `images` (fresh BN layers make activations vanish
    with depth), and the class biases are zeroed so scores sit in 0.1-0.9 instead of ultralytics' prior of
    about 1e-5, where every int8 error would be invisible.
    """
    torch.manual_seed(0)
    yolo = YOLO("yolov8n.yaml")
    for m in yolo.model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the batch
    yolo.model.train()
    with torch.no_grad():
        yolo.model(torch.from_numpy(np.concatenate([letterbox(p, IMGSZ) for p in images])))
    yolo.model.eval()
    for cls_head in yolo.model.model[-1].cv3:
        cls_head[-1].bias.data.zero_()
    yolo.save(str(path))
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """FP32 detector, INT8 calibrated on the dataset, and the dataset snapshots around calibration."""
    root = tmp_path_factory.mktemp("quantize")
    data = write_dataset(root / "data", 8)
    images = calibration_images(data, 4)
    fp32 = export_onnx(detector(root / "m.pt", images), root / "out" / "m.onnx", IMGSZ).path
    fp32_sha, before = hashlib.sha256(fp32.read_bytes()).hexdigest(), snapshot(root / "data")
    int8 = quantize_int8(fp32, root / "out" / "m_int8.onnx", images, IMGSZ)
    held_out = sorted(set((root / "data" / "images" / "train").glob("*.png")) - set(images))
    return dict(fp32=fp32, int8=int8, fp32_sha=fp32_sha, before=before, after=snapshot(root / "data"),
                root=root, held_out=held_out)


def score_correlation(fp32, other, images):
    """Pearson r between the class scores (output0 rows 4:) of two models over letterboxed images."""
    scores = []
    for path in (fp32, other):
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        scores.append(np.concatenate([session.run(None, {"images": letterbox(p, IMGSZ)})[0][:, 4:] for p in images]))
    with np.errstate(invalid="ignore"):  # constant scores have no correlation: 0
        return float(np.nan_to_num(np.corrcoef(scores[0].ravel(), scores[1].ravel())[0, 1]))


@pytest.mark.slow
def test_int8_is_qdq_smaller_and_tracks_fp32(models):
    model = onnx.load(str(models["int8"]))
    ops = {n.op_type for n in model.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    assert models["int8"].stat().st_size < 0.35 * models["fp32"].stat().st_size  # measured 0.28: int8 weights
    assert {p.key: p.value for p in model.metadata_props}["task"] == "detect"  # YOLO() can still load it
    # On images it was not calibrated on. Measured r = 0.75 for this untrained model (int8 error compounds
    # through its random layers; per image 0.7-0.95), 0.9998 for a trained yolov8n.
    assert score_correlation(models["fp32"], models["int8"], models["held_out"]) > 0.6
    assert not list(models["int8"].parent.glob(".slim-int8-*"))  # temporary folder gone
    assert hashlib.sha256(models["fp32"].read_bytes()).hexdigest() == models["fp32_sha"]  # FP32 file untouched


@pytest.mark.slow
def test_calibrating_on_black_images_tracks_worse(models, tmp_path):
    # Black images give activation ranges that real images overflow: measured r = 0.24 vs 0.75.
    write_images(tmp_path / "black", 4, zeros=True)
    black = quantize_int8(models["fp32"], tmp_path / "black.onnx", sorted((tmp_path / "black").glob("*")), IMGSZ)
    good = score_correlation(models["fp32"], models["int8"], models["held_out"])
    assert score_correlation(models["fp32"], black, models["held_out"]) < good - 0.3


@pytest.mark.slow
def test_default_exclude_keeps_the_scores_alive(models, tmp_path):
    # With the decode tail quantized too, box pixels (up to ~700 here) and 0-1 scores share the output
    # Concat's one int8 scale, and every score rounds to it: measured, all scores exactly 0 (r = 0).
    everything = quantize_int8(models["fp32"], tmp_path / "all.onnx", [models["held_out"][0]], IMGSZ, exclude=())
    assert score_correlation(models["fp32"], everything, models["held_out"]) < 0.3


def _zero_point_types(path):
    """The element types of every activation zero point (QuantizeLinear's third input) in the file."""
    model = onnx.load(str(path))
    inits = {t.name: t.data_type for t in model.graph.initializer}
    return {inits[n.input[2]] for n in model.graph.node if n.op_type == "QuantizeLinear" and n.input[2] in inits}


@pytest.mark.slow
def test_settings_pick_the_format_and_the_activation_type(models, tmp_path):
    """QOperator writes QLinearConv into the file; int8 activations get int8 zero points, the default uint8 ones."""
    images = [models["held_out"][0]]
    qop = quantize_int8(models["fp32"], tmp_path / "qop.onnx", images, IMGSZ, settings=Int8Settings("qoperator"))
    ops = {n.op_type for n in onnx.load(str(qop)).graph.node}
    assert "QLinearConv" in ops
    assert "QLinearConv" not in {n.op_type for n in onnx.load(str(models["int8"])).graph.node}  # QDQ: Conv + Q/DQ
    s8 = quantize_int8(models["fp32"], tmp_path / "s8.onnx", images, IMGSZ, settings=Int8Settings(
        activations="int8", reduce_range=False))
    assert _zero_point_types(s8) == {onnx.TensorProto.INT8}
    assert _zero_point_types(models["int8"]) == {onnx.TensorProto.UINT8}
    assert score_correlation(models["fp32"], qop, models["held_out"]) > 0.6  # still the same model


def test_quantize_refuses_bad_arguments(models, tmp_path):
    with pytest.raises(UsageError, match="overwrite"):
        quantize_int8(models["fp32"], models["fp32"], models["held_out"], IMGSZ)
    with pytest.raises(UsageError, match="match no node"):
        quantize_int8(models["fp32"], tmp_path / "q.onnx", models["held_out"], IMGSZ, exclude=["no-such-node"])
    with pytest.raises(UsageError, match="regex"):
        quantize_int8(models["fp32"], tmp_path / "q.onnx", models["held_out"], IMGSZ, exclude=["(unclosed"])
    with pytest.raises(UsageError, match="images"):
        quantize_int8(models["fp32"], tmp_path / "q.onnx", [], IMGSZ)
    with pytest.raises(UsageError, match="activations 'int4'"):
        quantize_int8(models["fp32"], tmp_path / "q.onnx", models["held_out"], IMGSZ, settings=Int8Settings(
            activations="int4"))
    with pytest.raises(SlimError, match="not found"):
        quantize_int8(tmp_path / "missing.onnx", tmp_path / "q.onnx", models["held_out"], IMGSZ)
    assert hashlib.sha256(models["fp32"].read_bytes()).hexdigest() == models["fp32_sha"]
    assert not list(tmp_path.iterdir())  # nothing written by a refused call


def test_calibration_writes_nothing_into_the_dataset(models):
    assert models["after"] == models["before"]  # same files, same mtimes and sizes after INT8 calibration


def test_calibration_images_are_an_even_sorted_subset(tmp_path):
    data = write_dataset(tmp_path / "data", 7)
    picked = calibration_images(data, 3)
    names = [p.name for p in picked]
    assert names == ["000.png", "003.png", "006.png"]  # evenly spaced over the sorted split, ends included
    assert calibration_images(data, 3) == picked  # deterministic
    assert len(calibration_images(data, 100)) == 7  # no more than there are; notes.md is not an image


def test_calibration_reads_txt_lists_and_relative_paths(tmp_path, monkeypatch):
    root = tmp_path / "data"
    write_images(root / "images", 3)
    (root / "train.txt").write_text("./images/001.png\n./images/002.png\n")
    (root / "data.yaml").write_text("path: .\ntrain: train.txt\n")
    monkeypatch.chdir(tmp_path)  # "." exists here too, but holds no train.txt: the yaml's folder is not used
    with pytest.raises(SlimError, match="train split"):
        calibration_images(root / "data.yaml", 5)
    (root / "data.yaml").write_text("train: train.txt\n")  # no path: the yaml's folder
    assert [p.name for p in calibration_images(root / "data.yaml", 5)] == ["001.png", "002.png"]


def test_calibration_errors_name_the_problem(tmp_path):
    with pytest.raises(SlimError, match="not found"):
        calibration_images(tmp_path / "missing.yaml", 4)
    (tmp_path / "no_train.yaml").write_text("path: .\nval: images\n")
    with pytest.raises(SlimError, match="no 'train' key"):
        calibration_images(tmp_path / "no_train.yaml", 4)
    (tmp_path / "empty" / "images").mkdir(parents=True)
    (tmp_path / "empty.yaml").write_text(f"path: {tmp_path / 'empty'}\ntrain: images\n")
    with pytest.raises(SlimError, match="no images"):
        calibration_images(tmp_path / "empty.yaml", 4)
    with pytest.raises(UsageError):
        calibration_images(tmp_path / "empty.yaml", 0)


def test_letterbox_matches_ultralytics_inference_layout(tmp_path):
    img = np.zeros((40, 80, 3), np.uint8)
    img[..., 0] = 255  # pure blue in OpenCV's BGR
    cv2.imwrite(str(tmp_path / "blue.png"), img)
    x = letterbox(tmp_path / "blue.png", 64)
    assert x.shape == (1, 3, 64, 64) and x.dtype == np.float32
    assert np.allclose(x[0, :, 0, :], 114 / 255)  # 80x40 -> 64x32, padded 16 rows above and below with 114
    assert np.allclose(x[0, :, 32, :], [[0.0], [0.0], [1.0]])  # RGB order: blue is the last channel


# the task's own metric in ultralytics' ONNX validation, beside the box mAP where there is one
TASK_METRIC = {"segment": "seg_mAP50_95", "pose": "pose_mAP50_95", "obb": "mAP50_95", "classify": "top1"}


@pytest.mark.slow
@pytest.mark.parametrize("task", list(TASK_METRIC))
def test_int8_export_and_onnx_validation_for_every_task(task, tiny_data, tmp_path):
    """export --int8 (deploy.export) and the int8 file validated through ultralytics' ONNX path, per task."""
    from slim import deploy, ultra
    from slim.config import load_config
    from slim.data import task_dataset
    from tests.test_tasks import MODELS

    data = task_dataset(task, tiny_data, tmp_path / "data")
    if task == "pose":  # the yaml's 17 keypoints would not match the set's 1: let the trainer build the model
        args = dict(data=str(data), imgsz=64, epochs=1, batch=8, workers=0, plots=False, device="cpu",
                    project=str(tmp_path), name="t", exist_ok=True, verbose=False)
        shutil.copy(ultra.train(MODELS[task], args, keep_architecture=False), tmp_path / "m.pt")
    else:
        yolo = YOLO(MODELS[task])
        ultra.adapt_classes_(yolo.model, ultra.read_dataset(str(data), task)["names"])  # 80 (1000) -> the set's
        yolo.save(str(tmp_path / "m.pt"))
    cfg = load_config(None, [f"data={data}", "imgsz=64", f"project={tmp_path / 'runs'}", "export.calib_images=4",
                             "val.batch=4"])
    out = deploy.export(cfg, tmp_path / "m.pt", int8=True)
    ops = {n.op_type for n in onnx.load(str(out["int8"])).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    result = deploy.val_onnx(cfg, out["int8"], "m-int8")
    assert 0 <= result[TASK_METRIC[task]] <= 1
