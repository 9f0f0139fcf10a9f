"""Small helpers the SQLite repositories share: chunked IN lists, timestamps, the meta table."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

# SQLite's default limit of bound parameters per statement is 999.
IN_CHUNK = 900


def in_chunks(db: sqlite3.Connection, sql: str, ids: Iterable[str]) -> list[Any]:
    """``sql`` has one ``{ids}`` placeholder for an IN list; run it over chunks of ids."""
    ids = list(ids)
    rows: list[Any] = []
    for start in range(0, len(ids), IN_CHUNK):
        chunk = ids[start : start + IN_CHUNK]
        marks = ",".join("?" * len(chunk))
        rows += db.execute(sql.format(ids=marks), chunk).fetchall()
    return rows


def utcnow() -> datetime:
    return datetime.now(UTC)


def sql_time(moment: datetime) -> str:
    # The text form SQLAlchemy uses for DateTime on SQLite (UTC, no offset), as the schema's
    # sqlmodel classes read it.
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def sql_now() -> str:
    return sql_time(utcnow())


def parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def compact(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"))


def get_meta(db: sqlite3.Connection, key: str) -> str | None:
    row = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return str(row[0]) if row else None


def set_meta(db: sqlite3.Connection, key: str, value: str | None) -> None:
    """Set or (None) delete one meta value, in its own transaction."""
    with db:
        put_meta(db, key, value)


def put_meta(db: sqlite3.Connection, key: str, value: str | None) -> None:
    """Set or delete one meta value inside the caller's transaction."""
    if value is None:
        db.execute("DELETE FROM meta WHERE key = ?", (key,))
    else:
        db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))
