"""`python scripts/train_sparsity.py [flags] [key=value ...]` is `slim sparsity`: same flags, same config (see `slim sparsity --help`)."""

import sys

from slim.cli import main

if __name__ == "__main__":
    main(["sparsity", *sys.argv[1:]])
