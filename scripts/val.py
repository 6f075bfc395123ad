"""Validate a model: python scripts/val.py [--weights X.pt] [--tag T]; prints and writes runs/<name>/val/<tag>.json"""

import json

import slim  # noqa: F401  (keeps ultralytics offline; first, before anything imports it)
from slim import deploy
from slim.cli import load, parser
from slim.errors import run_cli


def main(argv):
    p = parser(__doc__)
    p.add_argument("--weights", help="checkpoint to validate (default: the finetune stage's best.pt)")
    p.add_argument("--tag", help="name of the results file (default: the stage's model name, e.g. finetuned)")
    args = p.parse_args(argv)
    cfg = load(args, "val", {})
    print(json.dumps(deploy.val(cfg, args.weights, args.tag, exist_ok=args.exist_ok), indent=1))


if __name__ == "__main__":
    run_cli(main)
