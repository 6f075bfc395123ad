"""`python scripts/val.py [flags] [key=value ...]` is `slim val`: same flags, same config (see `slim val --help`)."""

import sys

from slim.cli import main

if __name__ == "__main__":
    main(["val", *sys.argv[1:]])
