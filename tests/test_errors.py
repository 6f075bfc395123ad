"""Every bad input gets one clear error, and nothing a user has is ever lost; checked through the real scripts.

Each case runs a script in a subprocess and checks its exit status (2 wrong usage, 1 failure while running), that
stderr ends in one `error: ...` line naming the problem, and that no traceback is shown without --verbose.
The runs start together when the module's fixture is built, two at a time, so that their start-up overlaps
(most of a run is importing torch); each test then waits for its own run.
"""

import hashlib
import importlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
from torch import nn

from slim import provenance, ultra
from slim.data import make_demo_dataset

pytestmark = pytest.mark.slow  # end to end: real trainings or the CLI in subprocesses

ROOT = Path(__file__).resolve().parents[1]
CONFIG = str(ROOT / "configs" / "default.yaml")
TINY = ["demo.n_train=8", "demo.n_val=4", "demo.imgsz=64", "imgsz=64"]

# A layer slim does not know. It lives in its own module, written into the test's folder, so that the checkpoint
# that holds it unpickles in the script's process too (with that folder on PYTHONPATH).
UNKNOWN_LAYER = textwrap.dedent('''
    from torch import nn

    class Wrapped(nn.Module):
        """Runs the layer it wraps; carries the attributes ultralytics' forward loop reads (f, i, type)."""

        def __init__(self, inner):
            super().__init__()
            self.inner, self.f, self.i, self.type = inner, inner.f, inner.i, "Wrapped"

        def forward(self, x):
            return self.inner(x)
''')

# Run as `python -c KILLER script args...`: the script runs as usual, but its process SIGKILLs itself once
# KILL_AFTER_BYTES bytes of a torch.save went out, as a power cut or the OOM killer would, in the middle of a save.
KILLER = textwrap.dedent('''
    import os, runpy, signal, sys
    import torch

    class Dying:
        def __init__(self, f):
            self.f, self.left = f, int(os.environ["KILL_AFTER_BYTES"])
        def write(self, data):
            n = self.f.write(data)
            self.left -= n
            if self.left <= 0:
                self.f.flush()
                os.kill(os.getpid(), signal.SIGKILL)
            return n
        def __getattr__(self, name):
            return getattr(self.f, name)

    _save = torch.save
    torch.save = lambda obj, f, *a, **k: _save(obj, Dying(f), *a, **k)
    sys.argv = sys.argv[1:]
    runpy.run_path(sys.argv[0], run_name="__main__")
''')

# sitecustomize for the bare-name case: any attempt to reach the network is logged and refused
NO_NETWORK = textwrap.dedent('''
    import os, socket
    def _refuse(*args, **kwargs):
        with open(os.environ["SLIM_NET_LOG"], "a") as f:
            f.write(f"{args}\\n")
        raise OSError("network access blocked by the test")
    socket.socket.connect = _refuse
    socket.getaddrinfo = _refuse
''')


def script(name: str, *args: str, cwd: Path, env: dict | None = None, python: tuple = ()):
    """Run scripts/<name> with the repo config and tiny sizes; `python`: interpreter arguments (e.g. -c code).

    Returns:
        the subprocess.CompletedProcess, stdout and stderr as text.
    """
    cmd = [sys.executable, *python, str(ROOT / "scripts" / name), "--config", CONFIG, f"project={cwd / 'runs'}",
           *TINY, *args]
    return subprocess.run(cmd, cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True, text=True,
                          timeout=300)


def assert_one_line_error(out: subprocess.CompletedProcess, code: int, *words: str) -> None:
    """Exit `code`, stderr ends in one `error:` line holding every word, and no traceback."""
    lines = out.stderr.strip().splitlines()
    assert out.returncode == code, f"exit {out.returncode}\n{out.stderr[-3000:]}"
    assert lines and lines[-1].startswith("error: "), out.stderr[-3000:]
    for word in words:
        assert word in lines[-1], f"{word!r} not in {lines[-1]!r}"
    assert "Traceback" not in out.stderr


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- the inputs ----------------------------------------------------------------------------------------------
def _yolo() -> nn.Module:
    from ultralytics import YOLO

    return YOLO("yolov8n.yaml").model


