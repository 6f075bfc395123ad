"""Bench trainings reused across runs: each run's folder holds bench-run.json, slim.provenance's record of what
made it (settings, and its input's sha256), and a run made the same way is not trained again."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Callable

from slim import provenance, stages, ultra
from slim.config import Config, ultralytics_args
from slim.io import write_json

LOG = logging.getLogger("slim")
RECORD = "bench-run.json"  # beside a stage's own provenance.json, which it never replaces


def made_from(source: str | Path, settings: dict) -> dict:
    """provenance.of_file's record of a run from `source` with `settings`, the sha256 taken over the model's
    tensors (every re-prune writes the same tensors under a new save date); a model name (a yaml) is a setting."""
    if not Path(source).is_file():
        return {"config": json.loads(json.dumps({"source": str(source), **settings}))}
    return {"config": json.loads(json.dumps(settings)),
            "input": {"path": str(source), "sha256": tensors_sha256(source)}}


def tensors_sha256(weights: str | Path) -> str:
    """sha256 of a checkpoint's model tensors (names and values), independent of the file's other fields."""
    h = hashlib.sha256()
    for name, tensor in ultra.load_model(weights)[0].state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def make_once(folder: Path, now: dict, make: Callable[[], Path], exist_ok: bool) -> dict:
    """The record of the run in `folder` when it was made as `now` says and its output is there (unless exist_ok);
    else make()'s: {**now, "out": the file make() returned, "seconds": how long it took}."""
    record = folder / RECORD
    saved = _read(record)
    if saved and Path(saved.get("out") or "").is_file() and not exist_ok:  # old records: no "out"
        changed = provenance.changes(saved, now)
        if not changed:
            LOG.info(f"bench: reusing {saved['out']}, made with the same settings (--exist-ok makes it again)")
            return saved
        LOG.info(f"bench: {saved['out']} was made with {', '.join(changed)}: making it again")
    record.unlink(missing_ok=True)  # gone while its run is replaced: a run killed half-way is never reused
    t0 = time.perf_counter()
    out = make()
    done = {**now, "out": str(out), "seconds": round(time.perf_counter() - t0)}
    write_json(record, done)
    return done


def train(source, args: dict, sparsity: tuple | None, exist_ok: bool) -> tuple[Path, float]:
    """ultra.train from `source` (a yaml or a checkpoint) with `args`, with the L1 hook when sparsity = (sr,
    schedule); reused when its run folder holds one made the same way.

    Returns:
        (best.pt, or last.pt for a sparsity run: the sparsest; seconds the training took when it ran).
    """
    run = Path(args["project"]) / args["name"]
    out = run / "weights" / ("last.pt" if sparsity else "best.pt")

    def make() -> Path:
        callback = ultra.SparsityCallback(*sparsity) if sparsity else None
        ultra.train(source, args, keep_architecture=sparsity is not None, sparsity=callback)
        return out

    done = make_once(run, made_from(source, {"args": args, "sparsity": sparsity}), make, exist_ok)
    return Path(done["out"]), done["seconds"]


def finetuned(rcfg: Config, weights: Path, exist_ok: bool) -> Path:
    """The finetune stage on `weights` under rcfg's name; reused when the last one here started from the same
    tensors (a changed prune is finetuned again) with the same settings."""
    settings = {"args": ultralytics_args(rcfg, "finetune"), "data": stages.resolve_data(rcfg)}
    done = make_once(rcfg.stage_dir("finetune"), made_from(weights, settings),
                  lambda: stages.finetune(rcfg, weights=weights, exist_ok=True), exist_ok)
    return Path(done["out"])


def _read(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None
