"""Section gpu: PyTorch fp32/fp16 and ONNX Runtime CUDA latency of the sparse model and the recovery points."""

from __future__ import annotations

import logging
import statistics
from pathlib import Path

import torch

from benchmarks.sections.common import LATENCY, skipped, tagged
from benchmarks.sections.recovery import recovered
from slim import stages, ultra
from slim.config import Config
from slim.errors import SlimError
from slim.export import export_onnx
from slim.latency import compare_latency, torch_latency_ms
from slim.report import markdown_table

LOG = logging.getLogger("slim")
GPU_ROUNDS = 10  # PyTorch GPU timing: the runs split into rounds, each timing every model; median of round medians


def run(cfg: Config, folder: Path, exist_ok: bool, done: dict) -> dict:
    """On the config's GPU, batch 1: PyTorch fp32 and fp16 and ONNX Runtime's CUDA provider latency of the sparse
    model and of each finetuned recovery point, all interleaved per backend; and whether sparsity training used AMP
    (the sparse checkpoint's own train_args)."""
    points, source = recovered(done), stages.output_of(cfg, "sparsity")
    if not points:
        return skipped("no recovery rows: run the recovery section first")
    weights = {"unpruned": source, **{r["model"].split()[0]: Path(r["finetuned"]) for r in points}}
    device, (runs, warmup) = f"cuda:{cfg.device.split(',')[0]}", LATENCY["gpu"]
    models = {tag: ultra.load_model(w)[0] for tag, w in weights.items()}
    rows = {tag: ultra.model_size(model, cfg.imgsz) for tag, model in models.items()}
    for half, key in ((False, "torch_fp32_ms"), (True, "torch_fp16_ms")):
        for _ in range(GPU_ROUNDS):  # every model in every round: the GPU's clocks drift over a run
            for tag, model in models.items():
                t = torch_latency_ms(model, cfg.imgsz, device, runs // GPU_ROUNDS, warmup, half=half)
                rows[tag].setdefault(key, []).append(t["median_ms"])
    for row in rows.values():
        row.update({k: statistics.median(row[k]) for k in ("torch_fp32_ms", "torch_fp16_ms")})
    e = cfg.export
    onnx = {tag: export_onnx(w, folder / f"{tag}.onnx", cfg.imgsz, e.opset, False, e.simplify, False, e.atol).path
            for tag, w in weights.items()}
    try:
        ort = compare_latency(onnx, cfg.imgsz, runs, warmup, provider="CUDAExecutionProvider")
        for tag, row in rows.items():
            row["ort_cuda_ms"] = ort[tag]["median_ms"]
    except SlimError as err:  # onnxruntime without CUDA: the PyTorch figures still stand
        LOG.warning(f"gpu: {err}")
    train_args = ultra.load_model(source)[1].get("train_args", {})
    return {"device": torch.cuda.get_device_name(device), "imgsz": cfg.imgsz, "runs": runs,
            "sparsity_amp": train_args.get("amp", True), "rows": tagged(rows)}


def render(s: dict) -> str:
    cols = [("model", "model", ""), ("params", "params", ",d"), ("gflops", "GFLOPs", ".2f"),
            ("torch_fp32_ms", "PyTorch fp32 ms", ".2f"), ("torch_fp16_ms", "PyTorch fp16 ms", ".2f"),
            ("ort_cuda_ms", "ONNX Runtime CUDA ms", ".2f")]
    return (f"{s['device']}, {s['imgsz']} px, batch 1, {s['runs']} runs per model and backend (PyTorch: median of "
            f"{GPU_ROUNDS} rounds' medians, ONNX Runtime: interleaved runs). Sparsity training's amp argument: "
            f"{s['sparsity_amp']}.\n\n" + markdown_table(s["rows"], cols))
