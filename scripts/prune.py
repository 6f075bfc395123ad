"""`python scripts/prune.py` is `slim prune`: the same flags and config (`slim prune --help`)."""

import sys

from slim.cli import main

if __name__ == "__main__":
    main(["prune", *sys.argv[1:]])
