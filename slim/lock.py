"""One writer per stage folder: a file lock in the folder, which the OS releases when its process ends, SIGKILL too.

A stage checks the lock before any work (check_free, which creates nothing, so a run refused early leaves no folder
behind) and takes it when it claims its folder (acquire, inside scope()), until the scope ends.
The file holds the running one's pid and command, for the refusal to name it.
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

LOCK = ".slim.lock"  # in the stage folder; it stays after the run (every run locks the same file), emptied
_HELD: dict[Path, int] = {}  # lock file -> its open descriptor, for the locks this process holds
_SCOPES: list[list[Path]] = []  # the lock files taken in each open scope(), innermost last


@contextmanager
def scope():
    """The locks acquire() takes inside this block are released when it ends, however it ends."""
    taken: list[Path] = []
    _SCOPES.append(taken)
    try:
        yield
    finally:
        _SCOPES.remove(taken)
        for path in taken:
            fd = _HELD.pop(path)
            os.ftruncate(fd, 0)  # names no holder once released (a killed run's stays, but only the lock counts)
            os.close(fd)  # closing the file releases the lock


def acquire(folder: Path) -> None:
    """Hold `folder`'s lock until the enclosing scope() ends; a SlimError naming the holder when another run has it.

    flock on an open file: the lock lives as long as the file is open in this process, so a crash or a kill
    releases it. Taking a lock this process already holds is a no-op.
    """
    path = (Path(folder) / LOCK).resolve()
    if path in _HELD:
        return
    if not _SCOPES:
        raise RuntimeError("slim.lock.acquire() outside slim.lock.scope(): the lock would never be released")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    if not _try_lock(fd):
        holder = _holder(fd)
        os.close(fd)
        raise _refusal(folder, holder)
    os.ftruncate(fd, 0)
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime())
    os.pwrite(fd, json.dumps({"pid": os.getpid(), "command": _command(), "started": started}).encode(), 0)
    _HELD[path] = fd
    _SCOPES[-1].append(path)


def check_free(folder: Path) -> None:
    """A SlimError naming the holder when another run holds `folder`'s lock; creates nothing."""
    path = (Path(folder) / LOCK).resolve()
    if path in _HELD:
        return
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:  # no run ever took it
        return
    try:
        if not _try_lock(fd):
            raise _refusal(folder, _holder(fd))
        fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


def _refusal(folder: Path, holder: str) -> SlimError:
    return SlimError(f"{folder} is being written by another run ({holder}): wait for it to end or stop it, "
                     "or pass name=<new name> for a new run")


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
