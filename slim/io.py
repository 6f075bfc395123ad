"""The one way slim writes a file: complete or not at all (temporary file beside it, then one rename).

No ultralytics import, so the benchmarks, the config and the report modules can all use it.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

_UMASK = os.umask(0o022)  # read once at import: os.umask can only be read by setting it, which races with threads
os.umask(_UMASK)


def write_atomic(path: str | Path, write) -> Path:
    """Call write(binary file object) on a temporary file beside `path`, then rename it into place.

    A reader, or a process killed mid-write, sees either the old file or the complete new one, never part of one.
    The file gets the permissions open() would give it (mkstemp's own are owner-only).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())  # the bytes are on disk before the rename makes them the file
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def write_text(path: str | Path, text: str) -> Path:
    return write_atomic(path, lambda f: f.write(text.encode("utf-8")))


def write_json(path: str | Path, data) -> Path:
    return write_text(path, json.dumps(data, indent=1, default=str) + "\n")


def copy_atomic(source: str | Path, path: str | Path) -> Path:
    """Put a file another tool wrote (ultralytics' exporter, ONNX Runtime's quantizer) in place, atomically."""
    with open(source, "rb") as src:
        return write_atomic(path, lambda f: shutil.copyfileobj(src, f))
