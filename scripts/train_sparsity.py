"""`python scripts/train_sparsity.py` is `slim sparsity`: the same flags and config (`slim sparsity --help`)."""

import sys

from slim.cli import main

if __name__ == "__main__":
    main(["sparsity", *sys.argv[1:]])
