"""`python scripts/make_demo_data.py [flags] [key=value ...]` is `slim data`: same flags, same config (see `slim data --help`)."""

import sys

from slim.cli import main

if __name__ == "__main__":
    main(["data", *sys.argv[1:]])
