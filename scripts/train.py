"""Stage 1, normal training: python scripts/train.py [--config C] [--epochs N] [key=value ...]"""

import slim  # noqa: F401  (keeps ultralytics offline; first, before anything imports it)
from slim import stages
from slim.cli import load, parser
from slim.errors import run_cli


def main(argv):
    p = parser(__doc__)
    p.add_argument("--weights", help="start from this model (.yaml architecture or trained .pt) instead of model:")
    p.add_argument("--epochs", help="training epochs")
    args = p.parse_args(argv)
    cfg = load(args, "train", {"model": args.weights, "train.epochs": args.epochs})
    print(f"train: {stages.train(cfg, exist_ok=args.exist_ok)}")


if __name__ == "__main__":
    run_cli(main)
