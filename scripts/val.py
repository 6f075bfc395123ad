"""Validate a model: python scripts/val.py [--weights X.pt]; prints and writes runs/<name>/val/<tag>.json"""

import json

import slim  # noqa: F401  (keeps ultralytics offline; first, before anything imports it)
from slim import deploy
from slim.cli import load, parser
from slim.errors import run_cli


def main(argv):
    p = parser(__doc__, exist_ok=False)
    p.add_argument("--weights", help="checkpoint to validate (default: the finetune stage's best.pt)")
    args = p.parse_args(argv)
    cfg = load(args, "val", {})
    print(json.dumps(deploy.val(cfg, args.weights), indent=1))


if __name__ == "__main__":
    run_cli(main)
