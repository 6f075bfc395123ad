"""What produced a stage's folder: the config keys that shape its output and its input file's sha256.

Each stage writes <stage>/provenance.json when it finishes (a resumed run, when that finishes). `make pipeline` redoes a stage whose record differs
from what the config asks for now; a stage run by hand names the difference when it refuses to replace a run.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from slim.config import Config, config_to_dict
from slim.data import DEMOS, generator_of
from slim.io import write_json
from slim.stage_table import STAGES

RECORD = "provenance.json"
PENDING = ".provenance.pending.json"  # the record of a run still going
# ultralytics arguments that change how a run goes, not what it produces: changing them redoes nothing
NO_EFFECT = frozenset({"device", "workers", "plots", "verbose", "save_period", "cache", "patience", "val"})
# sparsity keys the other method ignores; the targeted method selects with the prune stage's budget keys
UNUSED_BY_METHOD = {"l1": ("shrink", "inherit_optimizer"), "targeted": ("sr", "schedule")}
BUDGET_KEYS = ("ratio", "target_gflops", "min_channels", "min_fraction", "round_to")


def wanted(cfg: Config, stage: str, source: str | Path | None) -> dict:
    """The record a run of `stage` reading `source` would write now: {"config": {key: value}, "input": ...}."""
    raw = config_to_dict(cfg)
    keys = {}
    if STAGES[stage].trains:
        keys.update({k: raw[k] for k in ("data", "imgsz", "seed")})
        if cfg.data in DEMOS:  # the generated images are an input too: their generator and settings
            keys.update({f"demo.{k}": v for k, v in raw["demo"].items()}, **{"demo.generator": generator_of(cfg.data)})
    if stage == "train":
        keys["model"] = cfg.model
    section = STAGES[stage].section
    if section != stage:  # transfer: trained with the finetune section's settings, on transfer.data
        keys.update({f"{section}.{k}": v for k, v in raw[section].items() if k not in NO_EFFECT})
    unused = UNUSED_BY_METHOD[cfg.sparsity.method] if stage == "sparsity" else ()
    keys.update({f"{stage}.{k}": v for k, v in raw[stage].items() if k not in NO_EFFECT and k not in unused})
    if stage == "sparsity" and cfg.sparsity.method == "targeted":
        keys.update({f"prune.{k}": raw["prune"][k] for k in BUDGET_KEYS})
    record = {"config": json.loads(json.dumps(keys))}  # as it reads back from the file
    if source is not None and Path(source).is_file():
        record["input"] = {"path": str(source), "sha256": sha256(source)}
    return record


def of_file(source: str | Path, settings: dict) -> dict:
    """A record for a result made from one file with these settings (val's JSON, export's ONNX files)."""
    return {"config": json.loads(json.dumps(settings)), "input": {"path": str(source), "sha256": sha256(source)}}


def sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def start(folder: Path, record: dict) -> None:
    """A run begins: the earlier record goes, this run's waits as PENDING until finish() (resume finishes it too)."""
    (Path(folder) / RECORD).unlink(missing_ok=True)
    write_json(Path(folder) / PENDING, record)


def finish(folder: Path) -> None:
    """The run's outputs are complete: its record becomes the folder's (a run killed half-way leaves none)."""
    if (Path(folder) / PENDING).exists():
        os.replace(Path(folder) / PENDING, Path(folder) / RECORD)


def read(folder: Path, pending: bool = False) -> dict | None:
    """The folder's record; None when it has none (a run that never finished, or made before slim kept them).

    pending: the record of the run that started last and has not finished (a running or an interrupted one).
    """
    try:
        return json.loads((Path(folder) / (PENDING if pending else RECORD)).read_text())
    except (OSError, ValueError):
        return None


def changes(saved: dict, now: dict, with_input: bool = True) -> list[str]:
    """What differs between two records, one short phrase each: 'prune.ratio=0.5 (now 0.3)'."""
    old, new = saved.get("config", {}), now.get("config", {})
    missing = object()
    out = [f"{k}={_show(old.get(k, missing))} (now {_show(new.get(k, missing))})"
           for k in sorted(old.keys() | new.keys()) if old.get(k, missing) != new.get(k, missing)]
    before, after = saved.get("input") or {}, now.get("input") or {}
    if with_input and before.get("sha256") != after.get("sha256"):
        if before.get("path") != after.get("path"):
            out.append(f"input {before.get('path', 'none')} (now {after.get('path', 'none')})")
        else:
            out.append(f"a different {before.get('path')} (sha256 {before.get('sha256', '')[:12]}, "
                       f"now {after.get('sha256', '')[:12]})")
    return out


def _show(value) -> str:
    return "unset" if value is not None and type(value) is object else json.dumps(value)
