"""Section gammas: the share of prunable gammas near zero after normal and after sparsity training."""

from __future__ import annotations

from pathlib import Path

from benchmarks.sections.common import gamma_row, tagged
from slim import stages
from slim.config import Config
from slim.report import markdown_table
from slim.sparsity import SMALL_GAMMA


def run(cfg: Config, folder: Path, exist_ok: bool, done: dict) -> dict:
    """Fraction of prunable gammas below SMALL_GAMMA after normal training and after sparsity training."""
    rows = {tag: gamma_row(stages.output_of(cfg, stage))
            for tag, stage in (("after normal training", "train"), ("after sparsity training", "sparsity"))}
    return {"rows": tagged(rows)}


def render(s: dict) -> str:
    cols = [("model", "model", ""), ("channels", "prunable channels", ",d"), ("gamma_mean", "mean |gamma|", ".4f"),
            ("gamma_small", f"below {SMALL_GAMMA:g}", ".1%")]
    return markdown_table(s["rows"], cols)
