"""The demo, for real: a trained, sparsity-trained YOLOv8n loses (almost) nothing when pruned at 0.5.

This is the check that a pruned model is usable straight out of the cut, on real gammas, through the scripts a
user runs. It trains for about three minutes on 2 quiet CPU cores: the slowest test in the suite, and the one that would
have caught pruned checkpoints whose kept betas were rewritten (mAP50-95 0.613 -> 0.305 on the full demo).
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # end to end: real trainings or the CLI in subprocesses

ROOT = Path(__file__).resolve().parents[1]
# The demo exactly as `make pipeline` runs it, up to the cut (measured 2026-11-30: sparse and pruned at 0.5 both
# mAP50-95 0.522, 85% of prunable gammas below 1e-2). Shorter runs were tried and fail the test's own premise:
# 8 + 5 epochs on 200 images left no gamma below 1e-2 (pruned 0.013), and sr 0.1 without warm-up made 94% of them
# small but the sparse model useless (0.017).
DEMO = ["finetune.epochs=1"]
MAX_DROP = 0.01  # mAP50-95 right after pruning at 0.5, below the sparse model's (the bar)
# the README's demo table is what a fresh `make pipeline` writes; CPU training here is deterministic (the same
# figures to the last digit from a fresh checkout and from an installed wheel), so beyond the table's own rounding
# any difference is drift: a changed generator, default or stage
README_ROUNDING = 0.0015


def readme_demo_rows() -> dict:
    """The README's "Results on the demo" table: model -> {"params", "mAP50", "mAP50_95"}."""
    text = (ROOT / "README.md").read_text().split("## Results on the demo", 1)[1]
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 8 and re.fullmatch(r"[\d,]+", cells[1]):
            rows[cells[0]] = {"params": int(cells[1].replace(",", "")), "mAP50": float(cells[3]),
                              "mAP50_95": float(cells[4])}
        elif rows:  # the table has ended
            break
    return rows


def _run(script: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "YOLO_CONFIG_DIR": str(cwd / "cfg")}
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / script), "--config", str(ROOT / "configs/default.yaml"),
                          f"project={cwd / 'runs'}", *DEMO, *args], cwd=cwd, env=env, capture_output=True, text=True,
                         timeout=1800)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    return out


def test_pruning_the_sparse_demo_at_half_costs_at_most_a_point(tmp_path):
    for script in ("train.py", "train_sparsity.py"):
        _run(script, cwd=tmp_path)
    _run("prune.py", "--prune-ratio", "0.5", cwd=tmp_path)
    run = tmp_path / "runs" / "demo"
    for weights in (run / "train/weights/best.pt", run / "sparsity/weights/last.pt", run / "prune/pruned.pt"):
        _run("val.py", "--weights", str(weights), cwd=tmp_path)
    sparse = json.loads((run / "val" / "sparse.json").read_text())
    pruned = json.loads((run / "val" / "pruned.json").read_text())
    assert sparse["mAP50_95"] > 0.2  # the model learned something, so the comparison below can fail
    assert pruned["gflops"] < 0.8 * sparse["gflops"]
    assert pruned["mAP50_95"] >= sparse["mAP50_95"] - MAX_DROP, (sparse["mAP50_95"], pruned["mAP50_95"])

    table = readme_demo_rows()
    for tag in ("baseline", "sparse", "pruned"):
        measured = json.loads((run / "val" / f"{tag}.json").read_text())
        published = table[tag]
        assert measured["params"] == published["params"], (tag, measured["params"], published)
        for key in ("mAP50", "mAP50_95"):
            assert abs(measured[key] - published[key]) <= README_ROUNDING, (
                f"README's demo table is stale: {tag} {key} {published[key]} published, {measured[key]:.4f} now; "
                "rerun `make pipeline` and copy runs/demo/REPORT.md's table into README.md")


def test_the_readme_demo_table_reads_whole():
    rows = readme_demo_rows()
    assert set(rows) >= {"baseline", "sparse", "pruned", "finetuned"}
    assert rows["pruned"]["params"] < rows["sparse"]["params"]
