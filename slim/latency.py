"""Inference latency at batch 1: ONNX files in ONNX Runtime (CPU, or another provider), PyTorch on any device.

Every result is a dict {median_ms, p90_ms, threads, runs}, so reports can put them side by side.
"""

from __future__ import annotations

import copy
import os
import time
from pathlib import Path

import numpy as np

from slim.errors import SlimError, UsageError

SEED = 0  # the timed input is uniform noise from this seed; latency does not depend on values, but keep it fixed


def onnx_latency_ms(
    onnx_path: Path, imgsz: int, runs: int = 50, warmup: int = 10, threads: int | None = None
) -> dict:
    """Time one ONNX file in ONNX Runtime on CPU, batch 1.

    Args:
        onnx_path: the model; its input is fed (1, 3, imgsz, imgsz) in the graph's input type.
        imgsz: square input size.
        runs: timed runs.
        warmup: untimed runs first (allocations, thread-pool start).
        threads: ONNX Runtime intra-op threads; None uses every CPU this process may run on.

    Returns:
        {"median_ms", "p90_ms", "threads", "runs"}.
    """
    return compare_latency({"model": Path(onnx_path)}, imgsz, runs, warmup, threads)["model"]


def compare_latency(
    paths: dict[str, Path], imgsz: int, runs: int = 50, warmup: int = 10, threads: int | None = None,
    provider: str = "CPUExecutionProvider",
) -> dict[str, dict]:
    """Time several ONNX files interleaved, so that all of them see the same machine noise.

    Each round runs every model once, starting one model later each round (round-robin), so no model is
    always the one that follows a particular other one.

    Args:
        paths: name -> ONNX file.
        imgsz: square input size fed to all of them.
        runs: timed runs per model.
        warmup: untimed runs per model first.
        threads: ONNX Runtime intra-op threads per session; None uses every CPU this process may run on.
        provider: ONNX Runtime execution provider, e.g. "CUDAExecutionProvider" (then each run includes copying
            the input in and the outputs back, as a plain session.run does).

    Returns:
        name -> {"median_ms", "p90_ms", "threads", "runs"}.

    Raises:
        SlimError: this onnxruntime build lacks `provider`.
    """
    _check_counts(runs, warmup)
    threads = _threads(threads)
    sessions = {name: _session(Path(p), imgsz, threads, provider) for name, p in paths.items()}
    for run in sessions.values():
        for _ in range(warmup):
            run()
    names, times = list(sessions), {name: [] for name in sessions}
    for r in range(runs):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            t0 = time.perf_counter()
            sessions[name]()
            times[name].append((time.perf_counter() - t0) * 1e3)
    return {name: _summary(t, threads) for name, t in times.items()}


def torch_latency_ms(
    model, imgsz: int, device: str = "cpu", runs: int = 50, warmup: int = 10, half: bool = False
) -> dict:
    """Time a PyTorch module at batch 1 on `device`; the caller's module is not changed (a copy is timed).

    Args:
        model: torch.nn.Module taking (1, 3, imgsz, imgsz), e.g. YOLO(...).model.
        imgsz: square input size.
        device: "cpu", "cuda", "cuda:0", ...; on CUDA every run ends with a synchronize.
        runs: timed runs.
        warmup: untimed runs first (cudnn autotune, allocations).
        half: FP16 model and input (CUDA only).

    Returns:
        {"median_ms", "p90_ms", "threads", "runs"}; threads is torch's CPU intra-op thread count.
    """
    import torch

    _check_counts(runs, warmup)
    device = torch.device(device)
    if half and device.type != "cuda":
        raise UsageError(f"half=True needs a CUDA device, got {device}: pass device='cuda' or half=False")
    gen = torch.Generator().manual_seed(SEED)
    x = torch.rand(1, 3, imgsz, imgsz, generator=gen).to(device)
    net = copy.deepcopy(model).to(device).eval()
    x, net = (x.half(), net.half()) if half else (x.float(), net.float())
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    times = []
    with torch.inference_mode():
        for _ in range(warmup + runs):
            sync()
            t0 = time.perf_counter()
            net(x)
            sync()
            times.append((time.perf_counter() - t0) * 1e3)
    return _summary(times[warmup:], torch.get_num_threads())


def _check_counts(runs: int, warmup: int) -> None:
    if runs < 1 or warmup < 0:
        raise UsageError(f"latency needs runs >= 1 and warmup >= 0, got runs={runs} warmup={warmup}")


def _threads(threads: int | None) -> int:
    """The intra-op thread count to use and state: None means every CPU this process may run on."""
    if threads is None:
        threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    if threads < 1:
        raise UsageError(f"latency threads must be >= 1, got {threads}: pass a positive count or leave it unset")
    return threads


def _session(onnx_path: Path, imgsz: int, threads: int, provider: str = "CPUExecutionProvider"):
    """An ONNX Runtime session on `provider` with `threads` intra-op threads, bound to a fixed input; returns run()."""
    import onnxruntime as ort

    if not onnx_path.is_file():
        raise SlimError(f"ONNX file {onnx_path} not found: run the export stage first")
    if provider not in ort.get_available_providers():
        raise SlimError(f"this onnxruntime has no {provider} (it has {ort.get_available_providers()}); for CUDA: "
                        "pip install onnxruntime-gpu")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    # idle workers of one session must not spin on the cores the next interleaved session is timed on;
    # measured on 2 cores (yolov8n 320 px, 2 threads): 58 ms without spinning, 65 ms with
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(str(onnx_path), opts, providers=[provider])
    inp = session.get_inputs()[0]
    dtype = np.float16 if inp.type == "tensor(float16)" else np.float32
    feed = {inp.name: np.random.default_rng(SEED).random((1, 3, imgsz, imgsz)).astype(dtype)}
    return lambda: session.run(None, feed)


def _summary(times_ms: list[float], threads: int) -> dict:
    """Median and 90th percentile of per-run milliseconds."""
    return {
        "median_ms": float(np.median(times_ms)),
        "p90_ms": float(np.percentile(times_ms, 90)),
        "threads": threads,
        "runs": len(times_ms),
    }
