"""Backing up and restoring the state database (`syncd state backup|restore`).

A backup is SQLite's online backup of the live database, in one step, so it is one moment's
state whatever a running cycle writes (a WAL reader's view). It is checked with SQLite's
integrity check, made one self-contained file (rollback journal, no -wal), written under a
temporary name and linked into place. A restore checks the backup the same way, and its
schema version, under the cycle's lock; it keeps the replaced database aside and renames the
new one into place (docs/ARCHITECTURE.md, "The state database").
"""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from syncd.adapters.sqlite.faults import SQLITE_CORRUPT, SQLITE_NOTADB, damaged, state_error
from syncd.adapters.sqlite.inspect import check_file, inspect_schema, integrity_problems
from syncd.adapters.sqlite.store import Store, cycle_lock
from syncd.errors import ConfigError, StateError

SIDE_FILES = ("-wal", "-shm", "-journal")
Refusal = Callable[[str], StateError]


@dataclass(frozen=True)
class Copied:
    """What a backup or a restore wrote."""

    path: Path
    version: int
    users_linked: int
    groups_linked: int
    replaced: Path | None = None  # restore: where the database it replaced was kept


def backup(database: Path, target: Path, *, force: bool = False) -> Copied:
    """Copy the state database to ``target``; an existing ``target`` only with ``force``."""
    if not database.is_file():
        raise StateError(f"there is no state database at {database} to back up")
    if target.exists() and target.resolve() == database.resolve():
        raise ConfigError(f"{target} is the state database itself: name another file")
    if target.exists() and not force:
        raise _exists(target)
    Store(str(database)).close()  # refuses a damaged or newer database, as a cycle would
    with _temporary(target) as temporary:
        _copy(
            _open(database, read_only=False),  # the last to close it removes its -wal
            temporary,
            lambda exc: StateError(f"cannot write the backup {target}: {exc}"),
        )

        def refuse(what: str) -> StateError:
            return damaged(database, f"{what} (in a copy of it; nothing was written to {target})")

        copied = _verify(temporary, refuse)
        _install(temporary, target, force=force)
    return Copied(target, copied.version, copied.users_linked, copied.groups_linked)


def restore(database: Path, source: Path, *, now: datetime | None = None) -> Copied:
    """Replace the state database with the backup ``source``; the replaced file is kept."""
    if not source.is_file():
        raise ConfigError(f"there is no backup at {source}")

    def refuse(what: str) -> StateError:
        return StateError(
            f"{source} cannot be restored: {what}; the state database was left as it is",
            reason=what,
        )

    database.parent.mkdir(parents=True, exist_ok=True)
    with cycle_lock(database), _temporary(database) as temporary:
        check_file(source)
        _copy(_open(source, read_only=True), temporary, lambda exc: state_error(exc, database))
        copied = _verify(temporary, refuse)
        with contextlib.closing(sqlite3.connect(temporary)) as db, db:
            # The backup's ledger may be older than Learnster: the next cycle plans over
            # everything once, instead of only what a delta touches.
            db.execute("DELETE FROM meta WHERE key = 'converged'")
        replaced = _set_aside(database, now or datetime.now(UTC))
        os.replace(temporary, database)
        _sync_directory(database.parent)
        Store(str(database)).close()  # migrates an older schema now, under the lock
    return Copied(database, copied.version, copied.users_linked, copied.groups_linked, replaced)


def _open(path: Path, *, read_only: bool) -> tuple[Path, sqlite3.Connection]:
    """A connection that never creates the file; read-only if asked and SQLite can."""
    try:
        if read_only:
            db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            try:
                db.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
                return path, db
            except sqlite3.OperationalError:  # a WAL file whose -shm a reader cannot make
                db.close()
        return path, sqlite3.connect(f"file:{path}?mode=rw", uri=True)
    except sqlite3.Error as exc:
        raise state_error(exc, path) from exc


