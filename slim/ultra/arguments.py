"""ultralytics' own argument tables: every training/validation key with its default, the type family of each key,
and ultralytics' range check. slim's config validates the arguments it passes through against them."""

from ultralytics.cfg import (
    CFG_BOOL_KEYS,
    CFG_FLOAT_KEYS,
    CFG_FRACTION_KEYS,
    CFG_INT_KEYS,
    CFG_STR_KEYS,
    DEFAULT_CFG_DICT,
    check_cfg,
)

__all__ = ["CFG_BOOL_KEYS", "CFG_FLOAT_KEYS", "CFG_FRACTION_KEYS", "CFG_INT_KEYS", "CFG_STR_KEYS", "DEFAULT_CFG_DICT",
           "check_cfg"]