def _sparse_like(model: nn.Module) -> nn.Module:
    """Half of every BN's gammas near zero, as after sparsity training; model.2.cv2's all of them, smallest of all.

    Any ratio above 32/4480 of the prunable channels would then empty model.2.cv2 but for the per-layer floor.
    """
    g = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            r = torch.rand(m.num_features, generator=g)
            m.weight.data = torch.where(torch.rand(m.num_features, generator=g) < 0.5, 1e-4 * (1 + r), 0.5 + 0.5 * r)
    bn = model.model[2].cv2.bn
    bn.weight.data = 1e-6 * (1 + torch.rand(bn.num_features, generator=g))
    return model


def _with_unknown_layer(folder: Path) -> nn.Module:
    (folder / "slim_test_layers.py").write_text(UNKNOWN_LAYER)
    sys.path.insert(0, str(folder))
    try:
        layers = importlib.import_module("slim_test_layers")
    finally:
        sys.path.remove(str(folder))
    model = _yolo()
    model.model[4] = layers.Wrapped(model.model[4])  # a C2f: its input (model.3) and its insides stay whole
    return model


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    """A folder with good, bad and odd checkpoints and datasets, named as the cases below use them."""
    d = tmp_path_factory.mktemp("errors")
    save = lambda model, name: ultra.save_checkpoint(model, d / name, {}, {})  # noqa: E731
    good = save(_yolo(), "yolo.pt")  # fresh: every gamma is 1, as in a model never sparsity-trained
    (d / "yolo.pt.sha256").write_text(digest(good))
    save(_sparse_like(_yolo()), "sparse.pt")
    save(_yolo().fuse(verbose=False), "fused.pt")  # Conv+BN folded into one conv: no BatchNorm left
    (d / "layers").mkdir()
    save(_with_unknown_layer(d / "layers"), "unknown_layer.pt")
    (d / "empty.pt").write_bytes(b"")
    (d / "random.pt").write_bytes(bytes((i * 97 + 13) % 256 for i in range(4096)))
    (d / "text.pt").write_text("model: yolov8n\nthis is a text file, not a checkpoint\n")
    (d / "truncated.pt").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    torch.save(ultra.load_model(good)[0].state_dict(), d / "state_dict.pt")
    torch.save({"model": nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8))}, d / "not_yolo.pt")

    data = make_demo_dataset(d / "demo", n_train=8, n_val=4, imgsz=64)  # 5 classes; the checkpoints have 80
    text = data.read_text()
    (d / "no_train_images.yaml").write_text(text.replace("train: images/train", "train: images/nope"))
    (d / "no_val_images.yaml").write_text(text.replace("val: images/val", "val: images/nope"))
    (d / "malformed.yaml").write_text("name: demo\nprune:\n  ratio: [0.5\n")
    (d / "duplicate_key.yaml").write_text("prune:\n  ratio: 0.5\n  min_channels: 4\n  ratio: 0.7\n")
    (d / "unknown_key.yaml").write_text("prune:\n  ratoi: 0.5\n")
    (d / "wrong_type.yaml").write_text("prune:\n  min_channels: eight\n")
    (d / "guard").mkdir()
    (d / "guard" / "sitecustomize.py").write_text(NO_NETWORK)
    _earlier_results(d)
    return d


def _earlier_results(d: Path) -> None:
    """What earlier runs left: a finished finetune run (named done), a checkpoint inside the folder a finetune
    run named own would write to, and val and export results of yolo.pt tagged 'kept' (tagged 'old' without record)."""
    for name, file in (("done", "last.pt"), ("own", "best.pt")):
        (d / "runs" / name / "finetune" / "weights").mkdir(parents=True)
        shutil.copy(d / "yolo.pt", d / "runs" / name / "finetune" / "weights" / file)  # epoch -1: a finished run
    made_from = provenance.of_file(d / "yolo.pt", {"imgsz": 64})
    (d / "runs" / "demo" / "val").mkdir(parents=True)
    (d / "runs" / "demo" / "val" / "kept.json").write_text(json.dumps({"model": "kept", "provenance": made_from}))
    (d / "runs" / "demo" / "export").mkdir(parents=True)
    for tag in ("kept", "old"):
        (d / "runs" / "demo" / "export" / f"{tag}.onnx").write_bytes(b"an earlier export the user keeps")
    (d / "runs" / "demo" / "export" / "kept.provenance.json").write_text(json.dumps(made_from))


