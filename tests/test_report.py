"""Reports: gamma statistics on hand-set models, plots that are real PNGs written atomically, tables that match."""

import copy
import re

import numpy as np
import pytest
from matplotlib.figure import Figure
from ultralytics import YOLO

from slim import report
from slim.groups import analyze, prunable_bns
from slim.plan import build_plan
from tests.models import random_bn_model

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def baseline():
    """A fresh yolov8n: every gamma is 1."""
    return YOLO("yolov8n.yaml").model


@pytest.fixture(scope="module")
def sparse(baseline):
    """Per prunable BN: the first quarter of gammas 0, the next quarter 5e-3, the rest 1.

    Every tied (unprunable) BN is set to 0, so a statistic that wrongly counts them is visibly off.
    """
    model = copy.deepcopy(baseline)
    prunable = {id(bn) for bn in prunable_bns(model)}
    for bn in model.modules():
        if id(bn) in prunable:
            q = len(bn.weight) // 4
            bn.weight.data[:q] = 0.0
            bn.weight.data[q : 2 * q] = 5e-3
        elif type(bn).__name__ == "BatchNorm2d":
            bn.weight.data.zero_()
    return model


@pytest.fixture(scope="module")
def plan():
    model = random_bn_model("yolov8n.yaml")
    return build_plan(model, analyze(model), ratio=0.8)


def assert_png(path, folder):
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    assert len(data) > 5000  # a blank or truncated image is far smaller
    assert sorted(p.name for p in folder.iterdir()) == [path.name]  # no temp file left beside it


