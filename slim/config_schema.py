"""The experiment config's schema: one dataclass per stage section, with the defaults of configs/default.yaml.

slim/config.py loads, validates and dumps it; everything else reads these dataclasses.
"""

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path

from slim.ultra.arguments import DEFAULT_CFG_DICT

SLIM_SET = frozenset({"data", "model", "imgsz", "device", "project", "name", "seed", "exist_ok"})  # set per stage
ULTRA_KEYS = frozenset(DEFAULT_CFG_DICT) - SLIM_SET
ULTRA_MIXED = frozenset({"fraction", "scale", "compile", "amp", "quantize"})  # several types: left to check_cfg
SCHEDULES = ("linear", "constant")
METHODS = ("l1", "targeted")


@dataclass
class DemoConfig:
    n_train: int = 300
    n_val: int = 100
    imgsz: int = 128
    seed: int = 0


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


@dataclass
class PruneConfig:
    ratio: float | None = 0.5
    threshold: float | None = None
    target_gflops: float | None = None
    min_channels: int = 8
    min_fraction: float = 0.05
    round_to: int = 1
    fold_beta: bool = True


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


TOP_KEYS = tuple(f.name for f in dataclasses.fields(Config) if f.name not in SECTIONS)
PASSTHROUGH = tuple(s for s, cls in SECTIONS.items() if "args" in typing.get_type_hints(cls))
