"""Targeted vs L1 sparsity: python -m benchmarks.run_targeted [--config C] [--weights BASELINE] [--target-gflops F]
    [--arms dense,l1,targeted,targeted-sgd]

Both methods from the same dense baseline for the same sparsity epochs, pruned at the same GFLOPs fraction (0.4
unless given): mAP50-95 of the sparse and of the pruned model, the fraction of removed gammas exactly zero.
Writes <project>/<name>/bench_targeted/{results.json,BENCH_TARGETED.md}.
"""

import sys

from slim.offline import keep_ultralytics_offline

keep_ultralytics_offline()  # benchmarks always run offline; before anything imports ultralytics

from benchmarks import bench_targeted  # noqa: E402
from slim.commands import load, parser  # noqa: E402
from slim.errors import run_cli  # noqa: E402


def main(argv):
    p = parser("python -m benchmarks.run_targeted", __doc__, exist_ok=False)
    p.add_argument("--weights", help="the dense baseline (default: the train stage's output, trained when missing)")
    p.add_argument("--target-gflops", default="0.4", help="the budget both are pruned to (default: %(default)s)")
    p.add_argument("--arms", default="dense,l1,targeted,targeted-sgd",
                   help="the arms to train, by experiment suffix (default: %(default)s)")
    args = p.parse_args(argv)
    cfg = load(args, None, {"prune.target_gflops": args.target_gflops})
    command = " ".join(["python -m benchmarks.run_targeted", *sys.argv[1:]])
    print(f"bench_targeted: {bench_targeted.run(cfg, command, args.weights, args.arms.split(','))}")


if __name__ == "__main__":
    run_cli(main)
