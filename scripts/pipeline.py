"""`python scripts/pipeline.py [flags] [key=value ...]` is `slim pipeline`: same flags, same config (see `slim pipeline --help`)."""

import sys

from slim.cli import main

if __name__ == "__main__":
    main(["pipeline", *sys.argv[1:]])
