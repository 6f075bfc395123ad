"""`python scripts/prune.py [flags] [key=value ...]` is `slim prune`: same flags, same config (see `slim prune --help`)."""

import sys

from slim.cli import main

if __name__ == "__main__":
    main(["prune", *sys.argv[1:]])
