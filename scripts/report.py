"""Rebuild REPORT.md from the stages' outputs (val, export, latency, plots): python scripts/report.py [--config C]"""

import slim  # noqa: F401  (keeps ultralytics offline; first, before anything imports it)
from slim import pipeline
from slim.cli import load, parser
from slim.errors import run_cli


def main(argv):
    args = parser(__doc__, exist_ok=False).parse_args(argv)
    cfg = load(args, None, {})
    print(f"report: {pipeline.report(cfg, args.config)}")


if __name__ == "__main__":
    run_cli(main)
