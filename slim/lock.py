"""One writer per run folder: a file lock beside the folder, which the OS releases when its process ends, SIGKILL too.

The lock file sits beside the folder (`runs/demo/.sparsity.lock`), not in it, so a run refused before any work
leaves no stage folder behind. It holds the running one's pid and command, for the refusal to name it.
"""

from __future__ import annotations

import fcntl
import json
import os
import shlex
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from slim.errors import SlimError


def lock_path(folder: Path) -> Path:
    return Path(folder).parent / f".{Path(folder).name}.lock"


@contextmanager
def hold(folder: Path):
    """Hold `folder`'s lock for the duration of the block; a SlimError naming the holder when another run has it.

    flock on an open file: the lock lives as long as the file stays open in this process, so a crash or a kill
    releases it, and a second open in the same process is refused just as another process is.
    """
    path = lock_path(folder)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SlimError(f"{folder} is being written by another run ({_holder(fd)}): wait for it to end or stop "
                            "it, or pass name=<new name> for a new run") from None
        os.ftruncate(fd, 0)
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime())
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "command": _command(), "started": started}).encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)  # names no holder once released (a killed run's stays, but only the lock counts)
    finally:
        os.close(fd)  # releases the lock; the file stays, so that every run locks the same inode


def _command() -> str:
    """This process's command line as typed: `slim sparsity ...`, `python -m slim ...`, `train_sparsity.py ...`."""
    if not sys.argv or not sys.argv[0]:
        return "python"
    program = Path(sys.argv[0])
    name = f"python -m {program.parent.name}" if program.name == "__main__.py" else program.name
    return " ".join([name, shlex.join(sys.argv[1:])]).strip()


def _holder(fd: int) -> str:
    """Who holds the lock, as its file says: 'pid 123, `slim sparsity`, started ...' (it may not have written yet)."""
    try:
        held = json.loads(os.pread(fd, 4096, 0).decode())
        return f"pid {held['pid']}, `{held['command']}`, started {held['started']}"
    except (ValueError, KeyError, TypeError):
        return "its pid not written yet"
