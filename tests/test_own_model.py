"""A user's own model: a checkpoint saved by a real ultralytics training at 96 px (not slim's 128, not 640), run
through the `slim` command with only --weights (plus data= where needed), from an empty folder, with no config file.

Every stage must take the model's own image size and dataset, write under runs/<model>/, and never touch the demo's
generated set or runs/demo; a model whose dataset is not on the machine gets one line from every stage that needs
data, and a dataset of another task gets one line, not ultralytics' traceback.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import onnx
import pytest

from slim import ultra
from slim.data import task_dataset
from slim.stages import run_name

pytestmark = pytest.mark.slow  # end to end: real trainings or the CLI in subprocesses

IMGSZ = 96  # neither slim's demo size (128) nor ultralytics' default (640)
# short runs: the stage settings a user's model gets (custom_example's) are sized for a GPU
QUICK = ["epochs=1", "batch=8", "workers=0", "plots=false"]


def _train(data: Path, folder: Path, model: str = "yolov8n.yaml") -> Path:
    """What a user brings: the best.pt of a plain ultralytics training (not slim's), copied out of its run."""
    args = dict(data=str(data), imgsz=IMGSZ, epochs=1, batch=8, workers=0, plots=False, device="cpu",
                project=str(folder / "ultralytics"), name="run", exist_ok=True, verbose=False, seed=0)
    best = ultra.train(model, args, keep_architecture=False)
    return Path(shutil.copy(best, folder / f"{Path(model).stem}-mine.pt"))


def slim(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "YOLO_CONFIG_DIR": str(cwd / ".ultralytics")}
    return subprocess.run([sys.executable, "-m", "slim", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=900)


def ok(out: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    return out


def one_line_error(out: subprocess.CompletedProcess, *words: str) -> str:
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 1, out.stderr[-3000:]
    assert lines and lines[-1].startswith("error: ") and "Traceback" not in out.stderr, out.stderr[-3000:]
    for word in words:
        assert word in lines[-1], f"{word!r} not in {lines[-1]!r}"
    return lines[-1]


@pytest.fixture(scope="module")
def user(tmp_path_factory, tiny_data):
    """An empty working folder holding model.pt (trained at 96 px on a dataset that is still there)."""
    home = tmp_path_factory.mktemp("user")
    data = Path(shutil.copytree(tiny_data.parent, home / "dataset")) / tiny_data.name
    weights = _train(data, home)
    cwd = home / "work"
    cwd.mkdir()
    return {"cwd": cwd, "weights": Path(shutil.move(weights, cwd / "model.pt")), "data": data}


def test_every_stage_takes_the_models_own_size_and_data(user):
    cwd, weights = user["cwd"], user["weights"]
    run = cwd / "runs" / "model"

    pruned = ok(slim(cwd, "prune", "--weights", "model.pt", "--prune-ratio", "0.3"))
    assert "run `slim sparsity` first" in pruned.stderr  # the not-sparse warning names the command users have
    plan = json.loads((run / "prune" / "pruned.plan.json").read_text())
    model = ultra.load_model(weights)[0]
    assert plan["sizes"]["before"] == ultra.model_size(model, IMGSZ)
    assert plan["sizes"]["before"]["gflops"] != ultra.model_size(model, 128)["gflops"]  # the check can fail

    ok(slim(cwd, "sparsity", "--weights", "model.pt", *QUICK))
    sparse_args = ultra.load_model(run / "sparsity" / "weights" / "last.pt")[1]["train_args"]
    assert sparse_args["imgsz"] == IMGSZ and sparse_args["data"] == str(user["data"])

    ok(slim(cwd, "finetune", "--weights", "runs/model/prune/pruned.pt", *QUICK))
    assert ultra.load_model(run / "finetune" / "weights" / "best.pt")[1]["train_args"]["imgsz"] == IMGSZ

    ok(slim(cwd, "transfer", "--weights", "runs/model/prune/pruned.pt", "--data", str(user["data"]),
            *[f"finetune.{k}" for k in QUICK]))
    assert ultra.load_model(run / "transfer" / "weights" / "best.pt")[1]["train_args"]["imgsz"] == IMGSZ

    ok(slim(cwd, "val", "--weights", "runs/model/prune/pruned.pt", "plots=false"))
    val = json.loads((run / "val" / "pruned.json").read_text())
    assert val["gflops"] == plan["sizes"]["after"]["gflops"]
    assert val["provenance"]["config"]["imgsz"] == IMGSZ

    ok(slim(cwd, "export", "--weights", "runs/model/prune/pruned.pt", "--int8", "export.calib_images=4"))
    for name in ("pruned.onnx", "pruned-int8.onnx"):
        dims = onnx.load(str(run / "export" / name)).graph.input[0].type.tensor_type.shape.dim
        assert [d.dim_value for d in dims] == [1, 3, IMGSZ, IMGSZ], name

    assert sorted(p.name for p in (cwd / "runs").iterdir()) == ["model"]  # no runs/demo, no generated demo set


def test_a_model_whose_dataset_is_gone_gets_one_line_from_every_stage_that_needs_data(tmp_path, tiny_data):
    data = Path(shutil.copytree(tiny_data.parent, tmp_path / "gone")) / tiny_data.name
    weights = _train(data, tmp_path)
    shutil.rmtree(data.parent)
    cwd = tmp_path / "work"
    cwd.mkdir()
    shutil.move(weights, cwd / "model.pt")
    for stage in (["sparsity", *QUICK], ["finetune", *QUICK], ["val"], ["export", "--int8"]):
        out = slim(cwd, stage[0], "--weights", "model.pt", *stage[1:])
        one_line_error(out, str(data), "data=")
    assert not (cwd / "runs").exists()  # every stage stopped before it wrote anything
    ok(slim(cwd, "prune", "--weights", "model.pt", "--out", "pruned.pt"))  # pruning needs no data
    assert (cwd / "pruned.pt").is_file()


def test_a_dataset_of_another_task_is_one_line(tmp_path, tiny_data):
    weights = _train(task_dataset("obb", tiny_data, tmp_path / "obb"), tmp_path, "yolov8n-obb.yaml")
    for stage in (["finetune", *QUICK], ["val"]):
        out = slim(tmp_path, stage[0], "--weights", str(weights), f"data={tiny_data}", *stage[1:])
        one_line_error(out, "obb", str(tiny_data), "data=")


def test_outputs_go_to_a_folder_named_for_the_model():
    assert run_name(Path("/data/yolov8s.pt")) == "yolov8s"
    assert run_name(Path("runs/detect/train3/weights/best.pt")) == "train3"  # an ultralytics run
    assert run_name(Path("runs/mine/sparsity/weights/last.pt")) == "mine"  # a slim run: the next stage continues it
    assert run_name(Path("runs/mine/prune/pruned.pt")) == "mine"
