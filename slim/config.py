"""One YAML file describes one experiment: load it, apply key=value overrides, validate, dump the resolved copy.

Each section is a dataclass (slim/config_schema.py, with its range checks); train/sparsity/finetune/val also carry
ultralytics' own arguments (`args`), validated against ultralytics' tables (slim.ultra.arguments, which imports
ultralytics at the first load, not here) and handed over by ultralytics_args().
"""

import dataclasses
import difflib
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from slim.config_schema import (  # noqa: F401  (Config is re-exported: callers import it from here)
    CUTS,
    PASSTHROUGH,
    SECTIONS,
    SLIM_SET,
    TOP_KEYS,
    Config,
)
from slim.errors import UsageError
from slim.io import write_text
from slim.ultra import arguments

# the configs shipped with the package: in a checkout, links to the files in configs/ (pip installs the files)
PACKAGED = Path(__file__).parent / "configs"
# the stage settings slim applies to a user's trained model when no --config is given (the demo's are for the demo)
USER_MODEL_CONFIG = "custom_example"


def load_config(
    path: str | Path | None = None, overrides: typing.Sequence[str] = (), stage: str | None = None,
    model_layer: dict | None = None,
) -> Config:
    """Read the experiment YAML, apply `key=value` overrides, validate everything.

    Precedence, highest first: overrides, the YAML file, the model's own settings (model_layer), slim's defaults.

    Args:
        path: the experiment's YAML file, or a packaged config's name (find_config); None gives the defaults
            (what slim/configs/default.yaml holds).
        overrides: `key=value` strings, values parsed with yaml.safe_load. `prune.ratio=0.6` names a
            section; a bare key goes to `stage`'s section when that section accepts it, else to the top level.
        stage: the running stage (a section name), or None.
        model_layer: settings a user's checkpoint brings (its image size, dataset, run name), shaped like the YAML.

    Raises:
        UsageError: one line naming the key, for an unknown key or a bad value; naming the file when
            it is missing, not YAML, or not a mapping.
    """
    if stage is not None and stage not in SECTIONS:
        raise ValueError(f"stage must be one of {', '.join(SECTIONS)} or None, got {stage!r}")
    raw = config_to_dict(Config())
    if model_layer:
        raw = _merge(raw, _checked_keys(model_layer, "the model's own settings", stage))
    if path is not None:
        path = find_config(path)
        raw = _merge(raw, _checked_keys(_read_yaml(path), str(path), stage))
    raw = _merge(raw, _checked_keys(_override_layer(overrides, stage), "overrides", stage))
    return _build(raw)


def user_model_layer(own: dict) -> dict:
    """The layer under a user's model when no config is given: the stage settings slim recommends for a trained
    model (USER_MODEL_CONFIG's sections: its lr, epochs, rounding, ...), with the model's own settings over them."""
    sections = {k: v for k, v in _read_yaml(find_config(USER_MODEL_CONFIG)).items() if k in SECTIONS}
    return _merge(sections, own) if sections else dict(own)


def find_config(name_or_path: str | Path) -> Path:
    """The YAML file --config names: an existing path as given, else a packaged config's name.

    A bare name (`default`, `custom_example.yaml`) that is not a file in the current folder is looked up in the
    package, so `--config default` works from any folder.
    """
    path = Path(name_or_path)
    if path.is_file() or path.parent != Path("."):
        return path
    packaged = PACKAGED / (path.name if path.suffix in (".yaml", ".yml") else f"{path.name}.yaml")
    return packaged if packaged.is_file() else path


def packaged_configs() -> list:
    """The names `--config` accepts besides a path: the configs shipped in the package."""
    return sorted(p.stem for p in PACKAGED.glob("*.yaml"))


def config_to_dict(cfg: Config) -> dict:
    """The config as nested plain data, laid out like the YAML file (pass-through args flattened)."""
    out = {k: getattr(cfg, k) for k in TOP_KEYS}
    for name in SECTIONS:
        section = dataclasses.asdict(getattr(cfg, name))
        args = section.pop("args", {})
        out[name] = {**section, **args}
    return out


def dump_config(cfg: Config, path: Path) -> None:
    """Write the resolved config as YAML, atomically: a reader never sees a half-written file."""
    header = f"# resolved slim config; rerun a stage with: slim <stage> --config {path}\n"
    write_text(path, header + yaml.safe_dump(config_to_dict(cfg), sort_keys=False))


