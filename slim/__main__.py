"""`python -m slim <command> ...` is the `slim` command."""

from slim.cli import main

main()
