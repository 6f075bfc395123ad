"""slim as an installed tool: the `slim` command from a folder outside the repository, the packaged configs
after a non-editable install, the offline guard's rule, and an `import slim` that leaves the user's settings alone.

The install is `pip install --no-deps --target` of a copy of this repository: a real, non-editable install whose
console script and package data are what a user gets, without reinstalling torch into a fresh venv.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from ultralytics.nn.tasks import DetectionModel

from slim import ultra
from slim.commands import COMMANDS
from slim.config import config_to_dict, load_config
from slim.offline import should_go_offline

ROOT = Path(__file__).resolve().parents[1]
LEFT_OUT = shutil.ignore_patterns(".git", "runs", ".venv", "build", "*.egg-info", "__pycache__", ".pytest_cache")


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """`pip install .` of a copy of the repository into a folder: its site folder (slim/, bin/slim)."""
    tmp = tmp_path_factory.mktemp("install")
    shutil.copytree(ROOT, tmp / "src", ignore=LEFT_OUT, symlinks=True)  # the build writes beside the sources
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-compile",
           "--target", str(tmp / "site"), str(tmp / "src")]
    out = subprocess.run(pip, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return tmp / "site"


def run_installed(site: Path, *args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run the installed console script, with only the installed copy of slim importable."""
    env = {**os.environ, "PYTHONPATH": str(site), **(env or {})}
    return subprocess.run([str(site / "bin" / "slim"), *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=600)


def test_help_lists_every_command(installed, tmp_path):
    out = run_installed(installed, "--help", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    listed = [line.split()[0] for line in out.stdout.splitlines() if line.startswith("  ")]
    assert listed == list(COMMANDS)
    assert {"train", "sparsity", "prune", "finetune", "val", "export", "vis", "pipeline", "report"} <= set(listed)


@pytest.mark.slow
def test_packaged_configs_load_from_the_installed_copy(installed, tmp_path):
    code = ("import json, slim.config as c; "
            "print(json.dumps([str(c.PACKAGED), c.packaged_configs(), c.load_config('default').name, "
            "c.load_config('custom_example.yaml').name]))")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(installed)},
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    folder, names, default, custom = json.loads(out.stdout.strip().splitlines()[-1])
    assert Path(folder) == installed / "slim" / "configs"
    assert names == sorted(p.stem for p in (ROOT / "configs").glob("*.yaml"))  # every config in configs/ ships
    assert (default, custom) == ("demo", "custom")
    for name in names:  # the checkout's links became the files themselves
        packaged = installed / "slim" / "configs" / f"{name}.yaml"
        assert not packaged.is_symlink() and packaged.read_text() == (ROOT / "configs" / f"{name}.yaml").read_text()


def test_every_config_in_configs_is_packaged():
    # slim/configs/ links to configs/ in a checkout, so `--config configs/default.yaml` and `default` are one file
    for path in (ROOT / "configs").glob("*.yaml"):
        assert (ROOT / "slim" / "configs" / path.name).resolve() == path.resolve(), f"link slim/configs/{path.name}"
    assert config_to_dict(load_config("default")) == config_to_dict(load_config(ROOT / "configs" / "default.yaml"))


@pytest.mark.slow
def test_stages_run_outside_the_repository_on_absolute_paths(installed, tiny_data, tmp_path):
    names = yaml.safe_load(tiny_data.read_text())["names"]
    model = DetectionModel("yolov8n.yaml", nc=len(names), verbose=False)
    model.names = names
    weights = ultra.save_checkpoint(model, tmp_path / "mine" / "model.pt", {"imgsz": 64}, {})
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    common = (f"project={tmp_path / 'runs'}", "imgsz=64", f"data={tiny_data}")
    pruned = tmp_path / "mine" / "pruned.pt"
    out = run_installed(installed, "prune", "--weights", str(weights), "--out", str(pruned), "--prune-ratio", "0.3",
                        *common, cwd=elsewhere)
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"prune: {pruned}" in out.stdout and pruned.is_file()
    out = run_installed(installed, "val", "--config", "default", "--weights", str(pruned), *common, cwd=elsewhere)
    assert out.returncode == 0, out.stderr[-3000:]
    row = json.loads(out.stdout[[m.start() for m in re.finditer(r"^\{$", out.stdout, re.M)][-1]:])
    assert row["weights"] == str(pruned) and row["params"] < sum(p.numel() for p in model.parameters())
    assert (tmp_path / "runs" / "demo" / "val").is_dir() and not any(elsewhere.iterdir())


def test_unknown_command_is_one_line(installed, tmp_path):
    out = run_installed(installed, "prnue", cwd=tmp_path)
    assert out.returncode == 2 and out.stderr.strip() == "error: unknown command 'prnue': did you mean 'prune'? " \
                                                         "(see slim --help)"


@pytest.mark.slow
def test_missing_config_names_the_packaged_ones(installed, tmp_path):
    out = run_installed(installed, "data", "--config", "configs/default.yaml", cwd=tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    names = ", ".join(sorted(p.stem for p in (ROOT / "configs").glob("*.yaml")))
    assert out.stderr.strip().splitlines()[-1].endswith(f"or a packaged config's name ({names})")


# --- the offline guard and the user's settings ------------------------------------------------------------------
def _clean_env(home: Path, **extra: str) -> dict:
    """os.environ without the guard's variables (which conftest sets), with HOME in a test folder."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("YOLO_", "SLIM_", "XDG_CONFIG_HOME"))}
    return {**env, "HOME": str(home), "PYTHONPATH": str(ROOT), **extra}


def _files(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_import_slim_changes_no_environment_variable_and_writes_no_file(tmp_path):
    # ultralytics and matplotlib set a few variables and write their settings and caches at their first import:
    # measure slim from after that
    first = "import ultralytics.utils, matplotlib.pyplot"
    code = textwrap.dedent(f'''
        import os
        {first}
        before = dict(os.environ)
        import slim, slim.cli, slim.commands, slim.config, slim.stages, slim.pipeline, slim.deploy, slim.ultra
        changed = sorted(k for k in set(before) | set(os.environ) if before.get(k) != os.environ.get(k))
        print(changed)
    ''')
    home = tmp_path / "home"
    home.mkdir()
    out = subprocess.run([sys.executable, "-c", first], env=_clean_env(home), cwd=tmp_path, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    files = _files(home)  # ultralytics' own settings.json, matplotlib's font cache
    out = subprocess.run([sys.executable, "-c", code], env=_clean_env(home), cwd=tmp_path, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"
    assert _files(home) == files  # the user's ultralytics settings are as they were, and nothing was added


@pytest.mark.parametrize("configured, guarded", [
    ({}, True),
    ({"YOLO_OFFLINE": "0"}, False),
    ({"YOLO_CONFIG_DIR": "/somewhere"}, False),
    ({"YOLO_OFFLINE": "1", "SLIM_OFFLINE": "0"}, False),
    ({"YOLO_CONFIG_DIR": "/somewhere", "SLIM_OFFLINE": "1"}, True),
])
def test_guard_rule_follows_the_users_configuration(configured, guarded, tmp_path):
    assert should_go_offline({"XDG_CONFIG_HOME": str(tmp_path), **configured}) is guarded
    (tmp_path / "Ultralytics").mkdir()
    (tmp_path / "Ultralytics" / "settings.json").write_text("{}")  # the user has run ultralytics before
    assert should_go_offline({"XDG_CONFIG_HOME": str(tmp_path), **configured}) is ("SLIM_OFFLINE" in configured
                                                                                      and guarded)


def test_command_applies_the_guard_only_for_an_unconfigured_user(tmp_path):
    fonts = Path(".cache") / "slim" / "Ultralytics" / "Arial.Unicode.ttf"  # written by the guard alone
    users = [("fresh", {}, True), ("configured", {"YOLO_CONFIG_DIR": str(tmp_path / "mine")}, False)]
    for name, extra, guarded in users:
        home = tmp_path / name
        home.mkdir()
        out = subprocess.run([sys.executable, "-m", "slim", "data", "--help"], env=_clean_env(home, **extra),
                             cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr[-2000:]
        assert (home / fonts).is_file() is guarded, name
    assert not (tmp_path / "mine").exists()  # a configured user's config folder is left alone (and --help is quick)


@pytest.mark.slow
def test_bare_asset_name_is_found_in_the_users_weights_dir(installed, tmp_path):
    """`--weights yolov8n.pt` resolves as in ultralytics: here from the weights_dir of the user's own settings."""
    config_dir, weights_dir, elsewhere = tmp_path / "cfg", tmp_path / "weights", tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {"YOLO_CONFIG_DIR": str(config_dir)}
    settings = f"from ultralytics.utils import SETTINGS; SETTINGS.update(weights_dir={str(weights_dir)!r})"
    out = subprocess.run([sys.executable, "-c", settings], env={**os.environ, **env}, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    ultra.save_checkpoint(DetectionModel("yolov8n.yaml", verbose=False), weights_dir / "yolov8n.pt", {}, {})
    pruned = tmp_path / "pruned.pt"
    out = run_installed(installed, "prune", "--weights", "yolov8n.pt", "--out", str(pruned), "imgsz=64", cwd=elsewhere,
                        env=env)
    assert out.returncode == 0, out.stderr[-3000:]  # offline, a name found nowhere is an error (test_errors)
    assert pruned.is_file() and not any(elsewhere.iterdir())


def test_results_are_named_by_the_stage_that_made_the_model():
    """`slim val`/`slim export` name a pipeline checkpoint's results the way the report does, the transfer stage's
    included; any other checkpoint by its file name."""
    from slim.deploy import tag_of

    stages = {"train": "baseline", "sparsity": "sparse", "prune": "pruned", "finetune": "finetuned",
              "transfer": "transferred", "mine": "mine"}
    for stage, tag in stages.items():
        assert tag_of(Path(f"runs/demo/{stage}/weights/best.pt")) == tag
    assert tag_of(Path("elsewhere/small.pt")) == "small"
