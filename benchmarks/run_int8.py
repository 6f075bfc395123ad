"""INT8 benchmarks: python -m benchmarks.run_int8 [--config C] [--only tasks|latency ...] [key=value ...]

tasks: fp32 vs int8 per task (segment, pose, obb, classify) with the task's own metric, for several sets of
nodes kept in fp32; latency: ONNX Runtime quantization settings timed against fp32 at 320 and 640 px, with
mAP50-95 at the demo size. Writes <project>/<name>/bench_int8/{results.json,BENCH_INT8.md}.
"""

import sys

from slim.offline import keep_ultralytics_offline

keep_ultralytics_offline()  # benchmarks always run offline; before anything imports ultralytics

from benchmarks import bench_int8  # noqa: E402
from slim.commands import load, parser  # noqa: E402
from slim.errors import run_cli  # noqa: E402


def main(argv):
    p = parser("python -m benchmarks.run_int8", __doc__, exist_ok=False)
    p.add_argument("--only", action="append", choices=list(bench_int8.PARTS), help="run this part (repeatable)")
    args = p.parse_args(argv)
    cfg = load(args, None, {})
    command = " ".join(["python -m benchmarks.run_int8", *sys.argv[1:]])
    print(f"bench_int8: {bench_int8.run(cfg, command, tuple(args.only or bench_int8.PARTS))}")


if __name__ == "__main__":
    run_cli(main)
