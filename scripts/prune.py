"""Stage 3, prune: python scripts/prune.py [--weights sparse.pt] [--prune-ratio 0.6 | --threshold T] [--out X.pt]"""

import slim  # noqa: F401  (keeps ultralytics offline; first, before anything imports it)
from slim import stages
from slim.cli import load, parser
from slim.errors import run_cli
from slim.report import prune_table


def main(argv):
    p = parser(__doc__)
    p.add_argument("--weights", help="sparsity-trained checkpoint (default: the sparsity stage's last.pt)")
    p.add_argument("--prune-ratio", help="fraction of prunable BN channels to remove, globally, in (0, 1)")
    p.add_argument("--threshold", help="instead of a ratio: remove channels whose |gamma| is below this")
    p.add_argument("--out", help="where to write the pruned checkpoint (default: runs/<name>/prune/pruned.pt)")
    args = p.parse_args(argv)
    cfg = load(args, "prune", {"prune.ratio": args.prune_ratio, "prune.threshold": args.threshold})
    out, plan, sizes = stages.prune(cfg, args.weights, args.out, exist_ok=args.exist_ok)
    print(prune_table(plan, sizes))
    print(f"prune: {out}")


if __name__ == "__main__":
    run_cli(main)