# --- cases that fail before any work: (script, arguments, exit status, words the error line must hold) ------
PRUNE = ("prune.py", "--out", "out.pt")
CASES = {
    # weights
    "missing weights": (*PRUNE, "--weights", "nope/missing.pt", 1, "does not exist", "--weights"),
    "empty weights": (*PRUNE, "--weights", "empty.pt", 1, "is empty"),
    "random bytes": (*PRUNE, "--weights", "random.pt", 1, "not a readable PyTorch checkpoint", "not a PyTorch file"),
    "text file": (*PRUNE, "--weights", "text.pt", 1, "not a readable PyTorch checkpoint", "text file"),
    "truncated checkpoint": (*PRUNE, "--weights", "truncated.pt", 1, "not a readable PyTorch", "truncated"),
    "plain state_dict": (*PRUNE, "--weights", "state_dict.pt", 1, "plain state_dict", "full ultralytics checkpoint"),
    "non-YOLO checkpoint": (*PRUNE, "--weights", "not_yolo.pt", 1, "holds a Sequential", "not an ultralytics YOLO"),
    "missing weights, val": ("val.py", "--weights", "nope/missing.pt", 1, "does not exist"),
    "random bytes, export": ("export.py", "--weights", "random.pt", 1, "not a readable PyTorch checkpoint"),
    "state_dict, val": ("val.py", "--weights", "state_dict.pt", 1, "plain state_dict"),
    "weights_from missing": (*PRUNE, "--weights", "sparse.pt", "--weights-from", "nope/missing.pt", 1,
                             "prune.weights_from", "does not exist"),
    "weights_from another model": (*PRUNE, "--weights", "sparse.pt", "--weights-from", "fused.pt", 1,
                                   "'fused.pt' is not the model 'sparse.pt' was trained from", "missing there",
                                   "sparsity training started from"),
    # numbers
    "ratio 0": (*PRUNE, "--weights", "yolo.pt", "--prune-ratio", "0", 2, "prune.ratio", "(0, 1)", "got 0.0"),
    "ratio 1": (*PRUNE, "--weights", "yolo.pt", "--prune-ratio", "1", 2, "prune.ratio", "(0, 1)", "got 1.0"),
    "ratio -0.5": (*PRUNE, "--weights", "yolo.pt", "--prune-ratio", "-0.5", 2, "prune.ratio", "got -0.5"),
    "ratio 1.5": (*PRUNE, "--weights", "yolo.pt", "--prune-ratio", "1.5", 2, "prune.ratio", "got 1.5"),
    "ratio nan": (*PRUNE, "--weights", "yolo.pt", "--prune-ratio", "nan", 2, "prune.ratio", "got nan"),
    "ratio abc": (*PRUNE, "--weights", "yolo.pt", "--prune-ratio", "abc", 2, "prune.ratio must be a float", "'abc'"),
    "negative sr": ("train_sparsity.py", "--weights", "yolo.pt", "--sr", "-0.01", 2, "sparsity.sr", ">= 0"),
    "epochs 0": ("finetune.py", "--weights", "yolo.pt", "--epochs", "0", 2, "finetune.epochs", "must be >= 1"),
    "threshold removes nothing": (*PRUNE, "--weights", "sparse.pt", "--threshold", "1e-9", 2, "removes nothing",
                                  "pass a threshold above"),
    "threshold removes everything": (*PRUNE, "--weights", "sparse.pt", "--threshold", "100", 2,
                                     "removes every channel", "pass a threshold above"),
    # config
    "missing config": (*PRUNE, "--weights", "yolo.pt", "--config", "nope.yaml", 2, "nope.yaml not found"),
    "malformed config": (*PRUNE, "--weights", "yolo.pt", "--config", "malformed.yaml", 2, "not valid YAML", "line"),
    "duplicate key": (*PRUNE, "--weights", "yolo.pt", "--config", "duplicate_key.yaml", 2, "not valid YAML at line 4",
                      "key 'ratio' given twice"),
    "unknown key": (*PRUNE, "--weights", "yolo.pt", "--config", "unknown_key.yaml", 2, "unknown key 'prune.ratoi'",
                    "did you mean 'prune.ratio'?"),
    "unknown key override": (*PRUNE, "--weights", "yolo.pt", "prune.min_chanels=4", 2, "prune.min_chanels",
                             "did you mean 'prune.min_channels'?"),
    "wrong type": (*PRUNE, "--weights", "yolo.pt", "--config", "wrong_type.yaml", 2, "prune.min_channels",
                   "must be an int", "'eight'"),
    # data
    "missing dataset yaml": ("train.py", "data=/nope.yaml", 1, "'/nope.yaml' does not exist", "pass data="),
    "missing train images": ("train.py", "data=no_train_images.yaml", 1, "train images", "do not exist"),
    "missing val images": ("val.py", "--weights", "yolo.pt", "data=no_val_images.yaml", 1, "images not found"),
    # finetune accepts another class count (transfer, tests/test_transfer.py); sparsity training does not
    "class count differs, sparsity": ("train_sparsity.py", "--weights", "yolo.pt", "data=demo/data.yaml", 1,
                                      "has 5 classes but the model has 80"),
    "class count differs, val": ("val.py", "--weights", "yolo.pt", "data=demo/data.yaml", 1,
                                 "has 5 classes but the model has 80"),
    "missing dataset yaml, val": ("val.py", "--weights", "yolo.pt", "data=/nope.yaml", 1, "'/nope.yaml' does not exist"),
    # ultralytics arguments: each would fail inside ultralytics or torch with a traceback, some after training began
    "no such GPU, val": ("val.py", "--weights", "yolo.pt", "device=5", 1, "device='5' is not available here",
                         "device=cpu"),
    "no such GPU, train": ("train.py", "device=cuda:3", 1, "device='cuda:3' is not available here"),
    "batch -3, val": ("val.py", "--weights", "yolo.pt", "val.batch=-3", 2, "val.batch must be a positive int", "-3"),
    "batch x, train": ("train.py", "train.batch=x", 2, "train.batch must be a positive int", "AutoBatch", "'x'"),
    "batch 0, finetune": ("finetune.py", "--weights", "yolo.pt", "finetune.batch=0", 2, "finetune.batch", "got 0"),
    "workers -1": ("train_sparsity.py", "--weights", "yolo.pt", "sparsity.workers=-1", 2,
                   "sparsity.workers must be >= 0", "got -1"),
    "imgsz 0": ("val.py", "--weights", "yolo.pt", "imgsz=0", 2, "imgsz must be >= 32", "got 0"),
    "resume a finished run": ("finetune.py", "name=done", "--resume", 1, "nothing to resume", "finished"),
    "resume without a run": ("finetune.py", "name=none", "--resume", 1, "no finetune run to resume", "(it has no "
                             "weights/last.pt): start one with `slim finetune`"),
    "resume sparsity without a run": ("train_sparsity.py", "name=none", "--resume", 1, "no sparsity run to resume"),
    # models
    "no BatchNorm (fused)": (*PRUNE, "--weights", "fused.pt", 1, "no BatchNorm layers", "nothing to prune"),
    "unknown layer not importable": (*PRUNE, "--weights", "unknown_layer.pt", 1, "slim_test_layers", "PYTHONPATH"),
    # nothing lost
    "--out is the input": ("prune.py", "--weights", "yolo.pt", "--out", "./layers/../yolo.pt", 2,
                           "never overwrites its input"),
    "--out is weights_from": ("prune.py", "--weights", "sparse.pt", "--weights-from", "yolo.pt", "--out", "yolo.pt",
                              "--exist-ok", 2, "is an input checkpoint", "never overwrites its input"),
    "--out exists": ("prune.py", "--weights", "yolo.pt", "--out", "text.pt", 2, "already exists", "--exist-ok"),
    "--out is a folder": ("prune.py", "--weights", "yolo.pt", "--out", "layers", "--exist-ok", 2, "is a folder",
                          "layers/pruned.pt"),
    "finetune over its own input": ("finetune.py", "name=own", "--weights", "runs/own/finetune/weights/best.pt",
                                    "--exist-ok", 2, "never overwrites its input"),
    "val result of another model": ("val.py", "--weights", "sparse.pt", "--tag", "kept", 2, "val/kept.json already",
                                    "yolo.pt (now sparse.pt)", "--exist-ok", "--tag"),
    "export of another model": ("export.py", "--weights", "sparse.pt", "--tag", "kept", 2, "kept.onnx already",
                                "yolo.pt (now sparse.pt)", "--exist-ok"),
    "export without a record": ("export.py", "--weights", "yolo.pt", "--tag", "old", 2, "old.onnx already",
                                "did not record"),
}


