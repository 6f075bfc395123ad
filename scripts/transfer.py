"""Carry the pruned model to a dataset with other classes (only the head's class outputs are rebuilt), with the
finetune settings: python scripts/transfer.py [--weights pruned.pt] transfer.data=other.yaml (or demo-other)"""

import slim  # noqa: F401  (keeps ultralytics offline; first, before anything imports it)
from slim import stages
from slim.cli import load, parser
from slim.errors import run_cli


def main(argv):
    p = parser(__doc__)
    p.add_argument("--weights", help="pruned checkpoint (default: the prune stage's pruned.pt)")
    p.add_argument("--data", help="dataset to transfer to (transfer.data)")
    p.add_argument("--epochs", help="finetuning epochs")
    args = p.parse_args(argv)
    cfg = load(args, "transfer", {"transfer.data": args.data, "finetune.epochs": args.epochs})
    print(f"transfer: {stages.transfer(cfg, args.weights, exist_ok=args.exist_ok)}")


if __name__ == "__main__":
    run_cli(main)
