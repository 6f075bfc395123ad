"""`python scripts/transfer.py` is `slim transfer`: the same flags and config (`slim transfer --help`)."""

import sys

from slim.cli import main

if __name__ == "__main__":
    main(["transfer", *sys.argv[1:]])
