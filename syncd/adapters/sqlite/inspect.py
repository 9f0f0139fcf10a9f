"""Opening the state database safely: damage is refused, never re-created empty.

A missing or empty file is a new database only where syncd never ran; a file cut short, a
table its schema version had, or a table that cannot be read is damage, and a StateError names
the file and what to do (docs/ARCHITECTURE.md, "The state database").
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from syncd.adapters.sqlite.faults import (
    SQLITE_CORRUPT,
    SQLITE_NOTADB,
    damaged,
    restore_advice,
    state_error,
)
from syncd.adapters.sqlite.sql import get_meta
from syncd.errors import StateError

SCHEMA_VERSION = 4

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

# The tables each schema version had that must not come back empty: the ledger (what Learnster
# holds), and the snapshot with the delta links that continue it (a delta folded over an empty
# snapshot would remove everyone it does not name). The other tables are history and retries,
# created again when missing: an older syncd lacked them, and losing them loses nothing
# Learnster holds (creates are matched first, escrowed objects are simply retried now).
KEPT = frozenset({"meta", "ledger_user", "ledger_group", "snapshot_user", "snapshot_group"})
REQUIRED: dict[int, frozenset[str]] = {
    1: KEPT | {"delta_link"},
    2: KEPT | {"delta_link", "ledger_member"},
    3: KEPT | {"delta_link", "ledger_member"},
    4: KEPT | {"delta_link", "ledger_member"},
}

HEADER = b"SQLite format 3\x00"


@dataclass(frozen=True)
class Schema:
    """What an opened state database holds: its version (None: new) and its tables."""

    version: int | None
    tables: frozenset[str]


def lock_path(database: Path) -> Path:
    return database.with_name(database.name + ".lock")


def check_file(path: Path) -> bool:
    """Before SQLite opens it: refuse a file cut short or emptied where syncd has run.

    True when the file exists with content (so it is no new database).
    """
    try:
        size = path.stat().st_size
        with path.open("rb") as file:
            header = file.read(100)
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise StateError(
            f"cannot read the state database {path}: {exc.strerror}; syncd's user needs read "
            f"and write access to it and to {path.parent}"
        ) from None
    if size == 0:
        if lock_path(path).exists():
            raise _lost(path, "it is empty (0 bytes)")
        return False
    if not header.startswith(HEADER):
        raise damaged(path, "it is not an SQLite database (its first bytes are not SQLite's)")
    wal = path.with_name(path.name + "-wal")
    if wal.exists() and wal.stat().st_size > 0:
        return True  # pages may still be in the WAL: SQLite itself decides
    expected = _size_in_header(header)
    if expected is not None and size < expected:
        raise damaged(path, f"it is truncated: {size} bytes, its header says {expected}")
    return True


def _size_in_header(header: bytes) -> int | None:
    """The size the header gives (pages x page size), if it is one SQLite trusts."""
    if len(header) < 100:
        return None
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(header[28:32], "big")
    change_counter, valid_for = header[24:28], header[92:96]
    if pages == 0 or change_counter != valid_for:
        return None
    return pages * page_size


def _lost(path: Path, what: str) -> StateError:
    return StateError(
        f"state database {path} has lost its state: {what}, but syncd has run here before "
        f"({lock_path(path).name} is beside it). Refusing to start again from nothing, which "
        f"would forget what Learnster holds: {restore_advice(path)}",
        reason=what,
    )


def inspect_schema(db: sqlite3.Connection, path: Path, *, existed: bool = True) -> Schema:
    """The schema of an open database, or StateError for damage or a newer syncd.

    ``existed``: the file was there with content before it was opened (check_file).
    """
    try:
        tables = frozenset(
            row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        )
        if not tables:
            if existed and lock_path(path).exists():
                raise _lost(path, "it holds no tables")
            return Schema(None, tables)
        if not tables & TABLES:
            raise StateError(
                f"{path} is no syncd state database (its tables: {', '.join(sorted(tables))}): "
                "check [state] database",
                reason="it is no syncd state database",
            )
        if "meta" not in tables:
            raise damaged(path, "its meta table is missing")
        stored = get_meta(db, "schema_version")
        if stored is None:
            if "ledger_user" in tables and _has_rows(db, "ledger_user"):
                raise damaged(path, "it holds links to Learnster but no schema version")
            return Schema(None, tables)
        if not stored.isdigit():
            raise damaged(path, f"its schema version {stored!r} is not a number")
        version = int(stored)
        if version not in REQUIRED and version < SCHEMA_VERSION:
            raise damaged(path, f"its schema version {version} is none syncd ever had")
        if version > SCHEMA_VERSION:
            newer = f"schema version {version}, newer than this syncd knows ({SCHEMA_VERSION})"
            raise StateError(
                f"state database {path} has {newer}: upgrade syncd, or restore a backup this "
                "syncd made with 'syncd state restore BACKUP'",
                reason=newer,
            )
        missing = sorted(REQUIRED[version] - tables)
        if missing:
            names = ", ".join(missing)
            what = (
                f"a table {names}, but it is missing: refusing to create it"
                if len(missing) == 1
                else f"the tables {names}, but they are missing: refusing to create them"
            )
            raise damaged(path, f"its schema version {version} has {what} again empty")
        for table in sorted(tables & TABLES):
            # Whole rows, so the table's own pages are read, not a smaller index: a zeroed
            # root page fails here, before the cycle writes anything.
            db.execute(f"SELECT * FROM {table} LIMIT 1").fetchall()  # noqa: S608 - known names
    except sqlite3.Error as exc:
        raise state_error(exc, path) from exc
    return Schema(version, tables)


def _has_rows(db: sqlite3.Connection, table: str) -> bool:
    return db.execute(f"SELECT 1 FROM {table} LIMIT 1").fetchone() is not None  # noqa: S608 - known names


def integrity_problems(db: sqlite3.Connection, limit: int = 10) -> list[str]:
    """SQLite's integrity check: the first ``limit`` problems, [] when there is none."""
    try:
        rows = [str(row[0]) for row in db.execute(f"PRAGMA integrity_check({int(limit)})")]
    except sqlite3.DatabaseError as exc:
        # Some damage stops the check itself (a zeroed page under an index, seen with 3.40).
        if exc.sqlite_errorcode & 0xFF not in (SQLITE_CORRUPT, SQLITE_NOTADB):
            raise
        return [f"{exc} ({exc.sqlite_errorname})"]
    if rows == ["ok"]:
        return []
    lines = [line for row in rows for line in row.splitlines()]
    return [line for line in lines if not line.startswith("*** in database")][:limit]


@dataclass(frozen=True)
class Examined:
    """What `syncd check` found in the state database."""

    version: int | None
    problems: list[str]  # SQLite's integrity check; [] when it found nothing
    users_linked: int
    groups_linked: int


def examine(path: Path, limit: int = 5) -> Examined | None:
    """SQLite's integrity check and syncd's own checks, changing nothing; None: no file yet.

    integrity_check, not quick_check: it also compares every index with its table (a lookup
    through a damaged index finds no link where there is one). ~0.5 s at 100,000 users.
    """
    existed = check_file(path)
    if not path.exists():
        return None
    try:
        db = sqlite3.connect(f"file:{path}?mode=rw", uri=True)  # never creates the file
    except sqlite3.Error as exc:
        raise state_error(exc, path) from exc
    try:
        problems = integrity_problems(db, limit)
        if problems:
            return Examined(None, problems, 0, 0)
        schema = inspect_schema(db, path, existed=existed)
        counts = [
            int(db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])  # noqa: S608
            if table in schema.tables
            else 0
            for table in ("ledger_user", "ledger_group")
        ]
        return Examined(schema.version, [], *counts)
    except sqlite3.Error as exc:
        raise state_error(exc, path) from exc
    finally:
        db.close()
