"""Benchmarks: the cheap sections through the real code, checking the JSON and the markdown they write."""

import json
import os

import pytest
import torch
from ultralytics import YOLO

from benchmarks import bench
from benchmarks.sections import cached, common, convergence, frontier, prune_speed, recovery, sweep
from slim import ultra
from slim.config import load_config
from slim.groups import prunable_bns


def test_prune_speed_writes_json_and_markdown(tmp_path, monkeypatch):
    # yolov8s is the benchmark; the code path is the same
    monkeypatch.setattr(prune_speed, "SPEED_MODEL", "yolov8n.yaml")
    monkeypatch.setattr(prune_speed, "SPEED_REPEATS", 3)
    cfg = load_config(None, [f"project={tmp_path}"])
    md = bench.run(cfg, "python -m benchmarks.run_bench --only prune_speed", ["prune_speed"])
    result = json.loads((tmp_path / "demo" / "bench" / "bench.json").read_text())["prune_speed"]
    threads = str(torch.get_num_threads())
    assert result["model"] == "yolov8n.yaml" and set(result["median_s"]) == {threads, "1"}
    for n, median in result["median_s"].items():
        assert len(result["total_s"][n]) == 3 and median["total"] == sorted(result["total_s"][n])[1]
        assert 0 < median["analyze"] < median["total"] and 0 < median["prune_model"] < median["total"]
    assert result["target"]["met"] == (result["median_s"][threads]["total"] < prune_speed.SPEED_TARGET_S)
    assert torch.get_num_threads() == int(threads)  # the one-thread runs gave the thread count back
    text = md.read_text()
    assert "`python -m benchmarks.run_bench --only prune_speed`" in text
    assert "| total | " + " | ".join(f"{m['total']:.3f}" for m in result["median_s"].values()) + " |" in text
    assert result["machine"]["torch"] == torch.__version__ and result["machine"]["cores"] >= 1


