"""The experiment config's schema: one dataclass per stage section, with the defaults of configs/default.yaml and
the range checks of its values. Pure: no ultralytics, no torch.

slim/config.py loads, validates and dumps it; everything else reads these dataclasses.
"""

import dataclasses
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path

SLIM_SET = frozenset({"data", "model", "imgsz", "device", "project", "name", "seed", "exist_ok"})  # set per stage
SCHEDULES = ("linear", "constant")
METHODS = ("l1", "targeted")
CUTS = ("ratio", "threshold", "target_gflops")  # the ways to set the prune's cut: exactly one is set


def _failed(checks: list) -> list:
    """The messages of the failed (key, value, ok, what) range checks: "<key> must be <what>, got <value>".

    The checks are written so that NaN fails every one.
    """
    return [f"{key} must be {what}, got {value!r}" for key, value, ok, what in checks if not ok]


@dataclass
class DemoConfig:
    n_train: int = 300
    n_val: int = 100
    imgsz: int = 128
    seed: int = 0

    def problems(self) -> list:
        """Values of the right type that still cannot be right, as messages; empty when all are fine."""
        return _failed([
            ("demo.n_train", self.n_train, self.n_train >= 1, ">= 1"),
            ("demo.n_val", self.n_val, self.n_val >= 1, ">= 1"),
            ("demo.imgsz", self.imgsz, self.imgsz >= 32, ">= 32"),
            ("demo.seed", self.seed, self.seed >= 0, ">= 0"),
        ])


@dataclass
class TrainConfig:
    args: dict = field(
        default_factory=lambda: dict(epochs=12, batch=16, nbs=16, workers=0, optimizer="AdamW", lr0=0.003, lrf=0.1, close_mosaic=2,
                             plots=False)
    )


@dataclass
class SparsityConfig:
    method: str = "l1"
    sr: float = 0.03
    schedule: str = "linear"
    shrink: float = 0.5
    inherit_optimizer: bool = True
    args: dict = field(
        default_factory=lambda: dict(epochs=8, optimizer="SGD", lr0=0.04, batch=8, nbs=8, close_mosaic=2, workers=0,
                                     plots=False)
    )

    def problems(self) -> list:
        """Values of the right type that still cannot be right, as messages; empty when all are fine."""
        return _failed([
            ("sparsity.sr", self.sr, 0 <= self.sr < math.inf, ">= 0 and finite"),
            ("sparsity.schedule", self.schedule, self.schedule in SCHEDULES, f"one of {', '.join(SCHEDULES)}"),
            ("sparsity.method", self.method, self.method in METHODS, f"one of {', '.join(METHODS)}"),
            ("sparsity.shrink", self.shrink, 0 < self.shrink < math.inf, "> 0 and finite"),
        ])


@dataclass
class PruneConfig:
    ratio: float | None = 0.5
    threshold: float | None = None
    target_gflops: float | None = None
    min_channels: int = 8
    min_fraction: float = 0.05
    round_to: int = 1
    fold_beta: bool = True
    weights_from: str | None = None

    def problems(self) -> list:
        """Values of the right type that still cannot be right, as messages; empty when all are fine."""
        return _failed([
            ("prune.ratio", self.ratio, self.ratio is None or 0 < self.ratio < 1, "in (0, 1), exclusive"),
            ("prune.threshold", self.threshold, self.threshold is None or 0 < self.threshold < math.inf,
             "> 0 and finite"),
            ("prune.target_gflops", self.target_gflops, self.target_gflops is None or 0 < self.target_gflops < 1,
             "a fraction of the model's GFLOPs in (0, 1), exclusive"),
            ("prune.min_channels", self.min_channels, self.min_channels >= 1, ">= 1"),
            ("prune.min_fraction", self.min_fraction, 0 <= self.min_fraction < 1, "in [0, 1)"),
            ("prune.round_to", self.round_to, self.round_to >= 1, ">= 1"),
        ])

    def cut_problems(self) -> list:
        """The cut is set exactly one way (checked after every section's ranges)."""
        given = [f"prune.{k}" for k in CUTS if getattr(self, k) is not None]
        if len(given) == 1:
            return []
        state = f"{' and '.join(given)} are {'both' if len(given) == 2 else 'all'} set" if given else "all null"
        return [f"prune.ratio, prune.threshold and prune.target_gflops: {state}; set exactly one, the others to null"]


