"""The whole road at tiny size, through the real scripts: every stage writes what the next one reads."""

import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from slim.stages import OUTPUTS, PREVIOUS

pytestmark = pytest.mark.slow  # end to end: real trainings or the CLI in subprocesses

ROOT = Path(__file__).resolve().parents[1]
TINY = ["demo.n_train=16", "demo.n_val=8", "demo.imgsz=64", "imgsz=64", "train.epochs=1", "sparsity.epochs=1",
        "finetune.epochs=1", "export.calib_images=4", "prune.ratio=0.5",
        "transfer.data=demo-other"]

# Loaded by Python at start-up (sitecustomize) in the pipeline's process: records every outbound connection
# attempt to a non-loopback address. Test-only; slim itself never touches sockets.
GUARD = textwrap.dedent('''
    import os, socket
    _log = os.environ["SLIM_SOCKET_LOG"]
    def _check(address):
        host = address[0] if isinstance(address, tuple) else str(address)
        if host not in ("localhost", "::1") and not str(host).startswith("127."):
            with open(_log, "a") as f:
                f.write(f"{host}\\n")
            raise OSError(f"network access to {host} blocked by the test")
    _connect = socket.socket.connect
    def connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6):
            _check(address)
        return _connect(self, address)
    socket.socket.connect = connect
    _getaddrinfo = socket.getaddrinfo
    def getaddrinfo(host, *a, **k):
        _check((host,))
        return _getaddrinfo(host, *a, **k)
    socket.getaddrinfo = getaddrinfo
''')


def run_script(name, *args, cwd, env=None, check=True):
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / name), *args], cwd=cwd, env=env,
                         capture_output=True, text=True, timeout=900)
    if check:
        assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def pipeline_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("pipeline")
    (work / "guard").mkdir()
    (work / "guard" / "sitecustomize.py").write_text(GUARD)
    env = {**os.environ, "PYTHONPATH": f"{work / 'guard'}{os.pathsep}{ROOT}", "SLIM_SOCKET_LOG": str(work / "net.log"),
           "YOLO_CONFIG_DIR": str(work / "cfg")}
    config = ROOT / "configs" / "default.yaml"
    run_script("pipeline.py", "--config", str(config), f"project={work / 'runs'}", *TINY, cwd=work, env=env)
    return work, work / "runs" / "demo"


def test_no_connection_leaves_the_machine(pipeline_run):
    work, _ = pipeline_run
    log = work / "net.log"
    assert not log.exists(), f"pipeline tried to reach: {log.read_text()}"


def test_every_stage_wrote_its_output(pipeline_run):
    _, run = pipeline_run
    for path in ["train/weights/best.pt", "sparsity/weights/last.pt", "sparsity/sparsity.csv", "prune/pruned.pt",
                 "prune/pruned.plan.json", "finetune/weights/best.pt", "export/finetuned.onnx",
                 "export/finetuned-int8.onnx", "vis/gamma_hist.png", "vis/gamma_layers.png", "REPORT.md"]:
        assert (run / path).is_file(), path
    for stage in ["train", "sparsity", "prune", "finetune", "transfer"]:
        assert (run / stage / "config.yaml").is_file()


def _params(path):
    model = torch.load(path, weights_only=False)["model"]
    return sum(p.numel() for p in model.parameters())


def test_pruned_is_smaller_and_finetune_kept_it(pipeline_run):
    _, run = pipeline_run
    sparse, pruned = _params(run / "sparsity/weights/last.pt"), _params(run / "prune/pruned.pt")
    assert pruned < 0.8 * sparse
    assert _params(run / "finetune/weights/best.pt") == pruned
    transferred = torch.load(run / "transfer/weights/best.pt", weights_only=False)["model"]
    assert list(transferred.names.values()) == ["hexagon", "diamond", "arrow"] and transferred.model[-1].nc == 3
    assert (run / "prune/pruned.pt").stat().st_size < (run / "sparsity/weights/last.pt").stat().st_size


def test_val_fields_are_the_same_for_every_model(pipeline_run):
    _, run = pipeline_run
    results = {tag: json.loads((run / "val" / f"{tag}.json").read_text()) for tag in ("baseline", "finetuned")}
    assert results["baseline"].keys() == results["finetuned"].keys()
    assert {"mAP50", "mAP50_95", "precision", "recall", "params", "gflops", "speed_ms"} <= results["baseline"].keys()
    assert results["finetuned"]["gflops"] < results["baseline"]["gflops"]


def test_report_has_a_row_per_model_and_its_pictures(pipeline_run):
    _, run = pipeline_run
    report = (run / "REPORT.md").read_text()
    for tag in ("baseline", "sparse", "pruned", "finetuned", "finetuned-int8", "transferred"):
        assert f"| {tag} |" in report
    assert "gamma_hist.png" in report and "slim pipeline --config " in report  # how to rebuild it


def test_rerunning_a_stage_never_replaces_it_silently(pipeline_run):
    work, run = pipeline_run
    before = (run / "finetune/weights/best.pt").stat().st_mtime_ns
    out = run_script("train.py", "--config", str(ROOT / "configs/default.yaml"), f"project={work / 'runs'}", *TINY,
                     cwd=work, check=False)
    assert out.returncode == 2 and "already holds a train run" in out.stderr  # never silently replaced
    assert (run / "finetune/weights/best.pt").stat().st_mtime_ns == before


