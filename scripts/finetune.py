"""`python scripts/finetune.py` is `slim finetune`: the same flags and config (`slim finetune --help`)."""

import sys

from slim.cli import main

if __name__ == "__main__":
    main(["finetune", *sys.argv[1:]])