def _split(case: tuple) -> tuple:
    """(script, args, code, words): the exit status is the first int."""
    at = next(i for i, v in enumerate(case) if isinstance(v, int))
    return case[0], case[1:at], case[at], case[at + 1 :]


@pytest.fixture(scope="module")
def started(work):
    """Every run the tests look at, started in the background; name -> Future of its CompletedProcess."""
    runs = {name: (*_split(case)[:2], {}) for name, case in CASES.items()}  # name -> (script, args, env)
    runs["bare name"] = ("prune.py", ("--weights", "yolov8n.pt", "--out", "out.pt"),
                         {"PYTHONPATH": f"{work / 'guard'}{os.pathsep}{ROOT}", "SLIM_NET_LOG": str(work / "net.log")})
    runs["verbose"] = ("prune.py", ("--weights", "random.pt", "--out", "out.pt", "--verbose"), {})
    runs["never sparsity-trained"] = ("prune.py", ("--weights", "yolo.pt"), {})  # to runs/demo/prune/pruned.pt
    runs["floor"] = ("prune.py", ("--weights", "sparse.pt", "--out", "floor.pt", "--prune-ratio", "0.3"), {})
    runs["unknown layer"] = ("prune.py", ("--weights", "unknown_layer.pt", "--out", "unknown.pt"),
                             {"PYTHONPATH": f"{work / 'layers'}{os.pathsep}{ROOT}"})
    pool = ThreadPoolExecutor(max_workers=max(2, min(4, os.cpu_count() or 2)))
    yield {name: pool.submit(script, name_, *args, cwd=work, env=env) for name, (name_, args, env) in runs.items()}
    pool.shutdown(cancel_futures=True)


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_clear_error(started, case):
    _, _, code, words = _split(CASES[case])
    assert_one_line_error(started[case].result(), code, *words)


