"""`python scripts/train.py [flags] [key=value ...]` is `slim train`: same flags, same config (see `slim train --help`)."""

import sys

from slim.cli import main

if __name__ == "__main__":
    main(["train", *sys.argv[1:]])
