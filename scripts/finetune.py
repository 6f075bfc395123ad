"""Stage 4, finetune the pruned model, keeping its architecture: python scripts/finetune.py [--weights pruned.pt]"""

import slim  # noqa: F401  (keeps ultralytics offline; first, before anything imports it)
from slim import stages
from slim.cli import load, parser
from slim.errors import run_cli


def main(argv):
    p = parser(__doc__)
    p.add_argument("--weights", help="pruned checkpoint (default: the prune stage's pruned.pt)")
    p.add_argument("--epochs", help="finetuning epochs")
    p.add_argument("--resume", action="store_true", help="continue an interrupted finetune (its last.pt)")
    args = p.parse_args(argv)
    cfg = load(args, "finetune", {"finetune.epochs": args.epochs})
    print(f"finetune: {stages.finetune(cfg, args.weights, resume=args.resume, exist_ok=args.exist_ok)}")


if __name__ == "__main__":
    run_cli(main)
