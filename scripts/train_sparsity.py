"""Stage 2, sparsity training (L1 on BN gammas): python scripts/train_sparsity.py [--sr 1e-2] [--weights X.pt]"""

import slim  # noqa: F401  (keeps ultralytics offline; first, before anything imports it)
from slim import stages
from slim.cli import load, parser
from slim.errors import run_cli


def main(argv):
    p = parser(__doc__)
    p.add_argument("--weights", help="trained checkpoint to continue from (default: the train stage's best.pt)")
    p.add_argument("--sr", help="L1 strength on BN gammas (the network-slimming lambda)")
    p.add_argument("--epochs", help="sparsity-training epochs")
    args = p.parse_args(argv)
    cfg = load(args, "sparsity", {"sparsity.sr": args.sr, "sparsity.epochs": args.epochs})
    print(f"sparsity: {stages.sparsity(cfg, args.weights, exist_ok=args.exist_ok)}")


if __name__ == "__main__":
    run_cli(main)