def test_gamma_summary_counts_only_prunable_bns(sparse):
    s = report.gamma_summary(sparse)
    counts = [len(bn.weight) for bn in prunable_bns(sparse)]
    quarter = sum(n // 4 for n in counts) / sum(counts)  # exactly 0.25 for yolov8n's channel counts
    assert s["count"] == sum(counts)
    assert s["below_1e-3"] == pytest.approx(quarter)  # the zeros
    assert s["below_1e-2"] == pytest.approx(2 * quarter)  # zeros and 5e-3
    assert s["mean"] == pytest.approx(quarter * 5e-3 + (1 - 2 * quarter) * 1.0, rel=1e-6)
    assert s["q01"] == 0.0 and s["q10"] == 0.0
    assert 5e-3 <= s["q50"] <= 1.0


def test_gamma_summary_of_fresh_model(baseline):
    s = report.gamma_summary(baseline)
    assert (s["mean"], s["below_1e-2"], s["q01"], s["q50"]) == (1.0, 0.0, 1.0, 1.0)


def test_histograms_legend_fractions_and_zeros_in_first_bin(baseline, sparse, tmp_path):
    fig = report.draw_gamma_histograms({"baseline": baseline, "sparse": sparse})
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["baseline (0% < 0.01)", "sparse (50% < 0.01)"]
    # zeros are clipped into the first log bin instead of vanishing: a quarter of the sparse model sits there
    verts = ax.patches[1].get_path().vertices
    assert verts[np.isclose(verts[:, 0], report.CLIP), 1].max() == pytest.approx(0.25)
    out = report.plot_gamma_histograms({"baseline": baseline, "sparse": sparse}, tmp_path / "hist.png")
    assert_png(out, tmp_path)


def test_per_layer_has_one_row_per_prunable_bn(baseline, sparse, tmp_path):
    fig = report.draw_gamma_per_layer({"baseline": baseline, "sparse": sparse})
    ax = fig.axes[0]
    names = analyze(baseline).prunable
    assert [t.get_text() for t in ax.get_yticklabels()] == names
    assert len(names) == len(prunable_bns(baseline))
    medians = {line.get_label(): line for line in ax.lines if line.get_label() in ("baseline", "sparse")}
    for line in medians.values():  # each model's markers sit on their own row, offset a little
        assert np.array_equal(np.round(line.get_ydata()), np.arange(len(names)))
    assert not np.array_equal(medians["baseline"].get_ydata(), medians["sparse"].get_ydata())
    assert np.allclose(medians["baseline"].get_xdata(), 1.0)
    out = report.plot_gamma_per_layer({"baseline": baseline, "sparse": sparse}, tmp_path / "sub" / "layers.png")
    assert_png(out, tmp_path / "sub")


def test_channels_kept_bars_match_plan(plan, tmp_path):
    ax = report.draw_channels_kept(plan).axes[0]
    n = len(plan.keep)
    widths = [p.get_width() for p in ax.patches]
    assert widths[:n] == [plan.channels[name] for name in plan.keep]
    assert widths[n:] == [len(k) for k in plan.keep.values()]
    assert [t.get_text() for t in ax.get_yticklabels()] == list(plan.keep)
    assert_png(report.plot_channels_kept(plan, tmp_path / "kept.png"), tmp_path)


def test_failed_write_keeps_old_file_and_leaves_no_temp(plan, tmp_path, monkeypatch):
    out = tmp_path / "kept.png"
    out.write_bytes(b"old")

    def broken_savefig(self, fname, **kwargs):
        fname.write(b"partial")  # slim.io hands savefig the temporary file's object
        raise OSError("disk full")

    monkeypatch.setattr(Figure, "savefig", broken_savefig)
    with pytest.raises(OSError, match="disk full"):
        report.plot_channels_kept(plan, out)
    assert out.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["kept.png"]


def test_prune_table_matches_plan(plan):
    sizes = {"before": {"params": 3_157_200, "gflops": 8.86}, "after": {"params": 1_000_000, "gflops": 3.1}}
    text = report.prune_table(plan, sizes)
    lines = text.splitlines()
    for name, keep in plan.keep.items():
        (line,) = [line for line in lines if line.split()[:1] == [name]]
        before, after, pct = re.search(r"(\d+) -> (\d+)\s+([\d.]+)%", line).groups()
        assert (int(before), int(after)) == (plan.channels[name], len(keep))
        assert float(pct) == pytest.approx(100 * len(keep) / plan.channels[name], abs=0.051)  # printed to one decimal
        assert line.endswith("floor") == (name in plan.floored)
    total_before, total_after = sum(plan.channels.values()), sum(len(k) for k in plan.keep.values())
    assert f"{total_before:,} -> {total_after:,}" in text
    assert "3,157,200 -> 1,000,000" in text and "8.86 -> 3.10" in text
    assert f"{plan.threshold:.4g}" in text
    assert f"requested 80.0%, actual {plan.removed_fraction:.1%}" in text
    assert plan.floored  # at 80% the random-gamma model holds some layers at the floor
    assert lines[-1].split(maxsplit=3)[-1] == ", ".join(plan.floored)


def test_markdown_table_formats_and_dashes():
    rows = [{"name": "a|b", "n": 1234567, "x": 0.12345}, {"name": "c", "x": None}]
    cols = [("name", "Name", ""), ("n", "N", ",d"), ("x", "X", ".3f")]
    assert report.markdown_table(rows, cols) == (
        "| Name | N | X |\n"
        "|---|---:|---:|\n"
        "| a\\|b | 1,234,567 | 0.123 |\n"
        "| c | - | - |"
    )


def test_write_report(tmp_path):
    plots = tmp_path / "plots"
    plots.mkdir()
    for name in ("hist.png", "kept.png"):
        (plots / name).write_bytes(PNG_MAGIC)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "local.png").write_bytes(PNG_MAGIC)
    rows = [
        {"model": "baseline", "params": 3157200, "gflops": 8.86, "mAP50": 0.61, "mAP50_95": 0.43,
         "onnx_mb": 12.3, "latency_ms": 20.0, "latency_ratio": 1.0},
        {"model": "pruned", "params": 1200000, "gflops": 3.4, "mAP50": 0.6, "latency_ratio": 0.55},
        {"model": "pruned-int8", "onnx_mb": 3.2},
    ]
    images = {"gammas": plots / "hist.png", "kept": plots / "kept.png", "here": tmp_path / "run" / "local.png"}
    commands = ["make pipeline", "python scripts/prune.py --config configs/demo.yaml"]
    path = report.write_report(tmp_path / "run" / "REPORT.md", "Demo", rows, images, commands, ["a note"])
    text = path.read_text()
    assert text.startswith("# Demo\n")
    table = [line for line in text.splitlines() if line.startswith("| ")]
    assert table[0] == "| model | params | GFLOPs | mAP50 | mAP50-95 | ONNX MB | latency ms | latency vs baseline |"
    assert [line.split(" | ")[0] for line in table[1:]] == ["| baseline", "| pruned", "| pruned-int8"]
    assert "| pruned | 1,200,000 | 3.40 | 0.600 | - | - | - | 0.55 |" in table
    links = re.findall(r"!\[(.*?)\]\((.*?)\)", text)
    assert [c for c, _ in links] == list(images)
    assert [link for _, link in links] == ["../plots/hist.png", "../plots/kept.png", "local.png"]
    assert all((path.parent / link).resolve() == images[c].resolve() for c, link in links)
    block = text.split("## Reproduce")[1].split("```")[1]
    assert block.splitlines()[1:] == commands
    assert "- a note" in text
    assert sorted(p.name for p in path.parent.iterdir()) == ["REPORT.md", "local.png"]
