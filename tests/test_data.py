"""The demo dataset: deterministic, valid YOLO labels, generated once, never mixed, never half-written."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import slim.data
from slim.data import CLASSES, GENERATOR, OTHER_CLASSES, STAMP, make_demo_dataset
from slim.errors import UsageError

ARGS = dict(n_train=8, n_val=4, imgsz=64, seed=0)
REPO = Path(__file__).resolve().parents[1]


def _files(root: Path) -> dict:
    """Relative path -> bytes of every image and label file."""
    return {str(p.relative_to(root)): p.read_bytes() for d in ("images", "labels") for p in (root / d).rglob("*.*")}


def _dead_pid() -> int:
    pid = 4_000_000
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        except PermissionError:
            pass
        pid += 1


def test_same_arguments_give_identical_bytes_and_the_seed_matters(tmp_path):
    a = _files(make_demo_dataset(tmp_path / "a", **ARGS).parent)
    b = _files(make_demo_dataset(tmp_path / "b", **ARGS).parent)
    c = _files(make_demo_dataset(tmp_path / "c", **{**ARGS, "seed": 1}).parent)
    assert len(a) == 2 * (ARGS["n_train"] + ARGS["n_val"])
    assert a == b
    assert a.keys() == c.keys()
    assert all(a[k] != c[k] for k in a if k.endswith(".png"))
    train = {v for k, v in a.items() if k.startswith("images/train")}
    assert not train & {v for k, v in a.items() if k.startswith("images/val")}  # val is no copy of train


def test_yaml_and_labels_are_valid_yolo_detection_data(tmp_path):
    root = tmp_path / "ds"
    data = yaml.safe_load(make_demo_dataset(root, **ARGS).read_text())
    assert Path(data["path"]) == root.absolute() and Path(data["path"]).is_absolute()
    assert data["names"] == dict(enumerate(CLASSES)) and 4 <= len(CLASSES) <= 6
    for split in ("train", "val"):
        images = sorted((root / data[split]).glob("*.png"))
        labels = sorted((root / "labels" / split).glob("*.txt"))
        assert len(images) == ARGS[f"n_{split}"] and [p.stem for p in images] == [p.stem for p in labels]
        for label in labels:
            rows = [line.split() for line in label.read_text().splitlines()]
            assert 1 <= len(rows) <= 5
            for cls, *box in rows:
                cx, cy, w, h = map(float, box)
                assert int(cls) in range(len(CLASSES))
                assert all(0 < v <= 1 for v in (cx, cy, w, h))
                assert 0 <= cx - w / 2 and cx + w / 2 <= 1 and 0 <= cy - h / 2 and cy + h / 2 <= 1


def test_ultralytics_reads_the_dataset(tmp_path):
    from ultralytics.data.utils import check_det_dataset

    data = check_det_dataset(str(make_demo_dataset(tmp_path / "ds", **ARGS)))
    assert data["nc"] == len(CLASSES)
    assert Path(data["train"]) == tmp_path / "ds" / "images" / "train"


def test_second_call_reuses_without_rewriting(tmp_path):
    root = tmp_path / "ds"
    first = make_demo_dataset(root, **ARGS)
    everything = [p for p in root.rglob("*") if p.is_file()]
    for p in everything:  # age every file, so a rewrite shows even within the clock's resolution
        os.utime(p, ns=(1_000_000_000, 1_000_000_000))
    assert make_demo_dataset(root, **ARGS) == first
    assert all(p.stat().st_mtime_ns == 1_000_000_000 for p in everything)


@pytest.mark.parametrize("change", [{"n_train": 9}, {"n_val": 5}, {"imgsz": 96}, {"seed": 3}])
def test_other_arguments_on_an_existing_dataset_fail_and_touch_nothing(tmp_path, change):
    root = tmp_path / "ds"
    make_demo_dataset(root, **ARGS)
    before = _files(root)
    with pytest.raises(UsageError, match="choose another root"):
        make_demo_dataset(root, **{**ARGS, **change})
    assert _files(root) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


def test_a_folder_that_is_not_a_demo_dataset_is_never_overwritten(tmp_path):
    root = tmp_path / "mine"
    root.mkdir()
    (root / "notes.txt").write_text("keep me")
    with pytest.raises(UsageError, match="not a slim demo dataset"):
        make_demo_dataset(root, **ARGS)
    assert [p.name for p in root.iterdir()] == ["notes.txt"]


def test_an_empty_existing_folder_is_filled(tmp_path):
    (tmp_path / "ds").mkdir()
    assert make_demo_dataset(tmp_path / "ds", **ARGS).is_file()


def test_success_leaves_no_temporary_folder(tmp_path):
    make_demo_dataset(tmp_path / "ds", **ARGS)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


def test_interrupted_generation_leaves_nothing_that_looks_complete(tmp_path, monkeypatch):
    calls = []
    draw = slim.data.draw_image

    def draw_then_die(rng, imgsz, classes):
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return draw(rng, imgsz, classes)

    monkeypatch.setattr(slim.data, "draw_image", draw_then_die)
    with pytest.raises(KeyboardInterrupt):
        make_demo_dataset(tmp_path / "ds", **ARGS)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    make_demo_dataset(tmp_path / "ds", **ARGS)
    assert _files(tmp_path / "ds") == _files(make_demo_dataset(tmp_path / "fresh", **ARGS).parent)


def test_a_killed_runs_leftover_is_ignored_and_removed(tmp_path):
    # what a run killed before its rename leaves: a partial folder, possibly with every file, even the stamp
    make_demo_dataset(tmp_path / "donor", **ARGS)
    leftover = tmp_path / f".ds.partial-{_dead_pid()}"
    (tmp_path / "donor").rename(leftover)
    (leftover / "labels" / "train" / "train_00000.txt").write_text("0 0.5 0.5 0.1 0.1\n")  # a half-written file
    root = tmp_path / "ds"
    make_demo_dataset(root, **ARGS)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]
    assert _files(root) == _files(make_demo_dataset(tmp_path / "fresh", **ARGS).parent)


def test_a_live_runs_partial_folder_is_left_alone(tmp_path):
    busy = tmp_path / f".ds.partial-{os.getppid()}"
    busy.mkdir()
    make_demo_dataset(tmp_path / "ds", **ARGS)
    assert busy.is_dir() and (tmp_path / "ds" / STAMP).is_file()


def test_a_damaged_dataset_is_reported_not_reused(tmp_path):
    root = tmp_path / "ds"
    make_demo_dataset(root, **ARGS)
    (root / "images" / "val" / "val_00000.png").unlink()
    with pytest.raises(slim.data.SlimError, match="damaged"):
        make_demo_dataset(root, **ARGS)


@pytest.mark.parametrize("bad", [{"n_train": 0}, {"n_val": 0}, {"imgsz": 16}])
def test_bad_arguments_are_usage_errors(tmp_path, bad):
    with pytest.raises(UsageError):
        make_demo_dataset(tmp_path / "ds", **{**ARGS, **bad})
    assert not (tmp_path / "ds").exists()


@pytest.mark.slow
def test_script_prints_the_yaml_path_and_reports_bad_sizes_in_one_line(tmp_path):
    script = [sys.executable, str(REPO / "scripts" / "make_demo_data.py"), "--config", str(REPO / "configs/default.yaml")]
    sizes = [f"project={tmp_path}", "demo.n_train=3", "demo.n_val=2", "demo.imgsz=64"]
    ok = subprocess.run(script + sizes, capture_output=True, text=True, cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip() == str(tmp_path / "demo_data" / f"demo-{GENERATOR.split()[-1]}-3-2-64-0" / "data.yaml")
    bad = subprocess.run(script + [f"project={tmp_path}", "demo.n_train=0"], capture_output=True, text=True, cwd=tmp_path)
    assert bad.returncode == 2
    assert bad.stderr.strip().startswith("error:") and len(bad.stderr.strip().splitlines()) == 1


def test_other_classes_make_a_separate_labelled_set(tmp_path):
    """The transfer set: its own class names and labels, and the default set's images are unchanged by the option."""
    make_demo_dataset(tmp_path / "a", n_train=3, n_val=2, imgsz=64)
    make_demo_dataset(tmp_path / "b", n_train=3, n_val=2, imgsz=64, classes=CLASSES)
    other = make_demo_dataset(tmp_path / "c", n_train=3, n_val=2, imgsz=64, classes=OTHER_CLASSES)
    assert yaml.safe_load(other.read_text())["names"] == dict(enumerate(OTHER_CLASSES))
    assert not set(CLASSES) & set(OTHER_CLASSES)
    labels = [line.split()[0] for f in (tmp_path / "c" / "labels").rglob("*.txt") for line in f.read_text().splitlines()]
    assert labels and {int(c) for c in labels} <= set(range(len(OTHER_CLASSES)))
    for f in (tmp_path / "a" / "images" / "train").iterdir():
        assert f.read_bytes() == (tmp_path / "b" / "images" / "train" / f.name).read_bytes()
    with pytest.raises(UsageError, match="demo classes"):
        make_demo_dataset(tmp_path / "d", n_train=3, n_val=2, imgsz=64, classes=("blob",))