def test_bad_input_writes_nothing(started, work):
    for case in CASES:
        started[case].result()
    assert not (work / "out.pt").exists()
    assert digest(work / "yolo.pt") == (work / "yolo.pt.sha256").read_text()  # `--out` at the input changed nothing
    assert not (work / "runs" / "demo" / "train").exists()  # the failed train runs did not claim a folder
    assert digest(work / "runs" / "own" / "finetune" / "weights" / "best.pt") == digest(work / "yolo.pt")
    assert digest(work / "runs" / "done" / "finetune" / "weights" / "last.pt") == digest(work / "yolo.pt")
    export = work / "runs" / "demo" / "export"
    assert {p.name for p in export.iterdir()} == {"kept.onnx", "old.onnx", "kept.provenance.json"}
    assert (export / "kept.onnx").read_bytes() == b"an earlier export the user keeps"
    assert json.loads((work / "runs" / "demo" / "val" / "kept.json").read_text())["model"] == "kept"


def test_bare_model_name_offline_says_where_to_put_it(started, work):
    out = started["bare name"].result()
    assert_one_line_error(out, 1, "'yolov8n.pt' not found and ultralytics is offline", f"put it in {work}",
                          "weights_dir")
    assert not (work / "net.log").exists(), (work / "net.log").read_text()
    assert not (work / "yolov8n.pt").exists()


