"""What every script shares: --config, key=value overrides, --exist-ok, and one-line usage errors."""

from __future__ import annotations

import argparse
import logging
import sys
import warnings

from slim.config import Config, load_config
from slim.errors import USAGE


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (plus exit code 2), like every other slim error."""

    def parse_args(self, args=None, namespace=None):
        # key=value overrides may come before and after flags: `prune.py ratio=0.6 --config c.yaml name=x`
        return self.parse_intermixed_args(args, namespace)

    def error(self, message: str):
        print(f"error: {message} (see --help)", file=sys.stderr)
        sys.exit(USAGE)


def parser(description: str, exist_ok: bool = True) -> Parser:
    p = Parser(description=description)
    p.add_argument("--config", default="configs/default.yaml", help="experiment YAML shared by every stage")
    if exist_ok:
        p.add_argument("--exist-ok", action="store_true", help="replace this stage's earlier outputs")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="override any config entry, e.g. prune.ratio=0.6")
    return p


def load(args: argparse.Namespace, stage: str | None, flags: dict) -> Config:
    """The config for a stage: the YAML, then the flags a user typed (as overrides), then key=value overrides.

    Args:
        flags: config key -> value for the flags that were given (None values are skipped).
    """
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    warnings.formatwarning = lambda message, *_, **__: f"warning: {message}\n"  # one line, no source echo
    typed = [f"{k}={v}" for k, v in flags.items() if v is not None]
    return load_config(args.config, typed + list(args.overrides), stage=stage)
