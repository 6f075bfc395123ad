"""`python scripts/val.py` is `slim val`: the same flags and config (`slim val --help`)."""

import sys

from slim.cli import main

if __name__ == "__main__":
    main(["val", *sys.argv[1:]])
