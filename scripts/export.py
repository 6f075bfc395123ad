"""Export to ONNX, checked against ONNX Runtime: python scripts/export.py [--weights X.pt] [--tag T] [--int8] [--imgsz N]"""

import slim  # noqa: F401  (keeps ultralytics offline; first, before anything imports it)
from slim import deploy
from slim.cli import load, parser
from slim.errors import run_cli


def main(argv):
    p = parser(__doc__)
    p.add_argument("--weights", help="checkpoint to export (default: the finetune stage's best.pt)")
    p.add_argument("--tag", help="name of the .onnx file (default: the stage's model name, e.g. finetuned)")
    p.add_argument("--imgsz", help="input image size")
    p.add_argument("--opset", help="ONNX opset")
    p.add_argument("--dynamic", action="store_const", const="true", help="dynamic batch and image size")
    p.add_argument("--int8", action="store_const", const="true", help="also write <name>-int8.onnx (static PTQ)")
    args = p.parse_args(argv)
    flags = {"imgsz": args.imgsz, "export.opset": args.opset, "export.dynamic": args.dynamic, "export.int8": args.int8}
    cfg = load(args, "export", flags)
    out = deploy.export(cfg, args.weights, args.tag, exist_ok=args.exist_ok)
    print(f"export: {out['onnx']} ({out['onnx_bytes'] / 1e6:.2f} MB), "
          f"largest difference to PyTorch {out['max_abs_diff']:.2e} (tolerance {cfg.export.atol:g})")
    if "int8" in out:
        print(f"export: {out['int8']} ({out['int8_bytes'] / 1e6:.2f} MB, int8)")


if __name__ == "__main__":
    run_cli(main)
