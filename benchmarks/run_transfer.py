"""Sparse-transfer benchmark: python -m benchmarks.run_transfer [--config C] [transfer.data=demo-other] [key=value ...]

Pruned-and-transferred vs the same pruned architecture from scratch vs the dense model transferred, at equal
epochs (the finetune section's) on transfer.data; writes <project>/<name>/bench_transfer/{results.json,BENCH_TRANSFER.md}.
"""

import sys

from slim.offline import keep_ultralytics_offline

keep_ultralytics_offline()  # benchmarks always run offline; before anything imports ultralytics

from benchmarks import bench_transfer  # noqa: E402
from slim.commands import load, parser  # noqa: E402
from slim.errors import run_cli  # noqa: E402


def main(argv):
    p = parser("python -m benchmarks.run_transfer", __doc__, exist_ok=False)
    args = p.parse_args(argv)
    cfg = load(args, None, {})
    if not cfg.transfer.data:
        cfg = load(args, None, {"transfer.data": "demo-other"})
    command = " ".join(["python -m benchmarks.run_transfer", *sys.argv[1:]])
    print(f"bench_transfer: {bench_transfer.run(cfg, command)}")


if __name__ == "__main__":
    run_cli(main)