def test_hard_style_draws_more_smaller_overlapping_objects_on_photographs(tmp_path):
    """The hard benchmark's set: every shape class, 3-12 objects of 6-30% of the side (the label boxes), each
    covering at most 40% of any box drawn before it; deterministic; its stamp names the style and generator."""
    args = dict(n_train=40, n_val=8, imgsz=128)
    root = make_demo_dataset(tmp_path / "hard", **args, classes=CLASSES + OTHER_CLASSES, style=slim.data.HARD).parent
    again = make_demo_dataset(tmp_path / "again", **args, classes=CLASSES + OTHER_CLASSES, style="hard").parent
    plain = make_demo_dataset(tmp_path / "plain", **args).parent
    assert _files(root) == _files(again) and _files(root).keys() == _files(plain).keys()
    stamp = json.loads((root / STAMP).read_text())
    assert stamp["style"] == "hard" and stamp["generator"] == slim.data.HARD_GENERATOR != GENERATOR
    assert yaml.safe_load((root / "data.yaml").read_text())["names"] == dict(enumerate(CLASSES + OTHER_CLASSES))
    counts, sides, overlaps = [], [], 0
    for label in (root / "labels" / "train").glob("*.txt"):
        boxes = [[float(v) for v in line.split()] for line in label.read_text().splitlines()]
        counts.append(len(boxes))
        sides += [max(w, h) for _, _, _, w, h in boxes]
        corners = [(cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2) for _, cx, cy, w, h in boxes]
        for i, new in enumerate(corners):
            for old in corners[:i]:
                assert slim.data._covered(new, old) <= 0.4 + 1e-6
                overlaps += slim.data._covered(new, old) > 0
    assert min(counts) >= 1 and max(counts) <= 12 and sum(counts) / len(counts) > 4  # the plain set: 1-5
    assert min(sides) >= 0.06 - 1e-6 and max(sides) <= 0.3 + 1e-6
    assert overlaps > 0  # overlap happens, within the limit
    plain_sides = [max(map(float, line.split()[3:5])) for f in (plain / "labels").rglob("*.txt")
                   for line in f.read_text().splitlines()]
    assert min(plain_sides) >= 0.16 - 1e-6 > min(sides)  # smaller objects than the plain set ever has


def test_hard_style_without_scikit_image_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(slim.data.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(UsageError, match="pip install scikit-image"):
        make_demo_dataset(tmp_path / "hard", n_train=2, n_val=1, imgsz=64, style="hard")
    assert not (tmp_path / "hard").exists()
    with pytest.raises(UsageError, match="demo style"):
        make_demo_dataset(tmp_path / "x", n_train=2, n_val=1, imgsz=64, style="harder")


def test_config_data_demo_hard_resolves_to_the_hard_set(tmp_path):
    from slim.config import load_config
    from slim.stages import resolve_data

    cfg = load_config(None, [f"project={tmp_path}", "data=demo-hard", "demo.n_train=2", "demo.n_val=1",
                             "demo.imgsz=64"])
    data = Path(resolve_data(cfg))
    assert data.parent.name == f"demo-hard-{slim.data.HARD_GENERATOR.split()[-1]}-2-1-64-0"
    assert json.loads((data.parent / STAMP).read_text())["style"] == "hard"
