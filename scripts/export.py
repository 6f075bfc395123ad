"""`python scripts/export.py [flags] [key=value ...]` is `slim export`: same flags, same config (see `slim export --help`)."""

import sys

from slim.cli import main

if __name__ == "__main__":
    main(["export", *sys.argv[1:]])