def ultralytics_args(cfg: Config, stage: str) -> dict:
    """The keyword arguments slim hands to ultralytics for `stage` (train, sparsity, finetune or val).

    The project is absolute because ultralytics puts a relative one under its own runs_dir; with
    name=<stage> and exist_ok the outputs land in cfg.stage_dir(stage), overwritten on a rerun.
    The seed goes to the training stages only: validation draws nothing at random.
    """
    if stage not in PASSTHROUGH:
        raise ValueError(f"stage must be one of {', '.join(PASSTHROUGH)}, got {stage!r}")
    top = {"data": cfg.data, "imgsz": cfg.imgsz, "device": cfg.device}
    if stage != "val":
        top["seed"] = cfg.seed
    project = (Path(cfg.project) / cfg.name).resolve()
    return {**top, **getattr(cfg, stage).args, "project": str(project), "name": stage, "exist_ok": True}


class _UniqueKeyLoader(yaml.SafeLoader):
    """yaml.safe_load that refuses a key given twice in one mapping: PyYAML keeps the last one silently, so an
    experiment would run with a setting its author did not see."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, typing.Hashable):
                if key in seen:
                    raise yaml.constructor.ConstructorError(None, None, f"key '{key}' given twice in one section",
                                                            key_node.start_mark)
                seen.add(key)
        return super().construct_mapping(node, deep)


def _read_yaml(path: Path) -> dict:
    if not path.is_file():
        raise UsageError(f"config file {path} not found: pass --config with an existing YAML file or a packaged "
                         f"config's name ({', '.join(packaged_configs())})")
    try:
        data = yaml.load(path.read_text(), Loader=_UniqueKeyLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise UsageError(f"config file {path} is not valid YAML{where}: {getattr(e, 'problem', e)}") from None
    if data is None:  # an empty file: all defaults
        return {}
    if not isinstance(data, dict):
        raise UsageError(f"config file {path} must hold a mapping of key: value, got {type(data).__name__}")
    return data


def _override_layer(overrides: typing.Sequence[str], stage: str | None) -> dict:
    """Turn `key=value` strings into a nested dict shaped like the YAML file."""
    layer: dict = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageError(f"override {item!r} must look like key=value, e.g. prune.ratio=0.6")
        if "." in key:
            section, sub = key.split(".", 1)
            if section not in SECTIONS:
                raise _unknown_key(key, "overrides", stage)
        elif stage is not None and key in _section_keys(stage):
            section, sub = stage, key
        else:
            section, sub = None, key
        value = _parse_value(item, raw, _key_type(section, sub))
        if section is None:
            layer[key] = value
        else:
            layer[section] = {**(layer.get(section) or {}), sub: value}
    return layer


def _parse_value(item: str, raw: str, tp: Any) -> Any:
    """Parse with yaml.safe_load; a string key keeps a number as typed (name=2024 is '2024', device=0 is '0')."""
    if raw == "":  # `device=` means the empty string (auto), not null
        return ""
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        raise UsageError(f"override {item!r}: the value is not valid YAML") from None
    return raw.strip() if tp in (str, str | None) and isinstance(value, (bool, int, float)) else value


def _section_keys(section: str) -> set[str]:
    keys = {f.name for f in dataclasses.fields(SECTIONS[section]) if f.name != "args"}
    return keys | _ultra_keys() if section in PASSTHROUGH else keys


def _ultra_keys() -> frozenset:
    """The ultralytics arguments a pass-through section takes: all but the ones slim sets for every stage."""
    return arguments.names() - SLIM_SET


def _key_type(section: str | None, key: str) -> Any:
    """The type a key must have; Any when the key is unknown (reported elsewhere) or takes several types."""
    if section is None:
        return typing.get_type_hints(Config).get(key, Any)
    hints = typing.get_type_hints(SECTIONS[section])
    if key in hints and key != "args":
        return hints[key]
    return arguments.type_of(key) if section in PASSTHROUGH and key in _ultra_keys() else Any


def _checked_keys(layer: dict, source: str, stage: str | None) -> dict:
    """Reject unknown keys, and stage-owned keys given inside a pass-through section."""
    for key, value in layer.items():
        if key not in SECTIONS:
            if key not in TOP_KEYS:
                raise _unknown_key(str(key), source, stage)
            continue
        if value is not None and not isinstance(value, dict):
            raise UsageError(f"'{key}' in {source} must be a mapping of key: value, got {value!r}")
        for sub in value or {}:
            if key in PASSTHROUGH and sub in SLIM_SET:
                fix = "remove it" if sub == "exist_ok" else f"set '{sub}' at the top level instead"
                raise UsageError(f"{key}.{sub} in {source}: slim sets '{sub}' itself for every stage; {fix}")
            if sub not in _section_keys(key):
                raise _unknown_key(f"{key}.{sub}", source, stage)
    return layer


def _unknown_key(key: str, source: str, stage: str | None) -> UsageError:
    """An unknown-key error with the closest valid key, the way ultralytics' check_dict_alignment does it."""
    section, _, _ = key.rpartition(".")
    if section in SECTIONS:
        candidates = {f"{section}.{k}": f"{section}.{k}" for k in _section_keys(section)}
    else:  # a top-level key, or a section key given bare: prefer the current stage's section
        candidates = {k: k for k in TOP_KEYS + tuple(SECTIONS)}
        for s in ([stage] if stage else []) + list(SECTIONS):
            for k in sorted(_section_keys(s)):
                candidates.setdefault(k, f"{s}.{k}")
    match = difflib.get_close_matches(key, list(candidates), n=1)
    hint = f"did you mean '{candidates[match[0]]}'?" if match else "see configs/default.yaml for the valid keys"
    return UsageError(f"unknown key '{key}' in {source}: {hint}")


