"""Which sparsity-training settings keep accuracy: python -m benchmarks.study_sparsity [VARIANT ...]

From the converged demo's baseline (configs/converged.yaml; run its train stage first), each variant of the sparsity
section is trained, pruned at the ratios that reach 40% and 25% of the GFLOPs and finetuned with the config's
finetune settings; prints one JSON line per variant and writes runs/converged-study/study.json. One seed per
variant: BENCHMARKS.md reads it beside the seeds section's spread.
"""

import dataclasses
import json
import sys
from pathlib import Path

from slim.offline import keep_ultralytics_offline

keep_ultralytics_offline()  # benchmarks always run offline; before anything imports ultralytics

from benchmarks.sections.cached import finetuned  # noqa: E402
from benchmarks.sections.common import prune_at, val  # noqa: E402
from benchmarks.sections.recovery import RECOVERY_TARGETS, ratio_for_gflops  # noqa: E402
from slim import stages  # noqa: E402
from slim.config import load_config  # noqa: E402
from slim.io import write_json  # noqa: E402

# name -> changes to the sparsity section ("sr" is slim's, "finetune_epochs" the finetune section's; the rest are
# ultralytics arguments of the sparsity section)
VARIANTS = {
    "A-config": {},
    "B-lr01": {"lr0": 0.01},
    "C-lr01-sr1": {"lr0": 0.01, "sr": 0.1},
    "D-nowarm": {"warmup_epochs": 0},
    "E-lr01-nowarm-sr06": {"lr0": 0.01, "sr": 0.06, "warmup_epochs": 0},
    "F-adamw-sr03": {"optimizer": "AdamW", "lr0": 0.002, "batch": 16, "nbs": 16, "warmup_epochs": 0},
    "G-adamw-sr01": {"optimizer": "AdamW", "lr0": 0.002, "batch": 16, "nbs": 16, "warmup_epochs": 0, "sr": 0.01},
    "H-4ep-sr06-ft14": {"epochs": 4, "sr": 0.06, "close_mosaic": 1, "finetune_epochs": 14},  # same 18 epochs
    "I-adamw-sr1": {"optimizer": "AdamW", "lr0": 0.002, "batch": 16, "nbs": 16, "warmup_epochs": 0, "sr": 0.1},
}


def study(name: str, changes: dict) -> dict:
    base = load_config("converged", [])
    changes = dict(changes)
    sr = changes.pop("sr", base.sparsity.sr)
    finetune = {**base.finetune.args, "epochs": changes.pop("finetune_epochs", base.finetune.args["epochs"])}
    section = dataclasses.replace(base.sparsity, sr=sr, args={**base.sparsity.args, **changes})
    cfg = dataclasses.replace(base, name=f"converged-study-{name}", sparsity=section,
                              finetune=dataclasses.replace(base.finetune, args=finetune))
    sparse = stages.sparsity(cfg, weights=stages.output_of(base, "train"), exist_ok=True)
    folder = Path(base.project) / "converged-study" / name
    result = {"changes": changes | {"sr": sr, "finetune_epochs": finetune["epochs"]}, "sparse": val(cfg, sparse, folder, "sparse")["mAP50_95"]}
    for fraction in RECOVERY_TARGETS:
        ratio = ratio_for_gflops(cfg, sparse, fraction)
        pruned, row = prune_at(cfg, sparse, folder / f"r{round(ratio * 100)}.pt", ratio)
        tuned = finetuned(dataclasses.replace(cfg, name=f"{cfg.name}-ft{round(ratio * 100)}"), pruned, False)
        result[f"{fraction:.0%} GFLOPs"] = {"ratio": ratio, "gflops": row["gflops"],
                                            "pruned": val(cfg, pruned, folder, "pruned")["mAP50_95"],
                                            "finetuned": val(cfg, tuned, folder, "finetuned")["mAP50_95"]}
    return result


def main(names):
    results = {}
    for name in names or list(VARIANTS):
        results[name] = study(name, VARIANTS[name])
        print("RESULT", name, json.dumps(results[name]), flush=True)
    write_json(Path("runs") / "converged-study" / "study.json", results)


if __name__ == "__main__":
    main(sys.argv[1:])
