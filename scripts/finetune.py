"""`python scripts/finetune.py [flags] [key=value ...]` is `slim finetune`: same flags, same config (see `slim finetune --help`)."""

import sys

from slim.cli import main

if __name__ == "__main__":
    main(["finetune", *sys.argv[1:]])
