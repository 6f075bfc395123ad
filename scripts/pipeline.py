"""`python scripts/pipeline.py` is `slim pipeline`: the same flags and config (`slim pipeline --help`)."""

import sys

from slim.cli import main

if __name__ == "__main__":
    main(["pipeline", *sys.argv[1:]])
