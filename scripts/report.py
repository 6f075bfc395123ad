"""`python scripts/report.py` is `slim report`: the same flags and config (`slim report --help`)."""

import sys

from slim.cli import main

if __name__ == "__main__":
    main(["report", *sys.argv[1:]])
