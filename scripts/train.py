"""`python scripts/train.py` is `slim train`: the same flags and config (`slim train --help`)."""

import sys

from slim.cli import main

if __name__ == "__main__":
    main(["train", *sys.argv[1:]])
