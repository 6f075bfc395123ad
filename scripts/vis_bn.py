"""`python scripts/vis_bn.py [flags] [key=value ...]` is `slim vis`: same flags, same config (see `slim vis --help`)."""

import sys

from slim.cli import main

if __name__ == "__main__":
    main(["vis", *sys.argv[1:]])