def test_gammas_counts_prunable_channels_and_sections_merge(tmp_path):
    cfg = load_config(None, [f"project={tmp_path}"])
    bench.run(cfg, "first", ["sweep"])  # no pipeline outputs yet: skipped, and kept when gammas runs later
    model = YOLO("yolov8n.yaml").model
    ultra.save_checkpoint(model, tmp_path / "demo" / "train" / "weights" / "best.pt", {}, {})
    prunable = prunable_bns(model)
    with torch.no_grad():
        for bn in model.modules():  # a quarter of each prunable BN's gammas at 0; every tied BN's at 0 too
            if isinstance(bn, torch.nn.BatchNorm2d):
                bn.weight[: len(bn.weight) // 4 if any(bn is p for p in prunable) else None] = 0.0
    ultra.save_checkpoint(model, tmp_path / "demo" / "sparsity" / "weights" / "last.pt", {}, {})
    md = bench.run(cfg, "second", ["gammas"])
    results = json.loads((tmp_path / "demo" / "bench" / "bench.json").read_text())
    assert "make pipeline" in results["sweep"]["skipped"]
    trained, sparse = results["gammas"]["rows"]
    expected = sum(len(bn.weight) // 4 for bn in prunable) / sum(len(bn.weight) for bn in prunable)
    assert trained["gamma_small"] == 0.0 and trained["channels"] == sum(bn.num_features for bn in prunable)
    assert abs(sparse["gamma_small"] - expected) < 1e-9
    text = md.read_text()
    assert text.index("## sweep") < text.index("## gammas") and "skipped: no sparse model" in text
    assert f"| after sparsity training | {sparse['channels']:,} | {sparse['gamma_mean']:.4f} | {expected:.1%} |" in text


def test_knee_is_the_last_ratio_before_the_first_drop_past_the_limit():
    rows = {"unpruned": {"ratio": 0.0, "gflops": 1.0, "mAP50_95": 0.600},
            "r30": {"ratio": 0.3, "gflops": 0.8, "mAP50_95": 0.605},
            "r50": {"ratio": 0.5, "gflops": 0.6, "mAP50_95": 0.591},  # within 0.01: still lossless
            "r50-nofold": {"ratio": 0.5, "gflops": 0.6, "mAP50_95": 0.2, "fold_beta": False},  # not a sweep point
            "r70": {"ratio": 0.7, "gflops": 0.4, "mAP50_95": 0.580},  # the first drop past 0.01
            "r80": {"ratio": 0.8, "gflops": 0.3, "mAP50_95": 0.599}}  # a recovery after a drop does not move the knee
    knee = sweep._knee(rows)
    assert knee["ratio"] == 0.5 and knee["gflops_fraction"] == 0.6 and knee["mAP50_95"] == 0.591
    rows["r30"]["mAP50_95"] = 0.5
    assert sweep._knee(rows)["ratio"] == 0.0  # the first ratio already loses: no lossless cut


def test_baseline_curve_is_read_from_results_csv(tmp_path):
    """The baseline's mAP50-95 per epoch from ultralytics' results.csv, padded column names included."""
    csv_path = tmp_path / "results.csv"
    curve = [0.1, 0.3, 0.4, 0.45, 0.47, 0.48, 0.485, 0.487, 0.488, 0.4885, 0.489]
    csv_path.write_text("epoch,  metrics/mAP50-95(B)\n" + "".join(f"{i},{m}\n" for i, m in enumerate(curve, 1)))
    assert convergence._map_curve(csv_path) == curve


def test_tail_gain_measures_the_last_tenth_against_the_best_before_it():
    assert convergence.tail_gain([0.1, 0.5, 0.6, 0.58, 0.61, 0.6, 0.62, 0.6, 0.59, 0.625]) == (1, pytest.approx(0.005))
    tail, gain = convergence.tail_gain([0.2] * 10 + [0.3, 0.7, 0.5] + [0.69] * 7)  # 20 epochs: the last 2
    assert tail == 2 and gain == pytest.approx(-0.01)  # a spike before the tail is the best to beat
    assert convergence.tail_gain([0.1, 0.2]) == (1, pytest.approx(0.1))
    assert convergence.tail_gain([0.3]) == (1, float("inf"))  # one epoch: never converged


def test_frontier_plot_and_targets_render(tmp_path):
    """The frontier plot from recorded rows (no training), and every target of a section in BENCH.md."""
    done = {"sweep": {"rows": [{"ratio": r, "gflops": 1 - r, "mAP50_95": 0.6 - r / 4} for r in (0.0, 0.3, 0.6)]},
            "recovery": {"rows": [{"ratio": 0.6, "gflops": 0.4, "mAP50_95": 0.59}]},
            "convergence": {"control": {"epochs": 16, "mAP50_95": 0.6}, "baseline": {"mAP50_95": 0.58}}}
    tp_rows = [{"gflops": 0.4, "mAP50_95": 0.55}, {"model": "tp-r80", "unreachable": "cannot reach"}]
    cfg = load_config(None, [f"project={tmp_path}"])
    png = frontier._plot_frontier(cfg, done, done["recovery"]["rows"], tp_rows, tmp_path / "f.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    machine = {k: "x" for k in ("cpu", "usable_cores", "cores", "torch_threads", "load_avg_1m", "torch",
                                "ultralytics", "onnxruntime", "python")}
    section = {"command": "c", "date": "d", "wall_s": 1.0, "machine": machine, "source": "s", "epochs": 8,
               "dense_control": None, "rows": [],
               "targets": [common.target("first", True), common.target("second", False)]}
    text = bench.render({"recovery": section})
    assert "Target: first: **met**" in text and "Target: second: **MISSED**" in text


def test_side_by_side_runs_each_job_in_a_worker_process_and_keeps_the_names():
    results = frontier._side_by_side({"pid": (os.getpid,), "power": (pow, 2, 10), "also": (pow, 3, 2)})
    assert results["pid"] != os.getpid() and results["power"] == 1024 and results["also"] == 9


def test_gpu_section_on_a_cpu_config_is_skipped_with_the_reason(tmp_path):
    cfg = load_config(None, [f"project={tmp_path}"])  # device: cpu
    bench.run(cfg, "python -m benchmarks.run_bench --only gpu", ["gpu"])
    result = json.loads((tmp_path / "demo" / "bench" / "bench.json").read_text())["gpu"]
    assert "no CUDA device" in result["skipped"] and "hard_gpu" in result["skipped"]


def test_recovery_targets_need_the_gflops_the_share_and_a_dense_control():
    at = {0.40: {"gflops_fraction": 0.36, "mAP_vs_dense": 0.991}, 0.25: {"gflops_fraction": 0.22, "mAP_vs_dense": 0.969}}
    first, second = recovery.recovery_targets(at)
    assert first["met"] and "36.0% (<= 40%)" in first["what"] and "99.1%" in first["what"]
    assert not second["met"]  # 96.9% < 97%
    at[0.40]["gflops_fraction"] = 0.41  # above the GFLOPs the target is for: not met whatever the accuracy
    assert not recovery.recovery_targets(at)[0]["met"]
    at[0.25]["mAP_vs_dense"] = None
    assert "not measured" in recovery.recovery_targets(at)[1]["what"] and not recovery.recovery_targets(at)[1]["met"]


def test_a_section_gets_the_results_of_the_sections_it_reads_and_waits_for_the_pipeline(tmp_path, monkeypatch):
    seen = []
    fake = bench.Section(lambda cfg, folder, exist_ok, done: seen.append(done) or {"rows": []}, lambda s: "table",
                         reads=("sweep",))
    monkeypatch.setitem(bench.SECTIONS, "recovery", fake)
    cfg = load_config(None, [f"project={tmp_path}"])
    bench.run(cfg, "first", ["sweep", "recovery"])  # sweep waits for the sparsity stage; recovery reads nothing else
    assert seen == [{"sweep": json.loads((tmp_path / "demo" / "bench" / "bench.json").read_text())["sweep"]}]
    monkeypatch.setitem(bench.SECTIONS, "recovery", bench.Section(fake.run, fake.render, stages=("sparsity",)))
    bench.run(cfg, "second", ["recovery"])
    result = json.loads((tmp_path / "demo" / "bench" / "bench.json").read_text())["recovery"]
    assert len(seen) == 1 and "no sparse model" in result["skipped"] and "make pipeline" in result["skipped"]


def test_cached_run_is_reused_for_the_same_tensors_and_settings_and_made_again_otherwise(tmp_path):
    model = YOLO("yolov8n.yaml").model
    source = ultra.save_checkpoint(model, tmp_path / "a.pt", {}, {})
    made = []

    def make():
        made.append(1)
        return ultra.save_checkpoint(model, tmp_path / "run" / "out.pt", {}, {})

    first = cached.make_once(tmp_path / "run", cached.made_from(source, {"epochs": 2}), make, exist_ok=False)
    resaved = ultra.save_checkpoint(model, tmp_path / "a.pt", {}, {"saved": "again"})  # same tensors, new bytes
    again = cached.make_once(tmp_path / "run", cached.made_from(resaved, {"epochs": 2}), make, exist_ok=False)
    assert len(made) == 1 and again == first and first["out"] == str(tmp_path / "run" / "out.pt")
    cached.make_once(tmp_path / "run", cached.made_from(source, {"epochs": 3}), make, exist_ok=False)
    assert len(made) == 2  # other settings
    with torch.no_grad():
        next(model.parameters()).add_(1.0)
    changed = ultra.save_checkpoint(model, tmp_path / "a.pt", {}, {})
    cached.make_once(tmp_path / "run", cached.made_from(changed, {"epochs": 3}), make, exist_ok=False)
    cached.make_once(tmp_path / "run", cached.made_from(changed, {"epochs": 3}), make, exist_ok=True)
    assert len(made) == 4  # other tensors, then exist_ok
    assert "sha256" in cached.made_from(changed, {})["input"] and "input" not in cached.made_from("yolov8s.yaml", {})


def test_plot_targeted_reads_every_seed_and_the_controls(tmp_path):
    from benchmarks import plot_targeted

    def put(run, m, gflops=None):
        (tmp_path / run / "val").mkdir(parents=True)
        (tmp_path / run / "val" / ("dense.json" if gflops is None else "finetuned.json")).write_text(
            json.dumps({"mAP50_95": m}))
        if gflops is not None:
            (tmp_path / run / "prune").mkdir()
            sizes = {"before": {"gflops": 0.4}, "after": {"gflops": 0.4 * gflops}}
            (tmp_path / run / "prune" / "pruned.plan.json").write_text(json.dumps({"sizes": sizes}))

    put("a-dense-18", 0.8)
    put("b-dense-18", 0.6)
    put("a-l1-ft-0.4", 0.7, 0.39)
    put("b-l1-ft-0.4", 0.5, 0.4)
    put("a-targeted-0.4", 0.63, 0.4)  # seed b has no targeted run: its mean is seed a's alone
    put("a-nosparse-0.4", 0.35, 0.38)
    put("b-nosparse-0.4", 0.25, 0.4)
    data = plot_targeted.collect(tmp_path, ["a", "b"], ["0.4"], 18)
    assert data["dense"] == [0.8, 0.6]
    assert [p["gflops"] for p in data["points"]["l1", "0.4"]] == pytest.approx([0.39, 0.4])
    text = plot_targeted.table(data)
    assert "| l1 | 0.600 (85.7%; n=2) |" in text
    assert "| targeted | 0.630 (90.0%; n=1) |" in text
    assert "| no sparsity (pruned from the baseline) | 0.300 (42.9%; n=2) |" in text
    assert "| Torch-Pruning GReg | - |" in text
    out = plot_targeted.plot(data, tmp_path / "plot.png", "t")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_reinit_randomises_every_learned_layer_and_keeps_the_dfl():
    from benchmarks.reinit import reinitialize_

    model = YOLO("yolov8n.yaml").model
    for bn in prunable_bns(model):
        torch.nn.init.constant_(bn.weight, 0.3)
    conv = model.model[2].cv1.conv.weight.clone()
    dfl = model.model[-1].dfl.conv.weight.clone()
    reinitialize_(model)
    assert not torch.equal(model.model[2].cv1.conv.weight, conv)
    assert all(bool((bn.weight == 1).all()) for bn in prunable_bns(model))
    assert torch.equal(model.model[-1].dfl.conv.weight, dfl)  # 0..15: the box decoding, not a learned layer
    assert model.model[-1].cv3[0][2].bias[0] < -5  # the class prior ultralytics sets on a fresh model