def test_verbose_shows_the_traceback(started):
    out = started["verbose"].result()
    assert out.returncode == 1 and "Traceback" in out.stderr
    assert out.stderr.strip().splitlines()[-1].startswith("error: ")


# --- models --------------------------------------------------------------------------------------------------
def test_never_sparsity_trained_model_warns_with_the_fraction_then_prunes(started, work):
    out = started["never sparsity-trained"].result()
    assert out.returncode == 0, out.stderr[-3000:]
    assert "warning: only 0.0% of prunable gammas are below 0.01" in out.stderr
    assert "never sparsity-trained" in out.stderr and "Traceback" not in out.stderr
    assert ultra.load_model(work / "runs" / "demo" / "prune" / "pruned.pt")[1]["slim"]["plan"]["ratio"] == 0.5


def test_ratio_that_would_empty_a_layer_keeps_its_floor_and_says_so(started, work):
    out = started["floor"].result()
    assert out.returncode == 0, out.stderr[-3000:]
    warning = next(line for line in out.stderr.splitlines() if "per-layer floor" in line)
    assert warning.startswith("warning: ") and "model.2.cv2" in warning
    assert "never sparsity-trained" not in out.stderr  # half the gammas are near zero: this one looks sparse
    model, ckpt = ultra.load_model(work / "floor.pt")
    assert model.model[2].cv2.conv.out_channels == 8  # all 32 gammas are the smallest; min_channels 8 holds
    assert "model.2.cv2" in ckpt["slim"]["plan"]["floored"]


def test_unknown_layer_is_left_whole_and_named(started, work):
    out = started["unknown layer"].result()
    assert out.returncode == 0, out.stderr[-3000:]
    assert "warning: slim does not know module Wrapped" in out.stderr
    plan = ultra.load_model(work / "unknown.pt")[1]["slim"]["plan"]  # its class is importable here since the fixture
    assert plan["keep"] and not [n for n in plan["keep"] if n.startswith(("model.3", "model.4."))]


# --- nothing lost --------------------------------------------------------------------------------------------
def test_stage_killed_mid_write_leaves_the_old_file_whole(work):
    out_pt = work / "killed" / "pruned.pt"
    out_pt.parent.mkdir()
    out_pt.write_bytes(b"an earlier pruned model the user keeps")
    before = digest(out_pt)
    out = script("prune.py", "--weights", "yolo.pt", "--out", str(out_pt), "--exist-ok", cwd=work,
                 python=("-c", KILLER), env={"KILL_AFTER_BYTES": "1000000"})
    assert out.returncode == -9, out.stderr[-3000:]  # it did die by SIGKILL, inside torch.save
    assert digest(out_pt) == before
    partial = [p for p in out_pt.parent.iterdir() if p != out_pt]
    assert [p.name.startswith(".pruned.pt.") for p in partial] == [True]  # the half-written bytes went elsewhere
    assert partial[0].stat().st_size >= 1_000_000


def test_rerunning_a_stage_is_refused_unless_exist_ok(started, work):
    assert started["never sparsity-trained"].result().returncode == 0  # the earlier run
    pruned = work / "runs" / "demo" / "prune" / "pruned.pt"
    before = digest(pruned)
    again = script("prune.py", "--weights", "yolo.pt", "prune.ratio=0.3", cwd=work)
    assert_one_line_error(again, 2, "already holds a prune run, made with prune.ratio=0.5 (now 0.3)", "--exist-ok")
    assert digest(pruned) == before
    replaced = script("prune.py", "--weights", "yolo.pt", "--exist-ok", cwd=work)
    assert replaced.returncode == 0, replaced.stderr[-3000:]
    assert digest(pruned) != before  # a new checkpoint (its date differs), complete: it loads
    assert ultra.load_model(pruned)[1]["slim"]["plan"]["ratio"] == 0.5
