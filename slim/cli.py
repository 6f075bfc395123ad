"""The `slim` command: `slim <command> [flags] [key=value ...]`, one command per stage (slim/commands.py).

It applies the offline guard (slim/offline.py) before any stage imports ultralytics, then runs the command;
a problem the user can fix ends as one `error:` line and a non-zero exit (slim/errors.py).
"""

from __future__ import annotations

import difflib
import sys

from slim import __version__
from slim.commands import COMMANDS
from slim.errors import USAGE, UsageError, run_cli
from slim.offline import keep_ultralytics_offline, should_go_offline


def main(argv: list | None = None) -> None:
    """Entry point of the `slim` console script (and of `python -m slim` and scripts/*.py)."""
    run_cli(_dispatch, sys.argv[1:] if argv is None else list(argv))


def _dispatch(argv: list) -> None:
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        sys.exit(0 if argv else USAGE)
    if argv[0] == "--version":
        print(f"slim {__version__}")
        return
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        close = difflib.get_close_matches(name, COMMANDS, n=1)
        hint = f"did you mean '{close[0]}'?" if close else f"choose one of: {', '.join(COMMANDS)}"
        raise UsageError(f"unknown command '{name}': {hint} (see slim --help)")
    if should_go_offline():
        keep_ultralytics_offline()  # before the command imports ultralytics, which reads the settings once
    COMMANDS[name](rest)


def usage() -> str:
    """`slim --help`: the commands, each with its one-line summary."""
    width = max(map(len, COMMANDS))
    lines = [f"  {name:<{width}}  {fn.__doc__.splitlines()[0]}" for name, fn in COMMANDS.items()]
    return "\n".join([
        "usage: slim <command> [--config NAME|PATH] [flags] [key=value ...]",
        "",
        "Network-slimming channel pruning for Ultralytics YOLO. Commands:",
        *lines,
        "",
        "`slim <command> --help` lists a command's flags. --config takes a YAML path or a packaged config's",
        "name (default, custom_example); without it, a stage given --weights uses that model's own image size,",
        "dataset and task, and the demo config applies otherwise. key=value overrides any entry (prune.ratio=0.6).",
        "--verbose shows the traceback of an error. Offline guard: SLIM_OFFLINE=1 always, 0 never; unset,",
        "only when ultralytics is not configured (no YOLO_OFFLINE, YOLO_CONFIG_DIR or ultralytics settings file).",
    ])