def _copy(
    opened: tuple[Path, sqlite3.Connection],
    target: Path,
    cannot_write: Callable[[sqlite3.Error], StateError],
) -> None:
    """SQLite's backup of an opened source into the (new, empty) file ``target``, in one step."""
    source, src = opened
    try:
        dst = sqlite3.connect(target)
        try:
            src.backup(dst)
        finally:
            dst.close()
    except sqlite3.Error as exc:
        if exc.sqlite_errorcode & 0xFF in (SQLITE_CORRUPT, SQLITE_NOTADB):
            raise state_error(exc, source) from exc
        raise cannot_write(exc) from exc
    finally:
        src.close()


def _verify(path: Path, refuse: Refusal) -> Copied:
    """The copy is an intact syncd state database this syncd knows, in one file."""
    try:
        with contextlib.closing(sqlite3.connect(path)) as db:
            db.execute("PRAGMA journal_mode=DELETE").fetchall()  # no -wal to carry along
            problems = integrity_problems(db, limit=5)
            if problems:
                raise refuse("SQLite's integrity check found: " + "; ".join(problems))
            try:
                schema = inspect_schema(db, path)
            except StateError as exc:
                raise refuse(exc.reason) from None
            if schema.version is None:
                raise refuse("it is no syncd state database (it has no schema version)")
            users = db.execute("SELECT COUNT(*) FROM ledger_user").fetchone()[0]
            groups = db.execute("SELECT COUNT(*) FROM ledger_group").fetchone()[0]
    except sqlite3.Error as exc:
        raise refuse(f"{exc} ({exc.sqlite_errorname})") from exc
    _sync_file(path)
    return Copied(path, schema.version, int(users), int(groups))


def _set_aside(database: Path, now: datetime) -> Path | None:
    """Rename the current database (and its -wal) to ``<db>.replaced-<time>``."""
    if not database.exists():
        for suffix in SIDE_FILES:  # a -wal left without its database would be replayed
            Path(f"{database}{suffix}").unlink(missing_ok=True)
        return None
    stamp = f"{now:%Y%m%dT%H%M%SZ}"
    kept = database.with_name(f"{database.name}.replaced-{stamp}")
    n = 1
    while kept.exists():
        n += 1
        kept = database.with_name(f"{database.name}.replaced-{stamp}-{n}")
    os.rename(database, kept)
    for suffix in SIDE_FILES:  # a -wal left beside the new file would be replayed into it
        side = Path(f"{database}{suffix}")
        if side.exists():
            if suffix == "-shm":
                side.unlink()  # an index of the -wal, rebuilt when the kept file is opened
            else:
                os.rename(side, f"{kept}{suffix}")
    return kept


def _exists(target: Path) -> ConfigError:
    return ConfigError(f"{target} exists: name another file, or give --force to replace it")


def _install(temporary: Path, target: Path, *, force: bool) -> None:
    if force:
        os.replace(temporary, target)
    else:
        try:
            os.link(temporary, target)  # fails if target appeared meanwhile: never overwrite
        except FileExistsError:
            raise _exists(target) from None
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EXDEV):
                raise
            if target.exists():  # a file system without hard links
                raise _exists(target) from None
            os.replace(temporary, target)
    _sync_directory(target.parent)


@contextlib.contextmanager
def _temporary(beside: Path) -> Iterator[Path]:
    """A new empty file (mode 0600: it holds personal data) beside ``beside``, removed unless
    renamed away."""
    path = beside.with_name(f".{beside.name}.tmp-{os.getpid()}")
    leftovers = (path, *(Path(f"{path}{s}") for s in SIDE_FILES))
    try:
        for leftover in leftovers:
            leftover.unlink(missing_ok=True)
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        yield path
    except OSError as exc:
        raise StateError(f"cannot write {beside}: {exc.strerror}") from None
    finally:
        for leftover in leftovers:
            with contextlib.suppress(OSError):
                leftover.unlink(missing_ok=True)


def _sync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sync_directory(path: Path) -> None:
    _sync_file(path)  # a directory's entries are made durable the same way
