"""Gamma statistics, tables and matplotlib plots for people to look at (console, REPORT.md, README PNGs).

Every file is written atomically (a temp file in the same folder, then os.replace), so a crashed or
parallel run never leaves a half-written PNG or report behind.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
import torch
from torch import nn

from slim.errors import UsageError
from slim.groups import analyze
from slim.io import write_atomic, write_text
from slim.plan import PruningPlan, gamma_scores
from slim.sparsity import SMALL_GAMMA

DPI = 110  # small PNGs: they go into a README
CLIP = 1e-4  # |gamma| is clipped up to this on log axes, so exact zeros land in the first bin
TINY_GAMMA = 1e-3
LIGHT, DARK = "#c6dbef", "#08519c"
RESULT_COLUMNS = [
    ("model", "model", ""),
    ("params", "params", ",d"),
    ("gflops", "GFLOPs", ".2f"),
    ("mAP50", "mAP50", ".3f"),
    ("mAP50_95", "mAP50-95", ".3f"),
    ("onnx_mb", "ONNX MB", ".2f"),
    ("latency_ms", "latency ms", ".2f"),
    ("latency_ratio", "latency vs baseline", ".2f"),
]


def prunable_gammas(model: nn.Module) -> dict[str, torch.Tensor]:
    """|gamma| of every prunable BN (ChannelGraph.prunable_bns), by producer name, in model order.

    Returns:
        producer name -> float tensor of shape (channels,).
    """
    return gamma_scores(model, analyze(model))


def gamma_summary(model: nn.Module) -> dict:
    """Statistics of |gamma| over all prunable BN channels of a model.

    Returns:
        {"count", "mean", "below_1e-2", "below_1e-3", "q01", "q10", "q50"}: channel count, mean |gamma|,
        fractions of channels below 1e-2 and 1e-3, and the 1%, 10% and 50% quantiles (NaN without channels).
    """
    gammas = _concat(prunable_gammas(model).values())
    if gammas.size == 0:
        nan = float("nan")
        return {"count": 0, "mean": nan, "below_1e-2": nan, "below_1e-3": nan, "q01": nan, "q10": nan, "q50": nan}
    q01, q10, q50 = np.quantile(gammas, [0.01, 0.10, 0.50])
    return {
        "count": int(gammas.size),
        "mean": float(gammas.mean()),
        "below_1e-2": float((gammas < SMALL_GAMMA).mean()),
        "below_1e-3": float((gammas < TINY_GAMMA).mean()),
        "q01": float(q01),
        "q10": float(q10),
        "q50": float(q50),
    }


# --- plots -------------------------------------------------------------------------------------------------
def draw_gamma_histograms(models: dict[str, nn.Module]) -> Figure:
    """Overlaid |gamma| histograms of the prunable BNs of each labelled model, log-spaced bins on a log x axis.

    Args:
        models: label -> model, e.g. {"baseline": m1, "sparse": m2}.

    Returns:
        The figure; its legend reads "label (x% < 0.01)".
    """
    gammas = {label: _concat(prunable_gammas(m).values()) for label, m in models.items()}
    _require_channels(gammas)
    top = max(float(g.max()) for g in gammas.values())
    bins = np.logspace(np.log10(CLIP), np.log10(max(top, 1.0) * 1.05), 61)
    fig = _figure(6.4, 3.6)
    ax = fig.add_subplot()
    for label, g in gammas.items():
        # weights make each model's bars sum to 1, so a pruned model compares with a full one
        ax.hist(np.clip(g, CLIP, None), bins=bins, weights=np.full(g.size, 1 / g.size), histtype="stepfilled",
                alpha=0.45, label=f"{label} ({(g < SMALL_GAMMA).mean():.0%} < {SMALL_GAMMA:g})")
    ax.axvline(SMALL_GAMMA, color="grey", linestyle="--", linewidth=0.8)
    ax.set(xscale="log", xlabel=f"|BN gamma| (clipped at {CLIP:g})", ylabel="fraction of prunable channels",
           title="BatchNorm scale factors")
    ax.legend(frameon=False)
    return fig


def plot_gamma_histograms(models: dict[str, nn.Module], out: Path) -> Path:
    """Save draw_gamma_histograms(models) as a PNG at `out`; returns `out`."""
    return _save_figure(draw_gamma_histograms(models), out)


def draw_gamma_per_layer(models: dict[str, nn.Module]) -> Figure:
    """One row per prunable BN layer (model order, top to bottom): per model the median |gamma| as a marker
    and its 10-90% quantile range as a line, models side by side with small vertical offsets, log x.

    Args:
        models: label -> model; rows are the union of their prunable layers, in first-seen order.

    Returns:
        The figure; its y tick labels are the layer names, one per row.
    """
    per_model = {label: prunable_gammas(m) for label, m in models.items()}
    _require_channels({label: _concat(g.values()) for label, g in per_model.items()})
    layers = list(dict.fromkeys(name for g in per_model.values() for name in g))
    row = {name: i for i, name in enumerate(layers)}
    fig = _figure(6.4, 0.9 + 0.16 * len(layers))
    ax = fig.add_subplot()
    offsets = np.linspace(-0.25, 0.25, len(models)) if len(models) > 1 else [0.0]
    for i, ((label, gammas), dy) in enumerate(zip(per_model.items(), offsets)):
        y = np.array([row[name] for name in gammas]) + dy
        q10, q50, q90 = np.stack([_spread(g) for g in gammas.values()], axis=1)
        ax.hlines(y, q10, q90, color=f"C{i}", linewidth=1.2, alpha=0.7)
        ax.plot(q50, y, "o", color=f"C{i}", markersize=3, label=label)
    ax.axvline(SMALL_GAMMA, color="grey", linestyle="--", linewidth=0.8)
    ax.set_yticks(range(len(layers)), layers, fontsize=6)
    ax.set_ylim(len(layers) - 0.5, -0.5)  # first layer on top, like the model reads
    ax.set(xscale="log", xlabel="|BN gamma|: median, 10-90% range")
    _title_and_legend(fig, "BatchNorm scale factors per layer", len(models))
    return fig


def plot_gamma_per_layer(models: dict[str, nn.Module], out: Path) -> Path:
    """Save draw_gamma_per_layer(models) as a PNG at `out`; returns `out`."""
    return _save_figure(draw_gamma_per_layer(models), out)


def draw_channels_kept(plan: PruningPlan) -> Figure:
    """Horizontal bars per prunable layer of a plan: channels before (light) and kept (dark).

    Returns:
        The figure; its y tick labels are the plan's layer names, top to bottom in model order.
    """
    layers = list(plan.keep)
    before = [plan.channels[name] for name in layers]
    kept = [len(plan.keep[name]) for name in layers]
    fig = _figure(6.4, 0.9 + 0.16 * len(layers))
    ax = fig.add_subplot()
    ax.barh(layers, before, color=LIGHT, label="before")
    ax.barh(layers, kept, color=DARK, label="kept")
    ax.set_ylim(len(layers) - 0.5, -0.5)  # first layer on top
    ax.tick_params(axis="y", labelsize=6)
    ax.set(xlabel="output channels")
    title = f"Channels kept: {1 - plan.removed_fraction:.1%} of prunable (|gamma| >= {plan.threshold:.3g})"
    _title_and_legend(fig, title, 2)
    return fig


def plot_channels_kept(plan: PruningPlan, out: Path) -> Path:
    """Save draw_channels_kept(plan) as a PNG at `out`; returns `out`."""
    return _save_figure(draw_channels_kept(plan), out)


# --- tables ------------------------------------------------------------------------------------------------
def prune_table(plan: PruningPlan, sizes: dict) -> str:
    """A plain-text table of what a plan removes, for the console.

    Args:
        plan: the pruning plan.
        sizes: {"before": {"params": int, "gflops": float}, "after": {...}}, measured on the two models.

    Returns:
        One line per layer (channels before -> after, percent kept, "floor" when held at the floor), then
        totals, sizes, the threshold, the requested and actual removed fraction and the floored layers.
    """
    width = max(len(name) for name in plan.keep)
    floored = set(plan.floored)
    lines = [f"{'layer':<{width}}  {'channels':^14}  {'kept':>6}"]
    for name, keep in plan.keep.items():
        n, k = plan.channels[name], len(keep)
        flag = "  floor" if name in floored else ""
        lines.append(f"{name:<{width}}  {n:>6} -> {k:<4}  {k / n:>6.1%}{flag}")
    before, after = sum(plan.channels.values()), sum(len(k) for k in plan.keep.values())
    b, a = sizes["before"], sizes["after"]
    requested = "-" if plan.ratio is None else f"{plan.ratio:.1%}"
    budget = [] if plan.target_gflops is None else [
        f"GFLOPs target      {plan.target_gflops:.1%} of the model's, reached {plan.gflops_fraction:.1%} "
        "(the planner's count)"]
    lines += [
        "",
        f"prunable channels  {before:,} -> {after:,} ({after / before:.1%} kept)",
        f"params             {b['params']:,} -> {a['params']:,} ({a['params'] / b['params']:.1%})",
        f"GFLOPs             {b['gflops']:.2f} -> {a['gflops']:.2f} ({a['gflops'] / b['gflops']:.1%})",
        *budget,
        _threshold_line(plan),
        f"removed            requested {requested}, actual {plan.removed_fraction:.1%}",
        f"held at floor      {', '.join(plan.floored) if plan.floored else 'none'}",
    ]
    return "\n".join(lines)


def _threshold_line(plan: PruningPlan) -> str:
    """What the cut was: a threshold given, or for a ratio or budget the ranking (ties at |gamma| 0 are common after
    targeted sparsity, where "below 0" would read as if nothing went)."""
    if plan.ratio is None and plan.target_gflops is None:
        return f"threshold          |gamma| < {plan.threshold:.4g} is removed"
    return f"threshold          the lowest-|gamma| channels are removed; the smallest kept |gamma| is {plan.threshold:.4g}"


def markdown_table(rows: list[dict], columns: list[tuple[str, str, str]]) -> str:
    """A Markdown table.

    Args:
        rows: one dict per row.
        columns: (key, header, format spec) per column, e.g. ("params", "params", ",d"); an empty spec
            uses str(). Columns with a spec are right-aligned. Missing or None values show as "-".
    """
    header = "| " + " | ".join(h for _, h, _ in columns) + " |"
    rule = "|" + "|".join("---:" if spec else "---" for _, _, spec in columns) + "|"
    body = ["| " + " | ".join(_cell(row.get(key), spec) for key, _, spec in columns) + " |" for row in rows]
    return "\n".join([header, rule, *body])


def write_report(
    path: Path, title: str, rows: list[dict], images: dict[str, Path], commands: list[str], notes: list[str] = ()
) -> Path:
    """Write REPORT.md: title, results table, embedded plots, the commands that reproduce it, notes.

    Args:
        path: the Markdown file to write.
        rows: result rows with keys model, params, gflops, mAP50, mAP50_95, onnx_mb, latency_ms,
            latency_ratio (missing ones show as "-"); int8 models are simply more rows.
        images: caption -> PNG path; linked relative to the report's folder so the folder can move.
        commands: shell commands, shown in one code block.
        notes: bullet points at the end.
    """
    path = Path(path)
    parts = [f"# {title}", "## Results", markdown_table(rows, RESULT_COLUMNS)]
    if images:
        parts += ["## Plots", *(f"![{caption}]({_relative_link(img, path.parent)})" for caption, img in images.items())]
    parts += ["## Reproduce", "```bash\n" + "\n".join(commands) + "\n```"]
    if notes:
        parts += ["## Notes", "\n".join(f"- {note}" for note in notes)]
    text = "\n\n".join(parts) + "\n"
    return write_text(path, text)


# --- helpers -----------------------------------------------------------------------------------------------
def _concat(tensors) -> np.ndarray:
    # float64: float32(1e-4) is just below the float64 bin edge 1e-4, and clipped zeros would fall off the histogram
    arrays = [t.numpy().ravel().astype(np.float64) for t in tensors]
    return np.concatenate(arrays) if arrays else np.zeros(0)


def _spread(gamma) -> np.ndarray:
    """The 10%, 50% and 90% quantiles of one layer's |gamma| (clipped for the log axis): shape (3,)."""
    return np.quantile(np.clip(_concat([gamma]), CLIP, None), [0.1, 0.5, 0.9])


def _require_channels(gammas: dict) -> None:
    for label, g in gammas.items():
        if g.size == 0:
            raise UsageError(f"model {label!r} has no prunable BatchNorm channels to plot")


def _figure(width: float, height: float) -> Figure:
    # a bare Figure on an Agg canvas: headless, and no pyplot global state to leak figures or switch
    # the backend of a notebook that imports slim
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _title_and_legend(fig: Figure, title: str, ncols: int) -> None:
    # outside the axes: in the tall per-layer charts every corner holds data
    fig.suptitle(title)
    fig.legend(loc="outside lower center", ncols=ncols, frameon=False, fontsize=8)


def _save_figure(fig: Figure, out: Path) -> Path:
    return write_atomic(out, lambda f: fig.savefig(f, format="png", dpi=DPI))


def _cell(value, spec: str) -> str:
    if value is None:
        return "-"
    return (format(value, spec) if spec else str(value)).replace("|", "\\|")


def _relative_link(image: Path, folder: Path) -> str:
    rel = Path(os.path.relpath(Path(image).resolve(), folder.resolve())).as_posix()
    return f"<{rel}>" if " " in rel else rel  # CommonMark: a destination with spaces goes in angle brackets