@dataclass
class FinetuneConfig:
    args: dict = field(
        default_factory=lambda: dict(epochs=10, optimizer="AdamW", lr0=0.002, lrf=0.1, batch=16, nbs=16, close_mosaic=2, workers=0,
                                     plots=False)
    )


@dataclass
class ValConfig:
    args: dict = field(default_factory=lambda: dict(batch=16, workers=0, plots=False))


@dataclass
class ExportConfig:
    opset: int | None = None
    dynamic: bool = False
    simplify: bool = True
    half: bool = False
    atol: float = 1e-3
    int8: bool = True
    calib_images: int = 64
    int8_exclude: list[str] = field(default_factory=list)

    def problems(self) -> list:
        """Values of the right type that still cannot be right, as messages; empty when all are fine."""
        return _failed([
            ("export.opset", self.opset, self.opset is None or self.opset >= 1, "a positive int or null"),
            ("export.atol", self.atol, 0 < self.atol < math.inf, "> 0 and finite"),
            ("export.calib_images", self.calib_images, self.calib_images >= 1, ">= 1"),
        ])


@dataclass
class TransferConfig:
    data: str | None = None


SECTIONS = {
    "demo": DemoConfig,
    "train": TrainConfig,
    "sparsity": SparsityConfig,
    "prune": PruneConfig,
    "finetune": FinetuneConfig,
    "transfer": TransferConfig,
    "val": ValConfig,
    "export": ExportConfig,
}


@dataclass
class Config:
    name: str = "demo"
    project: str = "runs"
    data: str = "demo"
    model: str = "yolov8n.yaml"
    imgsz: int = 128
    device: str = "cpu"
    seed: int = 0
    demo: DemoConfig = field(default_factory=DemoConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    sparsity: SparsityConfig = field(default_factory=SparsityConfig)
    prune: PruneConfig = field(default_factory=PruneConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    transfer: TransferConfig = field(default_factory=TransferConfig)
    val: ValConfig = field(default_factory=ValConfig)
    export: ExportConfig = field(default_factory=ExportConfig)

    def stage_dir(self, stage: str) -> Path:
        """Folder where `stage` writes its outputs and its resolved config: <project>/<name>/<stage>."""
        return Path(self.project) / self.name / stage

    def problems(self) -> list:
        """Values of the right type that still cannot be right, as messages in the order checked (the top level,
        each section's ranges, then the rules across keys); empty when all are fine."""
        top = _failed([
            ("name", self.name, self.name != "", "a non-empty folder name"),
            ("project", self.project, self.project != "", "a non-empty folder"),
            ("imgsz", self.imgsz, self.imgsz >= 32, ">= 32"),
            ("seed", self.seed, self.seed >= 0, ">= 0"),
        ])
        ranges = [m for section in (self.demo, self.sparsity, self.prune, self.export) for m in section.problems()]
        targeted = self.sparsity.method == "targeted" and self.prune.threshold is not None
        return top + ranges + self.prune.cut_problems() + (
            ["sparsity.method targeted needs a budget to select the channels it removes: set prune.target_gflops or "
             "prune.ratio, not prune.threshold"] if targeted else [])


TOP_KEYS = tuple(f.name for f in dataclasses.fields(Config) if f.name not in SECTIONS)
PASSTHROUGH = tuple(s for s, cls in SECTIONS.items() if "args" in typing.get_type_hints(cls))
