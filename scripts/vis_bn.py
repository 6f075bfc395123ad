"""`python scripts/vis_bn.py` is `slim vis`: the same flags and config (`slim vis --help`)."""

import sys

from slim.cli import main

if __name__ == "__main__":
    main(["vis", *sys.argv[1:]])
