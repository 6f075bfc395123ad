"""`python scripts/make_demo_data.py` is `slim data`: the same flags and config (`slim data --help`)."""

import sys

from slim.cli import main

if __name__ == "__main__":
    main(["data", *sys.argv[1:]])
