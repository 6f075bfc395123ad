"""ultralytics' own argument tables: every training/validation key with its default, the type each key takes, and
ultralytics' range check. slim's config validates the arguments it passes through against them.

ultralytics.cfg (and with it torch, about 2 s) is imported at the first question, not when this module is: the
config module that imports it stays pure, and `slim --help` stays fast.
"""

import functools
import types
from typing import Any

MIXED = frozenset({"fraction", "scale", "compile", "amp", "quantize"})  # several types: left to check_cfg


@functools.cache
def _cfg() -> types.ModuleType:
    import ultralytics.cfg

    return ultralytics.cfg


@functools.cache
def names() -> frozenset:
    """Every ultralytics training/validation argument: the keys of DEFAULT_CFG_DICT."""
    return frozenset(_cfg().DEFAULT_CFG_DICT)


def type_of(key: str) -> Any:
    """An ultralytics argument's type, from its key family, else from its default value.

    Returns:
        float, int, bool, str or the default's type; `T | None` when the default is None; Any for the keys that take
        several types (MIXED) and for a None default outside every family.
    """
    cfg = _cfg()
    default = cfg.DEFAULT_CFG_DICT[key]
    if key in MIXED:
        return Any
    if key in cfg.CFG_FLOAT_KEYS | cfg.CFG_FRACTION_KEYS:
        tp = float
    elif key in cfg.CFG_INT_KEYS:
        tp = int
    elif key in cfg.CFG_BOOL_KEYS:
        tp = bool
    elif key in cfg.CFG_STR_KEYS:
        tp = str
    elif default is not None:
        tp = type(default)
    else:
        return Any
    return tp | None if default is None else tp


def check(key: str, value: Any) -> None:
    """ultralytics' own check of one argument (check_cfg): ranges, and the types of the MIXED keys.

    Raises:
        TypeError or ValueError, with ultralytics' message.
    """
    _cfg().check_cfg({key: value})
