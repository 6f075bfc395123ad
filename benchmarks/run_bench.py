"""Benchmarks for BENCHMARKS.md: python -m benchmarks.run_bench [--config C] [--only SECTION ...] [--exist-ok] [key=value ...]

Writes <project>/<name>/bench/bench.json, BENCH.md and PNG plots; sections: prune_speed, sizes640, convergence,
sweep, recovery, frontier, seeds, overhead, gammas, gpu (default: all, in this order). --exist-ok redoes the
training runs the sections cache.
"""

import sys

from slim.offline import keep_ultralytics_offline

keep_ultralytics_offline()  # benchmarks always run offline; before anything imports ultralytics

from benchmarks import bench  # noqa: E402
from slim.commands import load, parser  # noqa: E402
from slim.errors import run_cli  # noqa: E402


def main(argv):
    p = parser("python -m benchmarks.run_bench", __doc__)
    p.add_argument("--only", action="append", choices=list(bench.SECTIONS), help="run this section (repeatable)")
    args = p.parse_args(argv)
    cfg = load(args, None, {})
    command = " ".join(["python -m benchmarks.run_bench", *sys.argv[1:]])
    print(f"bench: {bench.run(cfg, command, args.only, exist_ok=args.exist_ok)}")


if __name__ == "__main__":
    run_cli(main)
