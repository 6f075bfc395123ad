"""Generate the built-in demo dataset once (then reused) and print its data.yaml: python scripts/make_demo_data.py"""

import slim  # noqa: F401  (keeps ultralytics offline; first, before anything imports it)
from slim import stages
from slim.cli import load, parser
from slim.errors import run_cli


def main(argv):
    args = parser(__doc__, exist_ok=False).parse_args(argv)
    cfg = load(args, "demo", {})
    print(stages.resolve_data(cfg))


if __name__ == "__main__":
    run_cli(main)
