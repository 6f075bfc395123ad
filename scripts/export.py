"""`python scripts/export.py` is `slim export`: the same flags and config (`slim export --help`)."""

import sys

from slim.cli import main

if __name__ == "__main__":
    main(["export", *sys.argv[1:]])
