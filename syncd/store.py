"""SQLite state: the directory snapshot, the ledger, escrows, delta links, run history.

The tables are defined with sqlmodel in ``syncd.schema``; this module reads and writes them with
plain sqlite3, so a cycle does not pay for importing SQLAlchemy.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from syncd.errors import ConfigError, LockHeld
from syncd.model import DirectoryGroup, DirectoryUser
from syncd.planner import LedgerGroup, LedgerUser

SCHEMA_VERSION = 2
LOG_KEEP_DAYS = 30
ESCROW_BASE_SECONDS = 300.0  # first retry after 5 minutes, doubling per failure ...
ESCROW_MAX_SECONDS = 86400.0  # ... up to once a day


# The tables syncd.schema defines (a test keeps the two in step).
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


def utcnow() -> datetime:
    return datetime.now(UTC)


def _parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


class _Record:
    """A row of the run history, escrow or log, for ``status --json``."""

    def to_json(self) -> dict[str, Any]:
        row: dict[str, Any] = asdict(self)  # type: ignore[call-overload]  # subclasses are dataclasses
        return row


@dataclass(frozen=True)
class Escrow(_Record):
    """A failed object waiting for its next retry."""

    object_id: str
    object_type: str
    label: str
    operation: str
    error: str
    attempts: int
    first_failed_at: datetime
    next_retry_at: datetime


@dataclass(frozen=True)
class Run(_Record):
    """One cycle in the run history."""

    id: int
    started_at: datetime
    finished_at: datetime | None
    mode: str
    dry_run: bool
    counts: str
    exit_code: int | None
    message: str


@dataclass(frozen=True)
class LogEntry(_Record):
    """One line of the provisioning log."""

    id: int
    run_id: int
    at: datetime
    object_id: str
    label: str
    operation: str
    outcome: str
    detail: str


WAL_AUTOCHECKPOINT_PAGES = 1000  # SQLite's default


def _connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, check_same_thread=False)  # the daemon runs cycles in a thread
    # WAL + NORMAL: each acknowledged operation is its own small durable transaction.
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("PRAGMA foreign_keys=ON")
    db.execute("PRAGMA busy_timeout=5000")
    return db


class Store:
    """All of syncd's persistent state in one SQLite file."""

    def __init__(self, database: str) -> None:
        self.path = Path(database)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(
                f"state directory {self.path.parent} cannot be created: {exc.strerror}"
            ) from None
        self._raw = _connect(self.path)
        tables = {row[0] for row in self._raw.execute("SELECT name FROM sqlite_master")}
        if TABLES - tables:  # new, or older than this syncd: only then is sqlmodel needed
            from syncd.schema import create_tables

            create_tables(self.path)
        row = self._raw.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        version = int(row[0]) if row is not None else SCHEMA_VERSION
        if version > SCHEMA_VERSION:
            self._raw.close()
            raise ConfigError(
                f"state database {self.path} has schema version {version}, newer than this "
                f"syncd knows ({SCHEMA_VERSION}): upgrade syncd, or restore a backup"
            )
        if row is None:
            with self._raw:
                self._raw.execute(
                    "INSERT INTO meta (key, value) VALUES ('schema_version', ?)",
                    (str(SCHEMA_VERSION),),
                )
        if version < SCHEMA_VERSION:
            self._migrate(version)
        with self._raw:
            # UPN clashes are looked up case-insensitively (ids_by_upn): without this index,
            # each lookup of a delta's UPNs scans the whole snapshot. The case-sensitive one
            # of older databases is never used and only slows every snapshot write.
            self._raw.execute(
                "CREATE INDEX IF NOT EXISTS ix_snapshot_user_upn_lower ON snapshot_user (lower(upn))"
            )
            self._raw.execute("DROP INDEX IF EXISTS ix_snapshot_user_upn")
            # The reports of a hire or a leaver (reports_of): a scan of 100,000 records took
            # ~95 ms of every delta cycle with one.
            self._raw.execute(
                "CREATE INDEX IF NOT EXISTS ix_snapshot_user_manager "
                "ON snapshot_user (json_extract(data, '$.managerId'))"
            )
        self._escrowed = {row[0] for row in self._raw.execute("SELECT object_id FROM escrow")}

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
        self._raw.close()

    # -- lock -------------------------------------------------------------------------------

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
            yield
        finally:
            os.close(fd)

    # -- meta -------------------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        row = self._raw.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return str(row[0]) if row else None

    def set_meta(self, key: str, value: str | None) -> None:
        with self._raw:
            if value is None:
                self._raw.execute("DELETE FROM meta WHERE key = ?", (key,))
            else:
                self._raw.execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value)
                )

    def set_guard(self, held: int, message: str, now: datetime) -> None:
        """Remember whether the deletion guard holds removals (for status and notifications)."""
        if held:
            previous = self.guard()
            since = previous["since"] if previous else now.isoformat()
            state = {"held": held, "message": message, "since": since}
            self.set_meta("guard", json.dumps(state))
        else:
            self.set_meta("guard", None)

    def guard(self) -> dict[str, Any] | None:
        raw = self.get_meta("guard")
        return json.loads(raw) if raw else None

    # -- snapshot ---------------------------------------------------------------------------

    def load_snapshot(
        self,
    ) -> tuple[
        dict[str, tuple[DirectoryUser, str | None]], dict[str, tuple[DirectoryGroup, str | None]]
    ]:
        users = {
            uid: (DirectoryUser.from_json(json.loads(data)), removed)
            for uid, data, removed in self._raw.execute(
                "SELECT id, data, removed FROM snapshot_user"
            )
        }
        groups = {
            gid: (DirectoryGroup.from_json(json.loads(data)), removed)
            for gid, data, removed in self._raw.execute(
                "SELECT id, data, removed FROM snapshot_group"
            )
        }
        return users, groups

    def save_snapshot(
        self,
        users: Mapping[str, tuple[DirectoryUser, str | None]],
        groups: Mapping[str, tuple[DirectoryGroup, str | None]],
        delta_links: Mapping[str, str],
        *,
        full_read_at: datetime | None,
    ) -> None:
        """Replace the snapshot and store the delta links that produced it, in one transaction.

        Rows are streamed to SQLite (no list of 100,000 row dicts in memory at once).
        """
        with self._raw:
            self._raw.execute("DELETE FROM snapshot_user")
            self._raw.execute("DELETE FROM snapshot_group")
            self._raw.executemany(
                "INSERT INTO snapshot_user (id, upn, data, removed) VALUES (?, ?, ?, ?)",
                _user_rows(users),
            )
            self._raw.executemany(
                "INSERT INTO snapshot_group (id, data, removed) VALUES (?, ?, ?)",
                _group_rows(groups),
            )
            self._put_delta_links(delta_links)
            if full_read_at is not None:
                self._raw.execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES ('last_full_read', ?)",
                    (full_read_at.isoformat(),),
                )

    # -- partial snapshot access (incremental planning) -------------------------------------

    def _in_chunks(self, sql: str, ids: Iterable[str]) -> list[Any]:
        """``sql`` has one ``{ids}`` placeholder for an IN list; run it over chunks of ids."""
        ids = list(ids)
        rows: list[Any] = []
        for start in range(0, len(ids), 900):  # SQLite's bound-parameter limit
            chunk = ids[start : start + 900]
            marks = ",".join("?" * len(chunk))
            rows += self._raw.execute(sql.format(ids=marks), chunk).fetchall()
        return rows

    def load_users(self, ids: Iterable[str]) -> dict[str, tuple[DirectoryUser, str | None]]:
        rows = self._in_chunks(
            "SELECT id, data, removed FROM snapshot_user WHERE id IN ({ids})", ids
        )
        return {uid: (DirectoryUser.from_json(json.loads(data)), rm) for uid, data, rm in rows}

    def load_groups(self, ids: Iterable[str]) -> dict[str, tuple[DirectoryGroup, str | None]]:
        rows = self._in_chunks(
            "SELECT id, data, removed FROM snapshot_group WHERE id IN ({ids})", ids
        )
        return {gid: (DirectoryGroup.from_json(json.loads(data)), rm) for gid, data, rm in rows}

    def reports_of(self, manager_ids: Iterable[str]) -> set[str]:
        rows = self._in_chunks(
            # the expression of ix_snapshot_user_manager, spelt the same or it is not used
            "SELECT id FROM snapshot_user WHERE json_extract(data, '$.managerId') IN ({ids})",
            manager_ids,
        )
        return {r[0] for r in rows}

    def ids_by_upn(self, upns: Iterable[str]) -> dict[str, set[str]]:
        """Lower-cased UPN -> the snapshot user ids that have it (present users only)."""
        rows = self._in_chunks(
            "SELECT lower(upn), id FROM snapshot_user WHERE removed IS NULL AND lower(upn) IN ({ids})",
            [u.lower() for u in upns],
        )
        found: dict[str, set[str]] = {}
        for upn, uid in rows:
            found.setdefault(upn, set()).add(uid)
        return found

    def ledger_users_for(self, ids: Iterable[str]) -> dict[str, LedgerUser]:
        rows = self._in_chunks(
            "SELECT graph_id, scim_id, attrs FROM ledger_user WHERE graph_id IN ({ids})", ids
        )
        return {gid: LedgerUser(sid, attrs_json=attrs) for gid, sid, attrs in rows}

    def ledger_groups_for(self, ids: Iterable[str]) -> dict[str, LedgerGroup]:
        ids = list(ids)
        members: dict[str, set[str]] = {}
        for gid, uid in self._in_chunks(
            "SELECT group_id, user_id FROM ledger_member WHERE group_id IN ({ids})", ids
        ):
            members.setdefault(gid, set()).add(uid)
        rows = self._in_chunks(
            "SELECT graph_id, scim_id, display_name FROM ledger_group WHERE graph_id IN ({ids})",
            ids,
        )
        return {
            gid: LedgerGroup(sid, name, frozenset(members.get(gid, ()))) for gid, sid, name in rows
        }

    def user_ids_among(self, ids: Iterable[str], *, present_only: bool) -> set[str]:
        """Which of ``ids`` are present (or at least not permanently deleted) in the snapshot."""
        sql = (
            "SELECT id FROM snapshot_user WHERE removed IS NULL AND id IN ({ids})"
            if present_only
            else "SELECT id FROM snapshot_user "
            "WHERE (removed IS NULL OR removed != 'deleted') AND id IN ({ids})"
        )
        return {r[0] for r in self._in_chunks(sql, ids)}

    def linked_among(self, ids: Iterable[str]) -> set[str]:
        rows = self._in_chunks("SELECT graph_id FROM ledger_user WHERE graph_id IN ({ids})", ids)
        return {r[0] for r in rows}

    def ledger_user_count(self) -> int:
        return int(self._raw.execute("SELECT COUNT(*) FROM ledger_user").fetchone()[0])

    def scim_id_of(self, graph_id: str) -> str | None:
        row = self._raw.execute(
            "SELECT scim_id FROM ledger_user WHERE graph_id = ?", (graph_id,)
        ).fetchone()
        return str(row[0]) if row else None

    def graph_id_of(self, scim_id: str) -> str | None:
        row = self._raw.execute(
            "SELECT graph_id FROM ledger_user WHERE scim_id = ?", (scim_id,)
        ).fetchone()
        return str(row[0]) if row else None

    def update_snapshot(
        self,
        users: Mapping[str, tuple[DirectoryUser, str | None]],
        groups: Mapping[str, tuple[DirectoryGroup, str | None]],
        delta_links: Mapping[str, str],
        *,
        checkpoint: bool = True,
    ) -> None:
        """Write only the given records (a delta cycle) and the delta links, in one transaction.

        Upserts, not INSERT OR REPLACE: a replace deletes and re-inserts the row and its index
        entries; for 1,000 changed users in a 100,000-user snapshot, 6 ms instead of 35-55 ms.
        ``checkpoint=False``: the WAL is not checkpointed until ``checkpoint()`` is called.
        """
        if not checkpoint:
            self._raw.execute("PRAGMA wal_autocheckpoint=0")
        with self._raw:
            self._raw.executemany(
                "INSERT INTO snapshot_user (id, upn, data, removed) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (id) DO UPDATE SET upn = excluded.upn, data = excluded.data, "
                "removed = excluded.removed",
                _user_rows(users),
            )
            self._raw.executemany(
                "INSERT INTO snapshot_group (id, data, removed) VALUES (?, ?, ?) "
                "ON CONFLICT (id) DO UPDATE SET data = excluded.data, removed = excluded.removed",
                _group_rows(groups),
            )
            self._put_delta_links(delta_links)

    def checkpoint(self) -> None:
        """Copy the WAL into the database now, and again whenever it reaches the usual size."""
        self._raw.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        self._raw.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT_PAGES}")

    def save_delta_links(self, links: Mapping[str, str]) -> None:
        with self._raw:
            self._put_delta_links(links)

    def _put_delta_links(self, links: Mapping[str, str]) -> None:
        """Store delta links inside the caller's transaction."""
        now = _sql_now()
        self._raw.executemany(
            "INSERT OR REPLACE INTO delta_link (resource, link, stored_at) VALUES (?, ?, ?)",
            [(resource, link, now) for resource, link in links.items()],
        )

    def delta_links(self) -> dict[str, str]:
        return dict(self._raw.execute("SELECT resource, link FROM delta_link"))

    def forget_delta_links(self) -> None:
        with self._raw:
            self._raw.execute("DELETE FROM delta_link")

    # -- ledger -----------------------------------------------------------------------------

    def ledger_users(self) -> dict[str, LedgerUser]:
        rows = self._raw.execute("SELECT graph_id, scim_id, attrs FROM ledger_user")
        return {gid: LedgerUser(sid, attrs_json=attrs) for gid, sid, attrs in rows}

    def ledger_scim_ids(self) -> dict[str, str]:
        """Graph id -> Learnster id of every linked user."""
        return dict(self._raw.execute("SELECT graph_id, scim_id FROM ledger_user"))

    def ledger_attrs(self, graph_id: str) -> dict[str, Any] | None:
        row = self._raw.execute(
            "SELECT attrs FROM ledger_user WHERE graph_id = ?", (graph_id,)
        ).fetchone()
        return json.loads(row[0]) if row else None

    def ledger_groups(self) -> dict[str, LedgerGroup]:
        members: dict[str, set[str]] = {}
        for gid, uid in self._raw.execute("SELECT group_id, user_id FROM ledger_member"):
            members.setdefault(gid, set()).add(uid)
        rows = self._raw.execute("SELECT graph_id, scim_id, display_name FROM ledger_group")
        return {
            gid: LedgerGroup(sid, name, frozenset(members.get(gid, ()))) for gid, sid, name in rows
        }

    # The ledger is written once per acknowledged operation, so these use one raw connection
    # and plain SQL: the ORM's per-call cost was most of a cycle's CPU at 100k users.

    def put_user(self, graph_id: str, entry: LedgerUser, *, adopted: bool = False) -> None:
        """Record one acknowledged user operation (its own transaction)."""
        attrs = entry.attrs_json
        with self._raw:
            self._raw.execute(
                "INSERT INTO ledger_user (graph_id, scim_id, attrs, adopted, updated_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT(graph_id) DO UPDATE SET "
                "scim_id = excluded.scim_id, attrs = excluded.attrs, updated_at = excluded.updated_at",
                (graph_id, entry.scim_id, attrs, adopted, _sql_now()),
            )
            self._raw.execute("DELETE FROM create_intent WHERE graph_id = ?", (graph_id,))
            self._clear_escrow(graph_id)

    def drop_user(self, graph_id: str) -> None:
        """Forget a user's link (deleted in Learnster) and its memberships."""
        with self._raw:
            self._raw.execute("DELETE FROM ledger_user WHERE graph_id = ?", (graph_id,))
            self._raw.execute("DELETE FROM ledger_member WHERE user_id = ?", (graph_id,))
            self._clear_escrow(graph_id)

    def put_group(self, graph_id: str, scim_id: str, display_name: str) -> None:
        """Record a created, adopted or renamed group."""
        with self._raw:
            self._raw.execute(
                "INSERT INTO ledger_group (graph_id, scim_id, display_name, updated_at) "
                "VALUES (?, ?, ?, ?) ON CONFLICT(graph_id) DO UPDATE SET "
                "scim_id = excluded.scim_id, display_name = excluded.display_name, "
                "updated_at = excluded.updated_at",
                (graph_id, scim_id, display_name, _sql_now()),
            )
            self._clear_escrow(graph_id)

    def add_members(self, graph_id: str, user_ids: Iterable[str]) -> None:
        with self._raw:
            self._raw.executemany(
                "INSERT OR IGNORE INTO ledger_member (group_id, user_id) VALUES (?, ?)",
                [(graph_id, uid) for uid in user_ids],
            )
            self._clear_escrow(graph_id)

    def remove_members(self, graph_id: str, user_ids: Iterable[str]) -> None:
        with self._raw:
            self._raw.executemany(
                "DELETE FROM ledger_member WHERE group_id = ? AND user_id = ?",
                [(graph_id, uid) for uid in user_ids],
            )
            self._clear_escrow(graph_id)

    def drop_group(self, graph_id: str) -> None:
        with self._raw:
            self._raw.execute("DELETE FROM ledger_group WHERE graph_id = ?", (graph_id,))
            self._raw.execute("DELETE FROM ledger_member WHERE group_id = ?", (graph_id,))
            self._clear_escrow(graph_id)

    def forget_links(self) -> None:
        """Forget every Learnster id: the next cycle re-matches users by userName."""
        with self._raw:
            for table in ("ledger_user", "ledger_group", "ledger_member"):
                self._raw.execute(f"DELETE FROM {table}")  # noqa: S608 - fixed names

    def _clear_escrow(self, object_id: str) -> None:
        if object_id in self._escrowed:
            self._raw.execute("DELETE FROM escrow WHERE object_id = ?", (object_id,))
            self._escrowed.discard(object_id)

    # -- escrow -----------------------------------------------------------------------------

    def escrow(
        self,
        object_id: str,
        object_type: str,
        label: str,
        operation: str,
        error: str,
        retry_after: float | None = None,
        now: datetime | None = None,
    ) -> None:
        """Keep a failed object pending, with its error and when to try again.

        The wait doubles with each failure (5 minutes to a day); a server's Retry-After that
        asks for longer wins.
        """
        now = now or utcnow()
        with self._raw:
            row = self._raw.execute(
                "SELECT attempts, first_failed_at FROM escrow WHERE object_id = ?", (object_id,)
            ).fetchone()
            attempts, first_failed = (row[0] + 1, row[1]) if row else (1, _sql_now())
            backoff = min(ESCROW_BASE_SECONDS * 2 ** (attempts - 1), ESCROW_MAX_SECONDS)
            delay = max(backoff, retry_after or 0.0)
            next_retry = datetime.fromtimestamp(now.timestamp() + delay, UTC)
            self._raw.execute(
                "INSERT OR REPLACE INTO escrow (object_id, object_type, label, operation, error, "
                "attempts, first_failed_at, next_retry_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    object_id,
                    object_type,
                    label,
                    operation,
                    error,
                    attempts,
                    first_failed,
                    _sql_time(next_retry),
                ),
            )
        self._escrowed.add(object_id)

    def deferred(self, now: datetime) -> set[str]:
        """Objects in escrow whose next retry is still to come."""
        rows = self._raw.execute(
            "SELECT object_id FROM escrow WHERE next_retry_at > ?",
            (_sql_time(now),),
        )
        return {row[0] for row in rows}

    def record_intent(self, graph_id: str, user_name: str) -> None:
        """Before a create: if we crash after Learnster acts, the next cycle knows to match."""
        with self._raw:
            self._raw.execute(
                "INSERT OR REPLACE INTO create_intent (graph_id, user_name, at) VALUES (?, ?, ?)",
                (graph_id, user_name, _sql_now()),
            )

    def intents(self) -> dict[str, str]:
        return dict(self._raw.execute("SELECT graph_id, user_name FROM create_intent"))

    def escrows(self) -> list[Escrow]:
        rows = self._raw.execute(
            "SELECT object_id, object_type, label, operation, error, attempts, first_failed_at, "
            "next_retry_at FROM escrow ORDER BY first_failed_at"
        )
        return [
            Escrow(
                object_id=row[0],
                object_type=row[1],
                label=row[2],
                operation=row[3],
                error=row[4],
                attempts=row[5],
                first_failed_at=datetime.fromisoformat(row[6]),
                next_retry_at=datetime.fromisoformat(row[7]),
            )
            for row in rows
        ]

    def clear_escrows(self) -> None:
        with self._raw:
            self._raw.execute("DELETE FROM escrow")
        self._escrowed.clear()

    # -- runs -------------------------------------------------------------------------------

    def append_log(self, run_id: int, entries: Iterable[tuple[str, str, str, str, str]]) -> None:
        """(object id, label, operation, outcome, detail) rows for one run."""
        now = _sql_now()
        with self._raw:
            self._raw.executemany(
                "INSERT INTO provisioning_log (run_id, at, object_id, label, operation, outcome, "
                "detail) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(run_id, now, *entry) for entry in entries],
            )

    def log_entries(self, limit: int = 100, object_key: str = "") -> list[LogEntry]:
        rows = self._raw.execute(
            "SELECT id, run_id, at, object_id, label, operation, outcome, detail "
            "FROM provisioning_log WHERE ? = '' OR object_id = ? OR label = ? "
            "ORDER BY id DESC LIMIT ?",
            (object_key, object_key, object_key, limit),
        )
        return [
            LogEntry(
                id=row[0],
                run_id=row[1],
                at=datetime.fromisoformat(row[2]),
                object_id=row[3],
                label=row[4],
                operation=row[5],
                outcome=row[6],
                detail=row[7],
            )
            for row in rows
        ]

    def start_run(self, mode: str, dry_run: bool) -> int:
        cutoff = datetime.fromtimestamp(utcnow().timestamp() - LOG_KEEP_DAYS * 86400, UTC)
        with self._raw:
            # By run (run_id is indexed): a full scan of an initial cycle's 100,000 log rows
            # would cost every cycle.
            self._raw.execute(
                "DELETE FROM provisioning_log WHERE run_id IN "
                "(SELECT id FROM run WHERE started_at < ?)",
                (_sql_time(cutoff),),
            )
            cursor = self._raw.execute(
                "INSERT INTO run (started_at, mode, dry_run, counts, message) "
                "VALUES (?, ?, ?, '{}', '')",
                (_sql_now(), mode, dry_run),
            )
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def finish_run(
        self, run_id: int, counts: Mapping[str, Mapping[str, int]], exit_code: int, message: str
    ) -> None:
        with self._raw:
            self._raw.execute(
                "UPDATE run SET finished_at = ?, counts = ?, exit_code = ?, message = ? "
                "WHERE id = ?",
                (_sql_now(), json.dumps(counts, sort_keys=True), exit_code, message, run_id),
            )

    def runs(self, limit: int = 10) -> list[Run]:
        rows = self._raw.execute(
            "SELECT id, started_at, finished_at, mode, dry_run, counts, exit_code, message "
            "FROM run ORDER BY id DESC LIMIT ?",
            (limit,),
        )
        return [
            Run(
                id=row[0],
                started_at=datetime.fromisoformat(row[1]),
                finished_at=_parse_time(row[2]),
                mode=row[3],
                dry_run=bool(row[4]),
                counts=row[5],
                exit_code=row[6],
                message=row[7],
            )
            for row in rows
        ]

    def counts(self) -> dict[str, int]:
        result: dict[str, int] = {}
        for name, table in (
            ("users_linked", "ledger_user"),
            ("groups_linked", "ledger_group"),
            ("snapshot_users", "snapshot_user"),
            ("snapshot_groups", "snapshot_group"),
            ("escrows", "escrow"),
        ):
            row = self._raw.execute(f"SELECT COUNT(*) FROM {table}").fetchone()  # noqa: S608 - fixed names
            result[name] = int(row[0])
        return result


