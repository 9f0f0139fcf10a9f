"""Store: syncd's state in one SQLite file, as the three repositories a cycle uses.

The tables are defined with sqlmodel in ``syncd.adapters.sqlite.schema``; the repositories read
and write them with plain sqlite3, so a cycle does not pay for importing SQLAlchemy.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from syncd.adapters.sqlite.faults import guarded, state_error, unwritable
from syncd.adapters.sqlite.inspect import (
    SCHEMA_VERSION,
    TABLES,
    check_file,
    inspect_schema,
    lock_path,
)
from syncd.adapters.sqlite.ledger import SqliteLedger
from syncd.adapters.sqlite.runs import SqliteRunLog
from syncd.adapters.sqlite.schema_sql import STATEMENTS
from syncd.adapters.sqlite.snapshot import SqliteSnapshot
from syncd.core.records import user_name_key
from syncd.errors import LockHeld, StateError

__all__ = ["SCHEMA_VERSION", "TABLES", "Store", "cycle_lock"]


def _connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, check_same_thread=False)  # the daemon runs cycles in a thread
    # WAL + NORMAL: each acknowledged operation is its own small durable transaction.
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("PRAGMA foreign_keys=ON")
    db.execute("PRAGMA busy_timeout=5000")
    return db


@guarded
class Store:
    """All of syncd's persistent state in one SQLite file: snapshot, ledger and run log."""

    def __init__(self, database: str) -> None:
        self.path = Path(database)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StateError(
                f"state directory {self.path.parent} cannot be created: {exc.strerror}"
            ) from None
        existed = check_file(self.path)
        try:
            self._db = self._raw = _connect(self.path)
        except sqlite3.Error as exc:
            raise state_error(exc, self.path) from exc
        try:
            self._prepare_schema(existed)
            self.snapshot = SqliteSnapshot(self._raw)
            self.ledger = SqliteLedger(self._raw)
            self.runs = SqliteRunLog(self._raw)
        except BaseException as exc:
            self._raw.close()
            if isinstance(exc, sqlite3.Error):
                raise state_error(exc, self.path) from exc
            raise

    def _prepare_schema(self, existed: bool) -> None:
        """Refuse damage or a newer schema; create what a new or older database lacks."""
        db = self._raw
        schema = inspect_schema(db, self.path, existed=existed)
        missing = TABLES - schema.tables  # a new database, or one older than this syncd
        if missing:
            with db:
                for table, statements in STATEMENTS.items():  # sqlmodel's, compiled (schema.py)
                    if table in missing:
                        for statement in statements:
                            db.execute(statement)
        stored, version = schema.version, schema.version or SCHEMA_VERSION
        if stored is None:
            with db:
                db.execute(
                    "INSERT INTO meta (key, value) VALUES ('schema_version', ?)",
                    (str(SCHEMA_VERSION),),
                )
        self._migrate(version)
        with db:
            # Indexes of older databases that no lookup uses any more, and that only slow
            # every snapshot write.
            db.execute("DROP INDEX IF EXISTS ix_snapshot_user_upn")
            db.execute("DROP INDEX IF EXISTS ix_snapshot_user_upn_lower")
            # The reports of a hire or a leaver (reports_of): a scan of 100,000 records took
            # ~95 ms of every delta cycle without it.
            db.execute(
                "CREATE INDEX IF NOT EXISTS ix_snapshot_user_manager "
                "ON snapshot_user (json_extract(data, '$.managerId'))"
            )

    def _migrate(self, version: int) -> None:
        """Bring an older state database up to SCHEMA_VERSION, one step per transaction."""
        db = self._raw
        while version < SCHEMA_VERSION:
            with db:
                MIGRATIONS[version](db)
                version += 1
                db.execute(
                    "UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(version),)
                )

    def close(self) -> None:
        try:
            self.snapshot.settle()
        finally:
            self._raw.close()

    def counts(self) -> dict[str, int]:
        """How many objects are linked, in the snapshot, and in retry (for status and metrics)."""
        ledger = self.ledger.counts()
        return {
            "users_linked": ledger["users_linked"],
            "groups_linked": ledger["groups_linked"],
            **self.snapshot.counts(),
            "escrows": ledger["escrows"],
        }

    @contextmanager
    def lock(self) -> Iterator[None]:
        """One cycle at a time: an exclusive, non-blocking lock beside the database."""
        with cycle_lock(self.path):
            self.ledger.reload()  # what another cycle did before we held the lock
            yield


@contextmanager
def cycle_lock(database: Path) -> Iterator[None]:
    """The lock a cycle holds, beside the database (also taken by `syncd state restore`)."""
    path = lock_path(database)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise unwritable(database, f"the lock {path}: {exc.strerror}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip()
            raise LockHeld(
                f"another syncd cycle is running (lock {path}"
                + (f" held by pid {holder}" if holder else "")
                + "); try again when it has finished"
            ) from None
        try:
            os.ftruncate(fd, 0)
            os.write(fd, str(os.getpid()).encode())
        except OSError as exc:
            raise unwritable(database, f"the lock {path}: {exc.strerror}") from None
        yield
    finally:
        os.close(fd)


def _migrate_1_to_2(db: sqlite3.Connection) -> None:
    """Group memberships move from a JSON column to their own table (one row per member)."""
    rows = db.execute("SELECT graph_id, members FROM ledger_group").fetchall()
    db.executemany(
        "INSERT OR IGNORE INTO ledger_member (group_id, user_id) VALUES (?, ?)",
        [(gid, uid) for gid, members in rows for uid in json.loads(members or "[]")],
    )
    db.execute("ALTER TABLE ledger_group DROP COLUMN members")


def _migrate_2_to_3(db: sqlite3.Connection) -> None:
    """Snapshot users get ``upn_key``: user_name_key(upn), stored so SQL compares UPNs as
    Python does (SQLite's lower() folds ASCII only)."""
    columns = {row[1] for row in db.execute("PRAGMA table_info(snapshot_user)")}
    if "upn_key" not in columns:
        db.execute("ALTER TABLE snapshot_user ADD COLUMN upn_key VARCHAR NOT NULL DEFAULT ''")
    rows = db.execute("SELECT id, upn FROM snapshot_user").fetchall()
    db.executemany(
        "UPDATE snapshot_user SET upn_key = ? WHERE id = ?",
        [(user_name_key(upn), uid) for uid, upn in rows],
    )
    db.execute("CREATE INDEX IF NOT EXISTS ix_snapshot_user_upn_key ON snapshot_user (upn_key)")


def _migrate_3_to_4(db: sqlite3.Connection) -> None:
    """Provisioning-log lines get ``changes``: what each operation changed (older lines: "")."""
    columns = {row[1] for row in db.execute("PRAGMA table_info(provisioning_log)")}
    if "changes" not in columns:
        db.execute("ALTER TABLE provisioning_log ADD COLUMN changes VARCHAR NOT NULL DEFAULT ''")


# MIGRATIONS[n] turns schema n into n + 1; the tables added by n + 1 exist already.
MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {
    1: _migrate_1_to_2,
    2: _migrate_2_to_3,
    3: _migrate_3_to_4,
}
