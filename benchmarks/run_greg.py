"""Torch-Pruning's GReg as a peer arm: python -m benchmarks.run_greg [--config C] --weights BASELINE
    [--target-gflops 0.4] [--reg R] [--delta-reg D] [--global] [--prune-head] [name=...] [key=value ...]

Regularize with GReg (the config's sparsity epochs and batch, the baseline's own optimizer), prune to the GFLOPs
budget with Torch-Pruning, finetune and validate with slim's stages. Writes <project>/<name>/bench_greg/results.json;
name defaults to <config name>-greg-<budget>.
"""

import sys
from pathlib import Path

from slim.offline import keep_ultralytics_offline

keep_ultralytics_offline()  # benchmarks always run offline; before anything imports ultralytics

from benchmarks import bench_greg  # noqa: E402
from slim.commands import load, parser  # noqa: E402
from slim.errors import run_cli  # noqa: E402


def main(argv):
    p = parser("python -m benchmarks.run_greg", __doc__, exist_ok=False)
    p.add_argument("--weights", required=True, help="the dense baseline checkpoint")
    p.add_argument("--target-gflops", type=float, default=0.4, help="GFLOPs budget, a fraction (default: %(default)s)")
    p.add_argument("--reg", type=float, default=bench_greg.REG, help="GReg's base reg (default: %(default)s)")
    p.add_argument("--delta-reg", type=float, default=bench_greg.DELTA_REG,
                   help="GReg's reg growth per epoch (default: %(default)s)")
    p.add_argument("--global", dest="global_pruning", action="store_true",
                   help="rank all channels together (default: per layer, as Torch-Pruning's YOLOv8 example)")
    p.add_argument("--prune-head", action="store_true",
                   help="prune the Detect head's hidden convs too (default: the whole head ignored, as that example)")
    args = p.parse_args(argv)
    named = any(o.startswith("name=") for o in args.overrides)
    cfg = load(args, None, {})
    if not named:
        cfg = load(args, None, {"name": f"{cfg.name}-greg-{args.target_gflops:g}"})
    command = " ".join(["python -m benchmarks.run_greg", *sys.argv[1:]])
    out = bench_greg.run(cfg, command, Path(args.weights), args.target_gflops, args.reg, args.delta_reg,
                         args.global_pruning, args.prune_head)
    print(f"bench_greg: {out}")


if __name__ == "__main__":
    run_cli(main)