def _migrate_1_to_2(db: sqlite3.Connection) -> None:
    """Group memberships move from a JSON column to their own table (one row per member)."""
    rows = db.execute("SELECT graph_id, members FROM ledger_group").fetchall()
    db.executemany(
        "INSERT OR IGNORE INTO ledger_member (group_id, user_id) VALUES (?, ?)",
        [(gid, uid) for gid, members in rows for uid in json.loads(members or "[]")],
    )
    db.execute("ALTER TABLE ledger_group DROP COLUMN members")


# MIGRATIONS[n] turns schema n into n + 1; the tables added by n + 1 exist already.
MIGRATIONS = {1: _migrate_1_to_2}


def _user_rows(
    users: Mapping[str, tuple[DirectoryUser, str | None]],
) -> Iterator[tuple[str, str, str, str | None]]:
    """snapshot_user rows (id, upn, data, removed), generated: never all in memory at once."""
    for uid, (user, removed) in users.items():
        yield uid, user.user_principal_name, _compact(user.to_json()), removed


def _group_rows(
    groups: Mapping[str, tuple[DirectoryGroup, str | None]],
) -> Iterator[tuple[str, str, str | None]]:
    """snapshot_group rows (id, data, removed)."""
    for gid, (group, removed) in groups.items():
        yield gid, _compact(group.to_json()), removed


def _compact(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"))


def _sql_time(moment: datetime) -> str:
    # The text form SQLAlchemy uses for DateTime on SQLite (UTC, no offset), as the schema's
    # sqlmodel classes read it.
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def _sql_now() -> str:
    return _sql_time(utcnow())
