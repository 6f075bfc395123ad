"""Tests for slim/config.py: loading, overrides, validation messages, dump round trip, ultralytics kwargs."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from slim import config as config_module
from slim.config import Config, config_to_dict, dump_config, load_config, ultralytics_args, user_model_layer
from slim.errors import USAGE, UsageError

CONFIGS = sorted((Path(__file__).parents[1] / "configs").glob("*.yaml"))
DEFAULT = Path(__file__).parents[1] / "configs" / "default.yaml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "x.yaml"
    path.write_text(text)
    return path


def usage_error(*args, **kwargs) -> str:
    """The message of the UsageError that load_config raises for these arguments."""
    with pytest.raises(UsageError) as info:
        load_config(*args, **kwargs)
    assert info.value.code == USAGE
    assert "\n" not in str(info.value)
    return str(info.value)


def test_defaults_match_the_default_file():
    cfg = load_config(None)
    assert cfg == Config()
    assert cfg == load_config(DEFAULT)
    assert (cfg.name, cfg.project, cfg.data, cfg.model, cfg.imgsz, cfg.device) == (
        "demo", "runs", "demo", "yolov8n.yaml", 128, "cpu"
    )
    assert cfg.prune.ratio == 0.5 and cfg.prune.threshold is None
    assert cfg.train.args["epochs"] == 12 and cfg.sparsity.sr == 0.03


def test_default_file_spells_out_every_key():
    assert yaml.safe_load(DEFAULT.read_text()) == config_to_dict(Config())


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_every_config_file_loads_and_comments_every_key(path):
    assert CONFIGS, "no configs/*.yaml found"
    cfg = load_config(path)
    assert isinstance(cfg, Config)
    text = path.read_text()
    assert text.startswith("#") and "--config" in text.split("\n\n")[0]  # header shows how to run it
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#") and not line.endswith(":"):
            assert "  # " in line, f"{path.name}: key without a comment: {line!r}"


def test_custom_example_is_a_real_run():
    cfg = load_config(Path(DEFAULT.parent / "custom_example.yaml"))
    assert (cfg.data, cfg.model, cfg.imgsz, cfg.device) == ("path/to/your/data.yaml", "yolov8s.pt", 640, "")
    assert cfg.train.args["epochs"] == 100 and cfg.finetune.args["epochs"] == 100
    assert cfg.sparsity.args["epochs"] == 50 and cfg.sparsity.args["lr0"] == 1e-3


def test_file_values_override_defaults_key_by_key(tmp_path):
    cfg = load_config(write(tmp_path, "name: exp\ntrain:\n  epochs: 3\nprune:\n  round_to: 8\nval:\n"))
    assert cfg.name == "exp" and cfg.train.args["epochs"] == 3 and cfg.prune.round_to == 8
    assert cfg.train.args["batch"] == 16  # untouched keys keep their defaults
    assert cfg.val == Config().val  # an empty section is the defaults


def test_empty_file_is_the_defaults(tmp_path):
    assert load_config(write(tmp_path, "")) == Config()


def test_dotted_overrides():
    cfg = load_config(None, ["prune.ratio=0.6", "train.epochs=3", "export.int8=false", "train.mosaic=0"])
    assert cfg.prune.ratio == 0.6 and type(cfg.prune.ratio) is float
    assert cfg.train.args["epochs"] == 3 and type(cfg.train.args["epochs"]) is int
    assert cfg.export.int8 is False
    assert cfg.train.args["mosaic"] == 0
    assert cfg.finetune.args["epochs"] == Config().finetune.args["epochs"]  # other sections untouched


def test_overrides_win_over_the_file(tmp_path):
    cfg = load_config(write(tmp_path, "prune:\n  ratio: 0.3\n"), ["prune.ratio=0.7"])
    assert cfg.prune.ratio == 0.7


def test_bare_override_goes_to_the_stage_section():
    cfg = load_config(None, ["epochs=3", "lr0=0.02"], stage="finetune")
    assert cfg.finetune.args["epochs"] == 3 and cfg.finetune.args["lr0"] == 0.02
    assert cfg.train.args["epochs"] == Config().train.args["epochs"]
    assert load_config(None, ["ratio=0.7"], stage="prune").prune.ratio == 0.7
    assert load_config(None, ["sr=0.001"], stage="sparsity").sparsity.sr == 0.001


def test_bare_override_falls_back_to_the_top_level():
    cfg = load_config(None, ["imgsz=320", "name=exp", "device=0"], stage="train")
    assert (cfg.imgsz, cfg.name, cfg.device) == (320, "exp", "0")
    assert "imgsz" not in cfg.train.args


def test_values_are_parsed_with_yaml_not_eval():
    cfg = load_config(None, ["train.classes=[0, 2]", "export.int8_exclude=['/model.22/*']", "name=__import__('os')"])
    assert cfg.train.args["classes"] == [0, 2]
    assert cfg.export.int8_exclude == ["/model.22/*"]
    assert cfg.name == "__import__('os')"


def test_string_keys_keep_numbers_as_typed():
    assert load_config(None, ["name=2024"]).name == "2024"
    assert load_config(None, ["device=0"]).device == "0"
    assert load_config(None, ["device="]).device == ""  # auto


def test_scientific_notation_is_a_float(tmp_path):
    # YAML 1.1 reads 1e-3 as a string; a float key takes it as the number
    assert load_config(None, ["sparsity.sr=1e-3"]).sparsity.sr == 1e-3
    assert load_config(write(tmp_path, "train:\n  lr0: 1e-3\n")).train.args["lr0"] == 1e-3


def test_int_accepted_where_float_expected():
    cfg = load_config(None, ["sparsity.sr=0", "export.atol=1"])
    assert cfg.sparsity.sr == 0.0 and type(cfg.sparsity.sr) is float
    assert cfg.export.atol == 1.0 and type(cfg.export.atol) is float


def test_threshold_replaces_the_default_ratio(tmp_path):
    cfg = load_config(None, ["prune.threshold=0.01"])
    assert cfg.prune.threshold == 0.01 and cfg.prune.ratio is None
    cfg = load_config(write(tmp_path, "prune:\n  threshold: 0.01\n"), ["prune.ratio=0.4"])
    assert cfg.prune.ratio == 0.4 and cfg.prune.threshold is None


@pytest.mark.parametrize(
    "overrides, key",
    [
        (["prune.ratio=abc"], "prune.ratio"),
        (["prune.min_channels=2.5"], "prune.min_channels"),
        (["prune.min_channels=true"], "prune.min_channels"),  # bool is not int
        (["imgsz=true"], "imgsz"),
        (["export.int8=1"], "export.int8"),
        (["export.int8_exclude=[1]"], "export.int8_exclude"),
        (["sparsity.schedule=[linear]"], "sparsity.schedule"),
        (["train.epochs=abc"], "train.epochs"),
        (["train.epochs=true"], "train.epochs"),
        (["train.plots=yes please"], "train.plots"),
        (["val.conf=high"], "val.conf"),
        (["name=null"], "name"),
    ],
)
def test_wrong_type_names_the_key(overrides, key):
    message = usage_error(None, overrides)
    assert message.startswith(f"{key} must be a"), message


def test_wrong_type_message():
    assert usage_error(None, ["prune.ratio=abc"]) == "prune.ratio must be a float or null, got 'abc'"


@pytest.mark.parametrize(
    "overrides, key",
    [
        (["prune.ratio=0"], "prune.ratio"),
        (["prune.ratio=1"], "prune.ratio"),
        (["prune.ratio=1.5"], "prune.ratio"),
        (["prune.ratio=-0.1"], "prune.ratio"),
        (["prune.ratio=.nan"], "prune.ratio"),
        (["prune.threshold=-1", "prune.ratio=null"], "prune.threshold"),
        (["sparsity.sr=-0.01"], "sparsity.sr"),
        (["sparsity.sr=.nan"], "sparsity.sr"),
        (["sparsity.schedule=cosine"], "sparsity.schedule"),
        (["train.epochs=0"], "train.epochs"),
        (["sparsity.epochs=0"], "sparsity.epochs"),
        (["finetune.epochs=-3"], "finetune.epochs"),
        (["train.lr0=2"], "train.lr0"),
        (["prune.min_fraction=1"], "prune.min_fraction"),
        (["prune.min_fraction=-0.1"], "prune.min_fraction"),
        (["prune.round_to=0"], "prune.round_to"),
        (["prune.min_channels=0"], "prune.min_channels"),
        (["export.atol=0"], "export.atol"),
        (["export.calib_images=0"], "export.calib_images"),
        (["demo.n_train=0"], "demo.n_train"),
        (["imgsz=0"], "imgsz"),
        (["name="], "name"),
    ],
)
def test_out_of_range_names_the_key(overrides, key):
    message = usage_error(None, overrides)
    assert message.startswith(f"{key}:") or message.startswith(f"{key} must be"), message


def test_ratio_and_threshold_exactly_one(tmp_path):
    both = usage_error(write(tmp_path, "prune:\n  ratio: 0.5\n  threshold: 0.01\n"))
    assert "prune.ratio" in both and "prune.threshold" in both and "both set" in both
    neither = usage_error(None, ["prune.ratio=null"])
    assert "prune.ratio" in neither and "prune.target_gflops" in neither and "all null" in neither


def test_target_gflops_is_a_third_cut_that_clears_the_others():
    cfg = load_config(None, ["prune.target_gflops=0.4"])
    assert (cfg.prune.target_gflops, cfg.prune.ratio, cfg.prune.threshold) == (0.4, None, None)


def test_a_ratio_override_clears_the_files_target_gflops(tmp_path):
    cfg = load_config(write(tmp_path, "prune:\n  ratio: null\n  target_gflops: 0.4\n"), ["prune.ratio=0.3"])
    assert (cfg.prune.ratio, cfg.prune.target_gflops) == (0.3, None)
    both = usage_error(None, ["prune.target_gflops=0.4", "prune.ratio=0.3"])  # one source sets two: refused
    assert "prune.ratio and prune.target_gflops are both set" in both


@pytest.mark.parametrize("value", [0, 1, 1.5, -0.2, ".nan"])
def test_target_gflops_outside_open_interval_is_refused(value):
    message = usage_error(None, [f"prune.target_gflops={value}"])
    assert message.startswith("prune.target_gflops must be") and "(0, 1)" in message


def test_targeted_sparsity_refuses_a_threshold_budget():
    message = usage_error(None, ["prune.threshold=0.01", "sparsity.method=targeted"])
    assert "targeted" in message and "prune.target_gflops" in message


def test_unknown_sparsity_method_is_refused():
    assert usage_error(None, ["sparsity.method=l2"]).startswith("sparsity.method must be one of l1, targeted")


def test_unknown_key_in_file_suggests_a_close_match(tmp_path):
    path = write(tmp_path, "prune:\n  ratoi: 0.6\n")
    assert usage_error(path) == f"unknown key 'prune.ratoi' in {path}: did you mean 'prune.ratio'?"


@pytest.mark.parametrize(
    "overrides, stage, key, suggestion",
    [
        (["prune.ratoi=0.6"], None, "prune.ratoi", "prune.ratio"),
        (["train.epoch=3"], None, "train.epoch", "train.epochs"),
        (["sparsity.srr=0.1"], None, "sparsity.srr", "sparsity.sr"),
        (["epoch=3"], "finetune", "epoch", "finetune.epochs"),  # the stage's own section first
        (["sr=0.1"], "train", "sr", "sparsity.sr"),  # a key of another section, given bare
        (["imgz=320"], None, "imgz", "imgsz"),
    ],
)
def test_unknown_override_suggests_a_close_match(overrides, stage, key, suggestion):
    message = usage_error(None, overrides, stage=stage)
    assert message == f"unknown key '{key}' in overrides: did you mean '{suggestion}'?"


def test_unknown_key_without_a_close_match(tmp_path):
    message = usage_error(write(tmp_path, "zzzzzz: 1\n"))
    assert message.startswith("unknown key 'zzzzzz' in ") and "configs/default.yaml" in message
    assert usage_error(None, ["nosuchsection.key=1"]).startswith("unknown key 'nosuchsection.key'")


def test_top_level_key_in_the_wrong_place_suggests_its_section(tmp_path):
    message = usage_error(write(tmp_path, "epochs: 3\n"))
    assert "did you mean 'train.epochs'?" in message


@pytest.mark.parametrize("key", ["data", "model", "imgsz", "device", "project", "name", "seed", "exist_ok"])
def test_keys_slim_sets_are_refused_in_pass_through_sections(tmp_path, key):
    message = usage_error(write(tmp_path, f"finetune:\n  {key}: 1\n"))
    assert message.startswith(f"finetune.{key} in ")
    if key != "exist_ok":
        assert "top level" in message
    assert usage_error(None, [f"val.{key}=1"]).startswith(f"val.{key} in overrides")


def test_malformed_override():
    assert "key=value" in usage_error(None, ["prune.ratio"])
    assert "key=value" in usage_error(None, ["=3"])
    assert "train.classes=[0" in usage_error(None, ["train.classes=[0"])


def test_file_problems_name_the_file(tmp_path):
    missing = tmp_path / "missing.yaml"
    assert str(missing) in usage_error(missing)
    broken = write(tmp_path, "prune:\n  ratio: [0.5\n")
    assert str(broken) in usage_error(broken) and "YAML" in usage_error(broken)
    assert str(broken) in usage_error(write(tmp_path, "- 1\n- 2\n"))
    assert "'prune'" in usage_error(write(tmp_path, "prune: 0.5\n"))


def test_unknown_stage_is_a_programming_error():
    with pytest.raises(ValueError):
        load_config(None, stage="nope")


def test_dump_load_round_trip(tmp_path):
    cfg = load_config(None, ["name=exp", "prune.threshold=0.02", "train.mosaic=0.5", "export.int8_exclude=['a']"])
    path = tmp_path / "runs" / "exp" / "prune" / "config.yaml"  # parent folders are created
    dump_config(cfg, path)
    assert load_config(path) == cfg
    assert yaml.safe_load(path.read_text()) == config_to_dict(cfg)


def test_dump_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "config.yaml"
    dump_config(Config(), path)
    dump_config(Config(name="again"), path)  # replacing an existing file
    assert [p.name for p in tmp_path.iterdir()] == ["config.yaml"]  # no temp file left behind
    assert load_config(path).name == "again"

    def fail(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(config_module.yaml, "safe_dump", fail)
    with pytest.raises(RuntimeError):
        dump_config(Config(name="broken"), path)
    assert [p.name for p in tmp_path.iterdir()] == ["config.yaml"]
    monkeypatch.undo()
    assert load_config(path).name == "again"  # the old file is intact


def test_stage_dir():
    cfg = load_config(None, ["project=out", "name=exp"])
    assert cfg.stage_dir("prune") == Path("out") / "exp" / "prune"


def test_ultralytics_args_for_a_stage():
    cfg = load_config(None, ["device=0", "seed=3", "sparsity.sr=0.02", "sparsity.epochs=5", "name=exp"])
    args = ultralytics_args(cfg, "sparsity")
    assert args == {
        "data": "demo",
        "imgsz": 128,
        "device": "0",
        "seed": 3,
        **Config().sparsity.args,
        "epochs": 5,
        "project": str(Path("runs/exp").resolve()),
        "name": "sparsity",
        "exist_ok": True,
    }
    assert "sr" not in args and "schedule" not in args  # slim-only fields stay with slim
    assert Path(args["project"]).is_absolute()  # ultralytics would move a relative one under its runs_dir
    assert Path(args["project"]) / args["name"] == cfg.stage_dir("sparsity").resolve()


def test_ultralytics_args_seed_only_the_training_stages():
    cfg = load_config(None, ["seed=3"])
    for stage in ("train", "sparsity", "finetune"):
        assert ultralytics_args(cfg, stage)["seed"] == 3
    assert "seed" not in ultralytics_args(cfg, "val")  # validation draws nothing at random


def test_ultralytics_args_are_accepted_by_ultralytics():
    from ultralytics.cfg import get_cfg

    for stage in ("train", "sparsity", "finetune", "val"):
        args = get_cfg(overrides=ultralytics_args(load_config(DEFAULT), stage))  # raises on bad keys or types
        assert args.name == stage


def test_ultralytics_args_refuses_other_stages():
    with pytest.raises(ValueError):
        ultralytics_args(Config(), "prune")


def test_nan_is_rejected_everywhere():  # .nan is how YAML spells NaN
    for key in ("prune.ratio", "prune.min_fraction", "export.atol", "sparsity.sr"):
        assert usage_error(None, [f"{key}=.nan"]).startswith(key)


def test_a_models_own_settings_sit_between_the_defaults_and_the_file(tmp_path):
    own = {"name": "mine", "data": "/data/mine.yaml", "imgsz": 640, "device": ""}
    cfg = load_config(None, model_layer=own)
    assert (cfg.name, cfg.data, cfg.imgsz, cfg.device) == ("mine", "/data/mine.yaml", 640, "")
    file = write(tmp_path, "imgsz: 320\n")
    cfg = load_config(file, ["name=other"], model_layer=own)
    assert (cfg.name, cfg.data, cfg.imgsz) == ("other", "/data/mine.yaml", 320)  # overrides > file > model > defaults


def test_a_user_model_gets_the_trained_model_settings_not_the_demos():
    cfg = load_config(None, model_layer=user_model_layer({"name": "mine", "data": "/d.yaml", "imgsz": 640}))
    custom = load_config(DEFAULT.parent / "custom_example.yaml")
    assert (cfg.sparsity, cfg.prune, cfg.finetune) == (custom.sparsity, custom.prune, custom.finetune)
    assert (cfg.name, cfg.data, cfg.imgsz) == ("mine", "/d.yaml", 640)
    assert cfg.sparsity != Config().sparsity  # the demo's high-lr sparsity settings do not reach a trained model


def test_importing_the_config_imports_neither_ultralytics_nor_torch():
    """The config is pure: ultralytics' argument tables are read at the first load, not at import."""
    code = ("import sys, slim.config, slim.config_schema; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('ultralytics', 'torch')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"
