"""sqlite3's errors as StateError: the file, what went wrong, what to do (docs/ARCHITECTURE.md).

Every public method of the Store and its repositories is wrapped (``guarded``), so no sqlite3
error leaves the SQLite adapter: a damaged, full or unwritable state database ends a command
with exit 2 and a message, never a traceback.
"""

from __future__ import annotations

import functools
import sqlite3
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from syncd.errors import StateError

C = TypeVar("C", bound=type)
R = TypeVar("R")

# SQLite's primary result codes (the low byte of an extended code).
SQLITE_PERM, SQLITE_BUSY, SQLITE_LOCKED, SQLITE_READONLY = 3, 5, 6, 8
SQLITE_IOERR, SQLITE_CORRUPT, SQLITE_FULL, SQLITE_CANTOPEN, SQLITE_NOTADB = 10, 11, 13, 14, 26


def restore_advice(path: Path | str) -> str:
    """What to do about a state database that cannot be read as it is."""
    return (
        "restore a backup with 'syncd state restore BACKUP', or move it aside with its -wal "
        f"and -shm files (mv {path} {path}.damaged): the next cycle then starts a new state "
        "database, reads the whole directory and matches the users and tags Learnster holds "
        "(by [sync] match_by and the tags' externalId) instead of creating them again"
    )


def damaged(path: Path | str, what: str) -> StateError:
    return StateError(
        f"state database {path} is damaged: {what}; {restore_advice(path)}", reason=what
    )


def state_error(exc: sqlite3.Error, path: Path | str) -> StateError:
    """The StateError for what SQLite said about ``path``."""
    code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
    name = getattr(exc, "sqlite_errorname", "") or type(exc).__name__
    detail = f"{exc} ({name})"
    if code in (SQLITE_CORRUPT, SQLITE_NOTADB):
        return damaged(path, detail)
    return _other(code, path, detail)


def _other(code: int, path: Path | str, detail: str) -> StateError:
    directory = Path(path).parent
    if code == SQLITE_FULL:
        return StateError(
            f"cannot write the state database {path}: the disk is full ({detail}). Free space "
            f"on the file system of {directory}, then run syncd again: what Learnster "
            "acknowledged but syncd could not record is matched and linked by the next "
            "cycle, not created again",
            reason=detail,
        )
    if code in (SQLITE_READONLY, SQLITE_CANTOPEN, SQLITE_PERM, SQLITE_IOERR):
        return unwritable(path, detail)
    if code in (SQLITE_BUSY, SQLITE_LOCKED):
        return StateError(
            f"the state database {path} is locked by another process ({detail}); try again "
            "when it has finished",
            reason=detail,
        )
    return StateError(f"state database {path}: {detail}", reason=detail)


def unwritable(path: Path | str, detail: str) -> StateError:
    directory = Path(path).parent
    why = _why_unwritable(directory)
    return StateError(
        f"cannot open or write the state database {path} ({detail}{why}): syncd's user needs "
        f"write access to {directory} and the files in it (the database, its -wal and -shm "
        "files and the .lock beside them); under systemd keep [state] database inside the "
        "unit's StateDirectory (/var/lib/syncd)",
        reason=detail,
    )


def _why_unwritable(directory: Path) -> str:
    """What the system says when a file is created in ``directory`` (SQLite does not say)."""
    try:
        with tempfile.TemporaryFile(dir=directory):
            return ""
    except OSError as exc:
        return f"; creating a file in {directory}: {exc.strerror}"


def path_of(db: sqlite3.Connection) -> str:
    """The file of a connection's main database, for messages."""
    try:
        row = db.execute("PRAGMA database_list").fetchone()
    except sqlite3.Error:
        return "(the state database)"
    return str(row[2]) if row and row[2] else "(the state database)"


def _guard(method: Callable[..., R]) -> Callable[..., R]:
    @functools.wraps(method)
    def guarded_method(self: Any, *args: Any, **kwargs: Any) -> R:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.Error as exc:
            raise state_error(exc, path_of(self._db)) from exc

    return guarded_method


def guarded(cls: C) -> C:
    """Wrap a repository's public methods: a sqlite3 error becomes a StateError.

    The class keeps its connection as ``self._db``. Each method materialises what it returns
    (no cursor escapes), so every error is raised inside a wrapped call.
    """
    for name, member in list(vars(cls).items()):
        if not name.startswith("_") and callable(member):
            setattr(cls, name, _guard(member))
    return cls
