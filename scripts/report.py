"""`python scripts/report.py [flags] [key=value ...]` is `slim report`: same flags, same config (see `slim report --help`)."""

import sys

from slim.cli import main

if __name__ == "__main__":
    main(["report", *sys.argv[1:]])
