"""One exception type for every problem a user can fix, and the CLI wrapper that turns it into one line."""

import sys
import traceback

USAGE = 2  # wrong usage: bad flag, bad value, bad config
FAILURE = 1  # something failed while running: unreadable checkpoint, missing dataset


class SlimError(Exception):
    """A problem the user can act on. Its message is one line that names the problem and what to do."""

    def __init__(self, message: str, code: int = FAILURE):
        super().__init__(message)
        self.code = code


class UsageError(SlimError):
    """Wrong usage: an argument, a config key or a value that cannot be right."""

    def __init__(self, message: str):
        super().__init__(message, USAGE)


def run_cli(main, argv=None) -> None:
    """Run a script's main(argv) and exit with its status; a SlimError becomes one line on stderr.

    A traceback is printed only with --verbose, for bug reports.
    """
    argv = sys.argv[1:] if argv is None else argv
    verbose = "--verbose" in argv
    try:
        main([a for a in argv if a != "--verbose"])
    except SlimError as e:
        if verbose:
            traceback.print_exc()
        print(f"error: {e}", file=sys.stderr)
        sys.exit(e.code)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        sys.exit(130)
