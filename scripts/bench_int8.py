"""INT8 benchmarks: python scripts/bench_int8.py [--config C] [--only tasks|latency ...] [key=value ...]

tasks: fp32 vs int8 per task (segment, pose, obb, classify) with the task's own metric, for several sets of
nodes kept in fp32; latency: ONNX Runtime quantization settings timed against fp32 at 320 and 640 px, with
mAP50-95 at the demo size. Writes <project>/<name>/bench_int8/{results.json,BENCH_INT8.md}.
"""

import sys

import slim  # noqa: F401  (keeps ultralytics offline; first, before anything imports it)
from slim import bench_int8
from slim.cli import load, parser
from slim.errors import run_cli


def main(argv):
    p = parser(__doc__, exist_ok=False)
    p.add_argument("--only", action="append", choices=list(bench_int8.PARTS), help="run this part (repeatable)")
    args = p.parse_args(argv)
    cfg = load(args, None, {})
    command = " ".join(["python scripts/bench_int8.py", *sys.argv[1:]])
    print(f"bench_int8: {bench_int8.run(cfg, command, tuple(args.only or bench_int8.PARTS))}")


if __name__ == "__main__":
    run_cli(main)
