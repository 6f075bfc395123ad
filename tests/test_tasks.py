"""Every task through the real ultralytics trainers: sparsity penalises, pruning shrinks, finetune keeps the shape.

Segment, pose, obb and classify datasets are derived from the tiny detection demo set (box corners as polygons,
box centres as one keypoint, box crops as class folders), so no download is needed.
"""

import json
import shutil
from pathlib import Path

import cv2
import pytest
import yaml
from torch import nn

from slim import ultra
from slim.groups import analyze, prunable_bns
from slim.plan import build_plan
from slim.surgery import prune_model


def _corners(cx, cy, w, h):
    return [cx - w / 2, cy - h / 2, cx + w / 2, cy - h / 2, cx + w / 2, cy + h / 2, cx - w / 2, cy + h / 2]


def _relabel(data: Path, out: Path, line, extra: dict) -> Path:
    """A copy of the detection set whose every label line is rewritten by line(cls, cx, cy, w, h)."""
    src = Path(yaml.safe_load(data.read_text())["path"])
    shutil.copytree(src / "images", out / "images")
    for label in (src / "labels").rglob("*.txt"):
        rows = [[float(v) for v in r.split()] for r in label.read_text().splitlines() if r.strip()]
        target = out / label.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("".join(" ".join(f"{v:.6f}" for v in line(int(r[0]), *r[1:])) + "\n" for r in rows))
    spec = {**yaml.safe_load(data.read_text()), "path": str(out), **extra}
    (out / "data.yaml").write_text(yaml.safe_dump(spec))
    return out / "data.yaml"


def _classify_folders(data: Path, out: Path) -> Path:
    """An image-folder classification set: one crop per object, filed under its class name."""
    spec = yaml.safe_load(data.read_text())
    src, names = Path(spec["path"]), spec["names"]
    for split in ("train", "val"):
        for label in sorted((src / "labels" / split).glob("*.txt")):
            image = cv2.imread(str(src / "images" / split / f"{label.stem}.png"))
            h, w = image.shape[:2]
            for k, row in enumerate(label.read_text().splitlines()):
                c, cx, cy, bw, bh = (float(v) for v in row.split())
                x0, y0 = int(max(0, (cx - bw / 2) * w)), int(max(0, (cy - bh / 2) * h))
                crop = image[y0 : int((cy + bh / 2) * h) + 1, x0 : int((cx + bw / 2) * w) + 1]
                folder = out / split / names[int(c)]
                folder.mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(folder / f"{label.stem}_{k}.png"), crop)
    return out


DATASETS = {
    "segment": lambda d, o: _relabel(d, o, lambda c, cx, cy, w, h: [c, *_corners(cx, cy, w, h)], {}),
    "obb": lambda d, o: _relabel(d, o, lambda c, cx, cy, w, h: [c, *_corners(cx, cy, w, h)], {}),
    "pose": lambda d, o: _relabel(d, o, lambda c, cx, cy, w, h: [c, cx, cy, w, h, cx, cy, 2],
                                  {"kpt_shape": [1, 3], "flip_idx": [0]}),
    "classify": _classify_folders,
}
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
    data = DATASETS[task](tiny_data, tmp_path / "data")
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
