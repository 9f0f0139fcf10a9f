"""The run log in SQLite: cycles, the provisioning log, and the guard and health they leave."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from syncd.adapters.policy import LOG_KEEP_DAYS, guard_state
from syncd.adapters.sqlite.faults import guarded
from syncd.adapters.sqlite.sql import get_meta, parse_time, set_meta, sql_now, sql_time, utcnow
from syncd.core.limiter import Learned
from syncd.ports import LogEntry, LogFilter, LogLine, Run

GUARD = "guard"
HEALTH = "health"
LEARNSTER_LIMIT = "learnster_limit"
LOG_COLUMNS = "id, run_id, at, object_id, label, operation, outcome, detail, changes"


def _condition(
    object_key: str, where: LogFilter | None, after_id: int | None
) -> tuple[str, list[Any]]:
    """The WHERE clause (and its parameters) of the log lines asked for."""
    clauses, parameters = ["1"], list[Any]()
    if object_key:
        clauses.append("(object_id = ? OR label = ?)")
        parameters += [object_key, object_key]
    if where is not None and where.objects:
        marks = ",".join("?" * len(where.objects))
        clauses.append(f"(object_id IN ({marks}) OR label IN ({marks}))")
        parameters += [*where.objects, *where.objects]
    if where is not None and where.since is not None:
        clauses.append("at >= ?")  # the text of sql_time sorts as the moments do
        since = where.since if where.since.tzinfo else where.since.replace(tzinfo=UTC)
        parameters.append(sql_time(since))
    if after_id is not None:
        clauses.append("id > ?")
        parameters.append(after_id)
    return " AND ".join(clauses), parameters


@guarded
class SqliteRunLog:
    """RunLog over the ``run`` and ``provisioning_log`` tables (and two meta values)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def start(self, mode: str, dry_run: bool, keep_days: float = LOG_KEEP_DAYS) -> int:
        """A new run; the provisioning log of runs begun more than ``keep_days`` ago goes."""
        cutoff = datetime.fromtimestamp(utcnow().timestamp() - keep_days * 86400, UTC)
        with self._db:
            # By run (run_id is indexed): a full scan of an initial cycle's 100,000 log rows
            # would cost every cycle.
            self._db.execute(
                "DELETE FROM provisioning_log WHERE run_id IN "
                "(SELECT id FROM run WHERE started_at < ?)",
                (sql_time(cutoff),),
            )
            cursor = self._db.execute(
                "INSERT INTO run (started_at, mode, dry_run, counts, message) "
                "VALUES (?, ?, ?, '{}', '')",
                (sql_now(), mode, dry_run),
            )
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def finish(
        self, run_id: int, counts: Mapping[str, Mapping[str, int]], exit_code: int, message: str
    ) -> None:
        with self._db:
            self._db.execute(
                "UPDATE run SET finished_at = ?, counts = ?, exit_code = ?, message = ? "
                "WHERE id = ?",
                (sql_now(), json.dumps(counts, sort_keys=True), exit_code, message, run_id),
            )

    def recent(self, limit: int = 10) -> list[Run]:
        rows = self._db.execute(
            "SELECT id, started_at, finished_at, mode, dry_run, counts, exit_code, message "
            "FROM run ORDER BY id DESC LIMIT ?",
            (limit,),
        )
        return [
            Run(
                id=row[0],
                started_at=datetime.fromisoformat(row[1]),
                finished_at=parse_time(row[2]),
                mode=row[3],
                dry_run=bool(row[4]),
                counts=row[5],
                exit_code=row[6],
                message=row[7],
            )
            for row in rows
        ]

    def append(self, run_id: int, entries: Iterable[LogLine]) -> None:
        """The provisioning log lines of operations done in run ``run_id`` (one transaction)."""
        now = sql_now()
        with self._db:
            self._db.executemany(
                "INSERT INTO provisioning_log (run_id, at, object_id, label, operation, outcome, "
                "detail, changes) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                ((run_id, now, *entry) for entry in entries),  # streamed: no list of rows
            )

    def entries(
        self, limit: int = 100, object_key: str = "", where: LogFilter | None = None
    ) -> list[LogEntry]:
        """The latest log lines, of one object (its id or label) when ``object_key`` is given."""
        condition, parameters = _condition(object_key, where, after_id=None)
        return self._log_lines(f"{condition} ORDER BY id DESC LIMIT ?", [*parameters, limit])

    def entries_after(
        self, after_id: int, limit: int = 1000, where: LogFilter | None = None
    ) -> list[LogEntry]:
        """A page of the log in the order it was written: by id, the primary key (no sort)."""
        condition, parameters = _condition("", where, after_id=after_id)
        return self._log_lines(f"{condition} ORDER BY id LIMIT ?", [*parameters, limit])

    def _log_lines(self, condition: str, parameters: list[Any]) -> list[LogEntry]:
        # _condition's clauses, every value bound
        select = f"SELECT {LOG_COLUMNS} FROM provisioning_log WHERE {condition}"  # noqa: S608
        rows = self._db.execute(select, parameters)
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
                changes=row[8],
            )
            for row in rows
        ]

    def guard(self) -> dict[str, Any] | None:
        raw = get_meta(self._db, GUARD)
        return json.loads(raw) if raw else None

    def set_guard(self, held: int, message: str, now: datetime) -> None:
        """Remember whether the deletion guard holds removals (for status and notifications)."""
        state = guard_state(self.guard(), held, message, now)
        set_meta(self._db, GUARD, json.dumps(state) if state else None)

    def learnster_limit(self) -> Learned | None:
        raw = get_meta(self._db, LEARNSTER_LIMIT)
        try:
            return Learned.from_json(json.loads(raw)) if raw else None
        except ValueError:  # not JSON: learned again
            return None

    def set_learnster_limit(self, learned: Learned) -> None:
        set_meta(self._db, LEARNSTER_LIMIT, json.dumps(learned.as_json()))

    def health(self) -> dict[str, Any] | None:
        raw = get_meta(self._db, HEALTH)
        return json.loads(raw) if raw else None

    def set_health(self, state: Mapping[str, Any]) -> None:
        set_meta(self._db, HEALTH, json.dumps(dict(state)))
