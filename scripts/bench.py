"""Benchmarks for BENCHMARKS.md: python scripts/bench.py [--config C] [--only SECTION ...] [--exist-ok] [key=value ...]

Writes <project>/<name>/bench/bench.json, BENCH.md and PNG plots; sections: prune_speed, sizes640, sweep,
recovery, overhead, gammas (default: all). --exist-ok redoes the training runs the sections cache.
"""

import sys

import slim  # noqa: F401  (keeps ultralytics offline; first, before anything imports it)
from slim import bench
from slim.cli import load, parser
from slim.errors import run_cli


def main(argv):
    p = parser(__doc__)
    p.add_argument("--only", action="append", choices=list(bench.SECTIONS), help="run this section (repeatable)")
    args = p.parse_args(argv)
    cfg = load(args, None, {})
    command = " ".join(["python scripts/bench.py", *sys.argv[1:]])
    print(f"bench: {bench.run(cfg, command, args.only, exist_ok=args.exist_ok)}")


if __name__ == "__main__":
    run_cli(main)