def _merge(base: dict, layer: dict) -> dict:
    """Layer one source over another, section by section.

    Setting one of prune.ratio, prune.threshold and prune.target_gflops clears the other two unless the same
    source sets them, so `prune.threshold=0.01` on top of the default ratio just works.
    """
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in base.items()}
    for key, value in layer.items():
        if key not in SECTIONS:
            out[key] = value
            continue
        value = value or {}
        if key == "prune":
            for this in CUTS:
                for other in CUTS:
                    if value.get(this) is not None and other != this and other not in value:
                        out[key][other] = None
        out[key].update(value)
    return out


def _build(raw: dict) -> Config:
    hints = typing.get_type_hints(Config)
    top = {}
    for key in TOP_KEYS:
        value = raw[key]
        if key == "device" and type(value) is int:  # `device: 0` is a GPU index, like ultralytics accepts
            value = str(value)
        top[key] = _coerce(key, value, hints[key])
    cfg = Config(**top, **{name: _build_section(name, raw[name]) for name in SECTIONS})
    _check_ranges(cfg)
    return cfg


def _build_section(name: str, values: dict) -> Any:
    cls = SECTIONS[name]
    hints = typing.get_type_hints(cls)
    typed = {k: _coerce(f"{name}.{k}", values[k], tp) for k, tp in hints.items() if k != "args"}
    if name in PASSTHROUGH:
        typed["args"] = {k: _checked_ultra_arg(name, k, v) for k, v in values.items() if k not in hints}
    return cls(**typed)


def _checked_ultra_arg(section: str, key: str, value: Any) -> Any:
    """Our own type check (bool is not int), then ultralytics' check_cfg for ranges and mixed-type keys."""
    if key == "batch":
        return _checked_batch(section, value)
    value = _coerce(f"{section}.{key}", value, arguments.type_of(key), int_to_float=False)
    try:
        arguments.check(key, value)
    except (TypeError, ValueError) as e:
        raise UsageError(f"{section}.{key}: {e}") from None
    if key == "workers" and value < 0:  # ultralytics passes it on to a DataLoader, or clamps it, depending on the path
        raise UsageError(f"{section}.workers must be >= 0 (0 loads data in the main process), got {value!r}")
    return value


def _checked_batch(section: str, value: Any) -> Any:
    """ultralytics' batch: images per batch, or when training -1 (AutoBatch) or a GPU memory fraction in (0, 1).

    Anything else fails only later, deep inside a DataLoader, as a traceback.
    """
    training = section != "val"
    ok = type(value) is int and (value >= 1 or training and value == -1) or (
        training and type(value) is float and 0 < value < 1)
    if not ok:
        what = "a positive int" + (", -1 (AutoBatch) or a GPU memory fraction in (0, 1)" if training else "")
        raise UsageError(f"{section}.batch must be {what}, got {value!r}")
    return value


_TYPE_WORDS = {float: "a float", int: "an int", bool: "a bool", str: "a string", list[str]: "a list of strings"}


def _coerce(key: str, value: Any, tp: Any, int_to_float: bool = True) -> Any:
    """Check `value` against `tp`; int is accepted where float is expected, bool never counts as int.

    YAML 1.1 reads `1e-3` as a string, so a string that parses as a float is taken as that float.
    """
    if tp is Any:
        return value
    optional = typing.get_origin(tp) is types.UnionType
    base = next(a for a in typing.get_args(tp) if a is not type(None)) if optional else tp
    if value is None and optional:
        return None
    if base is float and isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            pass
    if base is float and type(value) in (int, float):
        return float(value) if int_to_float else value
    if base in (int, bool, str) and type(value) is base:
        return value
    if base == list[str] and isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    raise UsageError(f"{key} must be {_TYPE_WORDS[base]}{' or null' if optional else ''}, got {value!r}")


def _check_ranges(cfg: Config) -> None:
    """Values of the right type that still cannot be right (each section's checks): the first one fails."""
    problems = cfg.problems()
    if problems:
        raise UsageError(problems[0])
