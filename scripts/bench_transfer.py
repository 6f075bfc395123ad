"""Sparse-transfer benchmark: python scripts/bench_transfer.py [--config C] [transfer.data=demo-other] [key=value ...]

Pruned-and-transferred vs the same pruned architecture from scratch vs the dense model transferred, at equal
epochs (the finetune section's) on transfer.data; writes <project>/<name>/bench_transfer/{results.json,BENCH_TRANSFER.md}.
"""

import sys

import slim  # noqa: F401  (keeps ultralytics offline; first, before anything imports it)
from slim import bench_transfer
from slim.cli import load, parser
from slim.errors import run_cli


def main(argv):
    p = parser(__doc__, exist_ok=False)
    args = p.parse_args(argv)
    cfg = load(args, None, {})
    if not cfg.transfer.data:
        cfg = load(args, None, {"transfer.data": "demo-other"})
    command = " ".join(["python scripts/bench_transfer.py", *sys.argv[1:]])
    print(f"bench_transfer: {bench_transfer.run(cfg, command)}")


if __name__ == "__main__":
    run_cli(main)
