"""The ledger repository in SQLite: links, what Learnster acknowledged, escrows, create intents."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from syncd.adapters.policy import escrow_delay
from syncd.adapters.sqlite.faults import guarded
from syncd.adapters.sqlite.sql import get_meta, in_chunks, set_meta, sql_now, sql_time, utcnow
from syncd.core.ledger import LedgerGroup, LedgerUser
from syncd.ports import Escrow

CONVERGED = "converged"
GROUPS_IN_DOUBT = "groups_in_doubt"


@guarded
class SqliteLedger:
    """LedgerRepository over ``ledger_user``, ``ledger_group``, ``ledger_member``, ``escrow``.

    The ledger is written once per acknowledged operation, each write its own transaction on
    plain sqlite3: the ORM's per-call cost was most of a cycle's CPU at 100,000 users.
    """

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db
        # The ids in escrow, so that an acknowledgement costs no DELETE when there is none to
        # clear (most). Read again when the cycle's lock is taken (another process may have
        # escrowed since) and after a transaction that failed.
        self._escrowed: set[str] = set()
        self.reload()

    # -- users ---------------------------------------------------------------------------------

    def users(self) -> dict[str, LedgerUser]:
        rows = self._db.execute("SELECT graph_id, scim_id, attrs FROM ledger_user")
        return {gid: LedgerUser(sid, attrs_json=attrs) for gid, sid, attrs in rows}

    def users_for(self, ids: Iterable[str]) -> dict[str, LedgerUser]:
        rows = in_chunks(
            self._db,
            "SELECT graph_id, scim_id, attrs FROM ledger_user WHERE graph_id IN ({ids})",
            ids,
        )
        return {gid: LedgerUser(sid, attrs_json=attrs) for gid, sid, attrs in rows}

    def scim_ids(self) -> dict[str, str]:
        """Graph id -> Learnster id of every linked user."""
        return dict(self._db.execute("SELECT graph_id, scim_id FROM ledger_user"))

    def scim_id_of(self, graph_id: str) -> str | None:
        row = self._db.execute(
            "SELECT scim_id FROM ledger_user WHERE graph_id = ?", (graph_id,)
        ).fetchone()
        return str(row[0]) if row else None

    def graph_id_of(self, scim_id: str) -> str | None:
        row = self._db.execute(
            "SELECT graph_id FROM ledger_user WHERE scim_id = ?", (scim_id,)
        ).fetchone()
        return str(row[0]) if row else None

    def graph_ids_of(self, scim_ids: Iterable[str]) -> dict[str, str]:
        sql = "SELECT scim_id, graph_id FROM ledger_user WHERE scim_id IN ({ids})"
        return dict(in_chunks(self._db, sql, scim_ids))

    def attrs_of(self, graph_id: str) -> dict[str, Any] | None:
        row = self._db.execute(
            "SELECT attrs FROM ledger_user WHERE graph_id = ?", (graph_id,)
        ).fetchone()
        return json.loads(row[0]) if row else None

    def user_count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM ledger_user").fetchone()[0])

    def linked_among(self, ids: Iterable[str]) -> set[str]:
        sql = "SELECT graph_id FROM ledger_user WHERE graph_id IN ({ids})"
        return {r[0] for r in in_chunks(self._db, sql, ids)}

    def put_user(self, graph_id: str, entry: LedgerUser, *, adopted: bool = False) -> None:
        with self._transaction():
            self._db.execute(
                "INSERT INTO ledger_user (graph_id, scim_id, attrs, adopted, updated_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT(graph_id) DO UPDATE SET "
                "scim_id = excluded.scim_id, attrs = excluded.attrs, updated_at = excluded.updated_at",
                (graph_id, entry.scim_id, entry.attrs_json, adopted, sql_now()),
            )
            self._db.execute("DELETE FROM create_intent WHERE graph_id = ?", (graph_id,))
            self._clear_escrow(graph_id)

    def drop_user(self, graph_id: str) -> None:
        """Forget a user's link (deleted in Learnster) and its memberships."""
        with self._transaction():
            self._db.execute("DELETE FROM ledger_user WHERE graph_id = ?", (graph_id,))
            self._db.execute("DELETE FROM ledger_member WHERE user_id = ?", (graph_id,))
            self._clear_escrow(graph_id)

    # -- groups --------------------------------------------------------------------------------

    def groups(self) -> dict[str, LedgerGroup]:
        return _ledger_groups(
            self._db.execute("SELECT group_id, user_id FROM ledger_member"),
            self._db.execute("SELECT graph_id, scim_id, display_name FROM ledger_group"),
        )

    def groups_for(self, ids: Iterable[str]) -> dict[str, LedgerGroup]:
        ids = list(ids)
        return _ledger_groups(
            in_chunks(
                self._db,
                "SELECT group_id, user_id FROM ledger_member WHERE group_id IN ({ids})",
                ids,
            ),
            in_chunks(
                self._db,
                "SELECT graph_id, scim_id, display_name FROM ledger_group "
                "WHERE graph_id IN ({ids})",
                ids,
            ),
        )

    def put_group(self, graph_id: str, scim_id: str, display_name: str) -> None:
        """Record a created, adopted or renamed group."""
        with self._transaction():
            self._db.execute(
                "INSERT INTO ledger_group (graph_id, scim_id, display_name, updated_at) "
                "VALUES (?, ?, ?, ?) ON CONFLICT(graph_id) DO UPDATE SET "
                "scim_id = excluded.scim_id, display_name = excluded.display_name, "
                "updated_at = excluded.updated_at",
                (graph_id, scim_id, display_name, sql_now()),
            )
            self._clear_escrow(graph_id)

    def add_members(self, graph_id: str, user_ids: Iterable[str]) -> None:
        with self._transaction():
            self._db.executemany(
                "INSERT OR IGNORE INTO ledger_member (group_id, user_id) VALUES (?, ?)",
                [(graph_id, uid) for uid in user_ids],
            )
            self._clear_escrow(graph_id)

    def remove_members(self, graph_id: str, user_ids: Iterable[str]) -> None:
        with self._transaction():
            self._db.executemany(
                "DELETE FROM ledger_member WHERE group_id = ? AND user_id = ?",
                [(graph_id, uid) for uid in user_ids],
            )
            self._clear_escrow(graph_id)

    def drop_group(self, graph_id: str) -> None:
        with self._transaction():
            self._db.execute("DELETE FROM ledger_group WHERE graph_id = ?", (graph_id,))
            self._db.execute("DELETE FROM ledger_member WHERE group_id = ?", (graph_id,))
            self._clear_escrow(graph_id)

    def forget_links(self) -> None:
        """Forget every Learnster id: the next cycle re-matches users by userName."""
        with self._transaction():
            for table in ("ledger_user", "ledger_group", "ledger_member"):
                self._db.execute(f"DELETE FROM {table}")  # noqa: S608 - fixed names

    # -- escrow and create intents -------------------------------------------------------------

    def reload(self) -> None:
        """Forget what this connection remembers of other writers' work (the escrowed ids)."""
        self._escrowed = {row[0] for row in self._db.execute("SELECT object_id FROM escrow")}

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """One transaction; if it does not commit, the escrowed ids are read again."""
        try:
            with self._db:
                yield
        except BaseException:
            self.reload()
            raise

    def _clear_escrow(self, object_id: str) -> None:
        """Inside the caller's transaction (which reloads the ids if it fails)."""
        if object_id in self._escrowed:
            self._db.execute("DELETE FROM escrow WHERE object_id = ?", (object_id,))
            self._escrowed.discard(object_id)

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
        now = now or utcnow()
        with self._transaction():
            row = self._db.execute(
                "SELECT attempts, first_failed_at FROM escrow WHERE object_id = ?", (object_id,)
            ).fetchone()
            attempts, first_failed = (row[0] + 1, row[1]) if row else (1, sql_now())
            next_retry = datetime.fromtimestamp(
                now.timestamp() + escrow_delay(attempts, retry_after), UTC
            )
            self._db.execute(
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
                    sql_time(next_retry),
                ),
            )
        self._escrowed.add(object_id)

    def deferred(self, now: datetime) -> set[str]:
        """Objects in escrow whose next retry is still to come."""
        rows = self._db.execute(
            "SELECT object_id FROM escrow WHERE next_retry_at > ?", (sql_time(now),)
        )
        return {row[0] for row in rows}

    def escrows(self) -> list[Escrow]:
        rows = self._db.execute(
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
        with self._transaction():
            self._db.execute("DELETE FROM escrow")
        self._escrowed.clear()

    def record_intent(self, graph_id: str, user_name: str) -> None:
        """Before a create: if we crash after Learnster acts, the next cycle knows to match."""
        with self._transaction():
            self._db.execute(
                "INSERT OR REPLACE INTO create_intent (graph_id, user_name, at) VALUES (?, ?, ?)",
                (graph_id, user_name, sql_now()),
            )

    def intents(self) -> dict[str, str]:
        return dict(self._db.execute("SELECT graph_id, user_name FROM create_intent"))

    # -- convergence ---------------------------------------------------------------------------

    def converged(self) -> str | None:
        return get_meta(self._db, CONVERGED)

    def set_converged(self, fingerprint: str | None) -> None:
        set_meta(self._db, CONVERGED, fingerprint)

    def groups_in_doubt(self) -> list[str]:
        raw = get_meta(self._db, GROUPS_IN_DOUBT)
        return list(json.loads(raw)) if raw else []

    def set_groups_in_doubt(self, external_ids: Iterable[str]) -> None:
        doubts = sorted(external_ids)
        set_meta(self._db, GROUPS_IN_DOUBT, json.dumps(doubts) if doubts else None)

    def counts(self) -> dict[str, int]:
        result: dict[str, int] = {}
        for name, table in (
            ("users_linked", "ledger_user"),
            ("groups_linked", "ledger_group"),
            ("escrows", "escrow"),
        ):
            row = self._db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()  # noqa: S608 - fixed names
            result[name] = int(row[0])
        return result


def _ledger_groups(
    member_rows: Iterable[tuple[str, str]], group_rows: Iterable[tuple[str, str, str]]
) -> dict[str, LedgerGroup]:
    """LedgerGroups from ledger_member (group, user) and ledger_group (id, scim id, name) rows."""
    members: dict[str, set[str]] = {}
    for gid, uid in member_rows:
        members.setdefault(gid, set()).add(uid)
    return {
        gid: LedgerGroup(sid, name, frozenset(members.get(gid, ())))
        for gid, sid, name in group_rows
    }
