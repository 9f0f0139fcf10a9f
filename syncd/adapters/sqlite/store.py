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

from syncd.adapters.sqlite.ledger import SqliteLedger
from syncd.adapters.sqlite.runs import SqliteRunLog
from syncd.adapters.sqlite.snapshot import SqliteSnapshot
from syncd.adapters.sqlite.sql import get_meta
from syncd.core.records import user_name_key
from syncd.errors import ConfigError, LockHeld

SCHEMA_VERSION = 3

# The tables syncd.adapters.sqlite.schema defines (a test keeps the two in step).
TABLES = frozenset(
    {
        "snapshot_user",
        "snapshot_group",
        "ledger_user",
        "ledger_group",
        "ledger_member",
        "escrow",
        "delta_link",
        "run",
        "provisioning_log",
        "create_intent",
        "meta",
    }
)


def _connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, check_same_thread=False)  # the daemon runs cycles in a thread
    # WAL + NORMAL: each acknowledged operation is its own small durable transaction.
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("PRAGMA foreign_keys=ON")
    db.execute("PRAGMA busy_timeout=5000")
    return db


class Store:
    """All of syncd's persistent state in one SQLite file: snapshot, ledger and run log."""

    def __init__(self, database: str) -> None:
        self.path = Path(database)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(
                f"state directory {self.path.parent} cannot be created: {exc.strerror}"
            ) from None
        self._raw = _connect(self.path)
        self._prepare_schema()
        self.snapshot = SqliteSnapshot(self._raw)
        self.ledger = SqliteLedger(self._raw)
        self.runs = SqliteRunLog(self._raw)

    def _prepare_schema(self) -> None:
        db = self._raw
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
        if TABLES - tables:  # new, or older than this syncd: only then is sqlmodel needed
            from syncd.adapters.sqlite.schema import create_tables

            create_tables(self.path)
        stored = get_meta(db, "schema_version")
        version = int(stored) if stored is not None else SCHEMA_VERSION
        if version > SCHEMA_VERSION:
            db.close()
            raise ConfigError(
                f"state database {self.path} has schema version {version}, newer than this "
                f"syncd knows ({SCHEMA_VERSION}): upgrade syncd, or restore a backup"
            )
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
        self.snapshot.settle()
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
        lock_path = self.path.with_name(self.path.name + ".lock")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 64).decode(errors="replace").strip()
                raise LockHeld(
                    f"another syncd cycle is running (lock {lock_path}"
                    + (f" held by pid {holder}" if holder else "")
                    + "); try again when it has finished"
                ) from None
            os.ftruncate(fd, 0)
            os.write(fd, str(os.getpid()).encode())
            self.ledger.reload()  # what another cycle did before we held the lock
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


# MIGRATIONS[n] turns schema n into n + 1; the tables added by n + 1 exist already.
MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {
    1: _migrate_1_to_2,
    2: _migrate_2_to_3,
}
