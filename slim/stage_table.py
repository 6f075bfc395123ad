"""The pipeline's stages in one table: what each reads and writes, its config section, its model's tag, whether it
trains. The folder layout, the report's rows, what provenance records and what val/export read by default all
derive from it. Pure data: no torch, no ultralytics.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Stage:
    name: str  # the `slim` command and the folder <project>/<name>/<stage>/
    section: str  # the config section whose (ultralytics) settings it runs with
    reads: str | None  # the stage whose output it reads; None: the config's model
    writes: str  # its output, relative to its folder
    tag: str  # its model's short name in val/, export/ and REPORT.md
    trains: bool  # an ultralytics training: resumable, and its record holds the data, image size and seed


# in pipeline order; sparsity hands on its last epoch (the sparsest), not "best"; transfer is the pruned model
# finetuned (with the finetune section's settings) onto transfer.data
STAGES = {stage.name: stage for stage in (
    Stage("train", "train", None, "weights/best.pt", "baseline", trains=True),
    Stage("sparsity", "sparsity", "train", "weights/last.pt", "sparse", trains=True),
    Stage("prune", "prune", "sparsity", "pruned.pt", "pruned", trains=False),
    Stage("finetune", "finetune", "prune", "weights/best.pt", "finetuned", trains=True),
    Stage("transfer", "finetune", "prune", "weights/best.pt", "transferred", trains=True),
)}
FINAL = "finetune"  # the end of the pipeline: what val and export read by default
# the models REPORT.md compares, on the experiment's dataset (transfer's is validated on its own)
COMPARED = ("train", "sparsity", "prune", "finetune")
TRAINED = tuple(name for name, stage in STAGES.items() if stage.trains)

