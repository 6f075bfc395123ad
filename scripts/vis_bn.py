"""Plot |gamma| before and after sparsity training: python scripts/vis_bn.py [--weights A.pt B.pt ...]"""

from pathlib import Path

import slim  # noqa: F401  (keeps ultralytics offline; first, before anything imports it)
from slim import stages, ultra
from slim.cli import load, parser
from slim.errors import run_cli
from slim.report import plot_gamma_histograms, plot_gamma_per_layer


def main(argv):
    p = parser(__doc__, exist_ok=False)
    p.add_argument("--weights", nargs="+", help="checkpoints to compare (default: the baseline and the sparse one)")
    p.add_argument("--out", help="folder for the PNGs (default: runs/<name>/vis)")
    args = p.parse_args(argv)
    cfg = load(args, None, {})
    paths = [Path(w) for w in args.weights] if args.weights else [
        stages.input_for(cfg, "sparsity", None), stages.input_for(cfg, "prune", None)]
    models = {_label(path, paths): ultra.load_model(path)[0] for path in paths}
    out = Path(args.out) if args.out else cfg.stage_dir("vis")
    print(f"vis: {plot_gamma_histograms(models, out / 'gamma_hist.png')}")
    print(f"vis: {plot_gamma_per_layer(models, out / 'gamma_layers.png')}")


def _label(path: Path, paths: list) -> str:
    """Pipeline checkpoints are named by stage (baseline, sparse); others by their file name."""
    if path.parent.name == "weights":
        return {"train": "baseline", "sparsity": "sparse"}.get(path.parent.parent.name, path.parent.parent.name)
    return path.stem if [p.stem for p in paths].count(path.stem) == 1 else str(path)


if __name__ == "__main__":
    run_cli(main)
