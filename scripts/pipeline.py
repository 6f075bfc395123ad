"""Every stage on one config, then REPORT.md: python scripts/pipeline.py [--config C] [--exist-ok] [key=value ...]"""

import slim  # noqa: F401  (keeps ultralytics offline; first, before anything imports it)
from slim import pipeline
from slim.cli import load, parser
from slim.errors import run_cli


def main(argv):
    args = parser(__doc__).parse_args(argv)
    cfg = load(args, None, {})
    print(f"report: {pipeline.run(cfg, args.config, exist_ok=args.exist_ok)}")


if __name__ == "__main__":
    run_cli(main)
