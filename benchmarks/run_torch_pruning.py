"""slim vs Torch-Pruning: python -m benchmarks.run_torch_pruning [--ratio 0.5] [--steps 4] [--variants ...] [key=value]

Reads the config's trained baseline and sparse model (run `make pipeline` first), writes runs/<name>_vs_tp/.
"""

from pathlib import Path

from slim.offline import keep_ultralytics_offline

keep_ultralytics_offline()  # benchmarks always run offline; before anything imports ultralytics

from benchmarks import bench_torch_pruning as bench  # noqa: E402
from slim.commands import load, parser  # noqa: E402
from slim.errors import UsageError, run_cli  # noqa: E402


def main(argv):
    p = parser("python -m benchmarks.run_torch_pruning", __doc__, exist_ok=False)
    p.add_argument("--ratio", type=float, help="slim's prune ratio (default: the config's prune.ratio)")
    p.add_argument("--steps", type=int, default=4, help="Torch-Pruning prune steps, each followed by finetuning")
    p.add_argument("--variants", nargs="+", default=["tp-baseline", "tp-sparse"], choices=list(bench.VARIANTS))
    p.add_argument("--name", help="experiment name for the outputs (default: <config name>_vs_tp)")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="ONNX Runtime thread counts to time")
    p.add_argument("--runs", type=int, default=100, help="timed latency runs per model and thread count")
    p.add_argument("--plot", default="assets/tp_steps.png", help="where the per-step plot goes")
    args = p.parse_args(argv)
    cfg = load(args, None, {})
    ratio = args.ratio if args.ratio is not None else cfg.prune.ratio
    if ratio is None:
        raise UsageError("the config prunes by threshold: pass --ratio")
    name = args.name or f"{cfg.name}_vs_tp"
    results = bench.run(cfg, name, ratio, args.steps, args.variants, args.threads, args.runs)
    results["settings"]["command"] = " ".join(["python -m benchmarks.run_torch_pruning", *argv])
    as_json, as_md = bench.write_results(results, Path(cfg.project) / name)
    print(as_md.read_text())
    print(f"results: {as_json}, {as_md}, plot: {bench.plot_steps(results, args.plot)}")


if __name__ == "__main__":
    run_cli(main)