def test_every_stage_records_what_made_it(pipeline_run):
    _, run = pipeline_run
    records = {stage: json.loads((run / stage / "provenance.json").read_text())
               for stage in ("train", *PREVIOUS)}  # transfer too: TINY sets transfer.data
    assert records["train"]["config"]["model"] == "yolov8n.yaml" and "demo.generator" in records["train"]["config"]
    assert records["prune"]["config"]["prune.ratio"] == 0.5
    for stage, previous in PREVIOUS.items():
        made_from = run / previous / OUTPUTS[previous]
        assert records[stage]["input"]["path"] == str(made_from)
        assert records[stage]["input"]["sha256"] == hashlib.sha256(made_from.read_bytes()).hexdigest()


def test_prune_weights_from_train_keeps_the_baselines_weights_in_the_sparse_models_channels(pipeline_run):
    work, run = pipeline_run
    out = work / "from_train.pt"
    run_script("prune.py", "--config", str(ROOT / "configs/default.yaml"), f"project={work / 'runs'}", *TINY,
               "prune.weights_from=train", "--out", str(out), cwd=work)
    meta = torch.load(out, weights_only=False)["slim"]
    assert meta["weights_from"] == str(run / "train/weights/best.pt")
    assert meta["plan"]["keep"] == json.loads((run / "prune/pruned.plan.json").read_text())["plan"]["keep"]
    keep = meta["plan"]["keep"]["model.0"]
    pruned = torch.load(out, weights_only=False)["model"].model[0].conv.weight
    for source, same in (("train/weights/best.pt", True), ("sparsity/weights/last.pt", False)):
        ckpt = torch.load(run / source, weights_only=False)
        weight = (ckpt["ema"] or ckpt["model"]).model[0].conv.weight[keep]
        assert torch.equal(pruned, weight.to(pruned.dtype)) == same, source


@pytest.fixture(scope="module")
def changed_run(pipeline_run, tmp_path_factory):
    """The finished pipeline, copied, then run again with prune.ratio=0.3: (work, run, stdout+stderr, mtimes before)."""
    work = tmp_path_factory.mktemp("changed")
    shutil.copytree(pipeline_run[0] / "runs", work / "runs", symlinks=True)
    run = work / "runs" / "demo"
    outputs = ["train/weights/best.pt", "sparsity/weights/last.pt", "prune/pruned.pt", "finetune/weights/best.pt"]
    before = {path: (run / path).stat().st_mtime_ns for path in outputs}
    out = run_script("pipeline.py", "--config", str(ROOT / "configs/default.yaml"), f"project={work / 'runs'}", *TINY,
                     "prune.ratio=0.3", "export.int8=false", cwd=work)
    return work, run, out.stdout + out.stderr, before


def test_a_changed_key_redoes_its_stage_and_those_after_it(changed_run):
    _, run, log, before = changed_run
    assert "train: reusing" in log and "sparsity: reusing" in log
    assert "===== prune: redoing it, made with prune.ratio=0.5 (now 0.3) =====" in log
    redo = next(line for line in log.splitlines() if line.startswith("===== finetune"))
    assert redo.startswith("===== finetune: redoing it, made with ") and "prune/pruned.pt" in redo  # its input
    for path, mtime in before.items():
        assert ((run / path).stat().st_mtime_ns == mtime) == path.startswith(("train", "sparsity")), path
    assert json.loads((run / "prune/pruned.plan.json").read_text())["plan"]["ratio"] == 0.3
    assert json.loads((run / "prune/provenance.json").read_text())["config"]["prune.ratio"] == 0.3
    pruned = hashlib.sha256((run / "prune/pruned.pt").read_bytes()).hexdigest()
    assert json.loads((run / "finetune/provenance.json").read_text())["input"]["sha256"] == pruned


def test_a_stage_whose_input_is_stale_refuses_and_names_the_key(changed_run):
    work, run, _, _ = changed_run
    out = run_script("finetune.py", "--config", str(ROOT / "configs/default.yaml"), f"project={work / 'runs'}", *TINY,
                     cwd=work, check=False)  # TINY says prune.ratio=0.5; the prune folder now holds 0.3
    assert out.returncode == 1 and out.stderr.strip().splitlines()[-1].startswith("error: ")
    assert "pruned.pt was made with prune.ratio=0.3 (now 0.5)" in out.stderr and "Traceback" not in out.stderr


def test_val_names_a_pipeline_model_as_the_report_does(changed_run):
    work, run, _, _ = changed_run
    out = run_script("val.py", "--config", str(ROOT / "configs/default.yaml"), f"project={work / 'runs'}", *TINY,
                     "prune.ratio=0.3", cwd=work)  # the same model and settings as the report's: no refusal
    printed = out.stdout[out.stdout.rindex("\n{\n") :]  # after ultralytics' own log lines
    assert json.loads(printed)["model"] == "finetuned"
    assert sorted(p.stem for p in (run / "val").glob("*.json")) == [  # no second name (finetune) for finetuned
        "baseline", "baseline-int8", "finetuned", "finetuned-int8", "pruned", "sparse", "transferred"]
    resume = run_script("finetune.py", "--config", str(ROOT / "configs/default.yaml"), f"project={work / 'runs'}",
                        *TINY, "prune.ratio=0.3", "--resume", cwd=work, check=False)
    assert resume.returncode == 1 and "nothing to resume" in resume.stderr and "Traceback" not in resume.stderr


def test_make_clean_removes_the_demo_outputs_only(tmp_path):
    for folder in ("runs/demo/prune", "runs/demo_data/demo-v3", "runs/my_experiment/train", "runs/demo_vs_tp"):
        (tmp_path / folder).mkdir(parents=True)
    subprocess.run(["make", "-f", str(ROOT / "Makefile"), "clean"], cwd=tmp_path, check=True, capture_output=True)
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["demo_data", "my_experiment"]
