"""The state database: schema upgrades and refusals, missing tables, log retention, index use."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from syncd.adapters.sqlite import SCHEMA_VERSION, Store
from syncd.adapters.sqlite.sql import get_meta
from syncd.core.ledger import LedgerUser
from syncd.ports import LogLine

DATA = Path(__file__).parent / "data"


def test_an_upgrade_from_schema_1_keeps_links_escrows_and_delta_links(tmp_path: Path) -> None:
    database = tmp_path / "state.db"
    with sqlite3.connect(database) as db:
        db.executescript((DATA / "schema_v1.sql").read_text())
        db.execute("INSERT INTO meta VALUES ('schema_version', '1')")
        db.execute(
            "INSERT INTO ledger_user VALUES ('u1', 'scim-1', ?, 0, '2026-11-01 00:00:00.000000')",
            (json.dumps({"userName": "a@x.example", "active": True}),),
        )
        db.execute(
            "INSERT INTO ledger_group VALUES ('g1', 'scim-g1', 'Sales', ?, "
            "'2026-11-01 00:00:00.000000')",
            (json.dumps(["u1", "u2"]),),
        )
        db.execute(
            "INSERT INTO escrow VALUES ('u2', 'user', 'b@x.example', 'create_user', 'bad phone', "
            "3, '2026-11-01 00:00:00.000000', '2026-11-02 00:00:00.000000')"
        )
        db.execute(
            "INSERT INTO delta_link VALUES ('users', 'https://graph/users/delta?t=1', "
            "'2026-11-01 00:00:00.000000')"
        )
    store = Store(str(database))
    try:
        assert get_meta(store._raw, "schema_version") == str(SCHEMA_VERSION)
        assert store.ledger.users()["u1"].scim_id == "scim-1"
        group = store.ledger.groups()["g1"]
        assert (group.scim_id, group.display_name, group.members) == (
            "scim-g1",
            "Sales",
            frozenset({"u1", "u2"}),
        )
        [escrow] = store.ledger.escrows()
        assert (escrow.object_id, escrow.error, escrow.attempts) == ("u2", "bad phone", 3)
        assert store.snapshot.delta_links() == {"users": "https://graph/users/delta?t=1"}
    finally:
        store.close()
    columns = [r[1] for r in sqlite3.connect(database).execute("PRAGMA table_info(ledger_group)")]
    assert "members" not in columns
    Store(str(database)).close()  # opening again is a no-op


def test_an_upgrade_from_schema_3_keeps_the_provisioning_log(tmp_path: Path) -> None:
    database = tmp_path / "state.db"
    Store(str(database)).close()
    with sqlite3.connect(database) as db:  # as syncd's schema 3 left it
        db.execute("ALTER TABLE provisioning_log DROP COLUMN changes")
        db.execute("UPDATE meta SET value = '3' WHERE key = 'schema_version'")
        db.execute(
            "INSERT INTO run (started_at, mode, dry_run, counts, message) VALUES "
            "('2026-11-01 00:00:00.000000', 'full', 0, '{}', '')"
        )
        db.execute(
            "INSERT INTO provisioning_log (run_id, at, object_id, label, operation, outcome, "
            "detail) VALUES (1, '2026-11-01 00:00:01.000000', 'u1', 'a@x.example', "
            "'create_user', 'created', '')"
        )
    store = Store(str(database))
    try:
        assert get_meta(store._raw, "schema_version") == str(SCHEMA_VERSION)
        [entry] = store.runs.entries()
        assert (entry.object_id, entry.outcome, entry.changes) == ("u1", "created", "")
        store.runs.append(1, [LogLine("u2", "b@x.example", "delete_user", "deleted", "", "{}")])
        assert [e.changes for e in store.runs.entries()] == ["{}", ""]
    finally:
        store.close()


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    from syncd.errors import ConfigError

    database = tmp_path / "state.db"
    Store(str(database)).close()
    with sqlite3.connect(database) as db:
        db.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(ConfigError, match="schema version 99, newer than this syncd knows"):
        Store(str(database))


def test_the_store_knows_every_table_the_schema_defines() -> None:
    from syncd.adapters import sqlite
    from syncd.adapters.sqlite import schema

    assert sqlite.TABLES == schema.TABLES


def test_a_database_missing_a_table_gets_it_back(tmp_path: Path) -> None:
    database = tmp_path / "state.db"
    Store(str(database)).close()
    with sqlite3.connect(database) as db:
        db.execute("DROP TABLE create_intent")
    store = Store(str(database))
    try:
        store.ledger.record_intent("u1", "a@x.example")
        assert store.ledger.intents() == {"u1": "a@x.example"}
    finally:
        store.close()


def test_the_provisioning_log_keeps_thirty_days(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "state.db"))
    try:
        old, recent = store.runs.start("full", False), store.runs.start("delta", False)
        store.runs.append(old, [LogLine("u1", "a@x.example", "create_user", "created", "")])
        store.runs.append(recent, [LogLine("u2", "b@x.example", "update_user", "updated", "")])
        long_ago = (datetime.now(UTC) - timedelta(days=31)).strftime("%Y-%m-%d %H:%M:%S.%f")
        with sqlite3.connect(tmp_path / "state.db") as db:
            db.execute("UPDATE run SET started_at = ? WHERE id = ?", (long_ago, old))
        store.runs.start("delta", False)
        assert [entry.object_id for entry in store.runs.entries()] == ["u2"]
        assert [entry.operation for entry in store.runs.entries(object_key="b@x.example")] == [
            "update_user"
        ]
    finally:
        store.close()


def _plan_of_last_query(store: Store, query: Callable[[], object]) -> str:
    """SQLite's query plan for the last statement ``query`` runs on the store's connection."""
    statements: list[str] = []
    store._raw.set_trace_callback(statements.append)
    try:
        query()
    finally:
        store._raw.set_trace_callback(None)
    return str(store._raw.execute(f"EXPLAIN QUERY PLAN {statements[-1]}").fetchall())


def test_upn_lookups_use_an_index_and_the_unused_one_is_gone(tmp_path: Path) -> None:
    database = tmp_path / "state.db"
    Store(str(database)).close()
    with sqlite3.connect(database) as db:  # as databases made by earlier versions have it
        db.execute("CREATE INDEX ix_snapshot_user_upn ON snapshot_user (upn)")
    store = Store(str(database))
    try:
        plan = _plan_of_last_query(store, lambda: store.snapshot.ids_by_user_name({"A@x.example"}))
        assert "USING INDEX ix_snapshot_user_upn_key" in plan
        indexes = {row[0] for row in store._raw.execute("SELECT name FROM sqlite_master")}
        assert "ix_snapshot_user_upn" not in indexes
        assert "ix_snapshot_user_upn_lower" not in indexes
    finally:
        store.close()


def test_the_reports_of_a_hire_or_leaver_are_found_through_an_index(tmp_path: Path) -> None:
    database = tmp_path / "state.db"
    Store(str(database)).close()
    with sqlite3.connect(database) as db:  # as databases made before the index have it
        db.execute("DROP INDEX ix_snapshot_user_manager")
    store = Store(str(database))  # puts it back
    try:
        found: list[set[str]] = []
        plan = _plan_of_last_query(store, lambda: found.append(store.snapshot.reports_of({"m1"})))
        assert found == [set()]
        assert "USING INDEX ix_snapshot_user_manager" in plan
    finally:
        store.close()


def test_an_escrow_another_process_wrote_is_cleared_by_the_next_acknowledgement(
    tmp_path: Path,
) -> None:
    """The ledger remembers which ids are in escrow; what another cycle escrowed after this
    store opened (it waits for the lock) is read again when the lock is taken."""
    database = str(tmp_path / "state.db")
    waiting = Store(database)
    other = Store(database)
    try:
        other.ledger.escrow("u1", "user", "a@x.example", "create_user", "rejected")
        with waiting.lock():
            waiting.ledger.put_user("u1", LedgerUser("scim-1", {"userName": "a@x.example"}))
            assert waiting.ledger.escrows() == []
        assert other.ledger.escrows() == []
    finally:
        waiting.close()
        other.close()


def test_the_compiled_schema_is_what_the_sqlmodel_classes_say() -> None:
    from syncd.adapters.sqlite import schema, schema_sql

    assert schema.ddl() == schema_sql.STATEMENTS, (
        "schema.py changed: python -m syncd.adapters.sqlite.schema "
        "syncd/adapters/sqlite/schema_sql.py"
    )
    assert schema_sql.TABLES == schema.TABLES


def _shape(database: Path) -> dict[str, object]:
    with sqlite3.connect(database) as db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {
            table: (
                db.execute(f"PRAGMA table_info({table})").fetchall(),
                sorted(
                    (index[1], db.execute(f"PRAGMA index_info({index[1]})").fetchall())
                    for index in db.execute(f"PRAGMA index_list({table})").fetchall()
                ),
            )
            for table in sorted(tables)
        }


def test_a_new_database_has_the_tables_sqlmodel_would_create_and_no_sqlalchemy(
    tmp_path: Path,
) -> None:
    from syncd.adapters.sqlite import schema

    made_by_sqlmodel = tmp_path / "sqlmodel.db"
    schema.create_tables(made_by_sqlmodel)
    made_by_store = tmp_path / "state.db"
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from syncd.adapters.sqlite import Store; Store(sys.argv[1]).close(); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('sqlalchemy', 'sqlmodel')))",
            str(made_by_store),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout.strip() == "[]"
    store_shape = _shape(made_by_store)
    expected = _shape(made_by_sqlmodel)
    # The store adds the manager lookup's expression index of its own.
    indexes = dict(store_shape["snapshot_user"][1])  # type: ignore[index]
    assert "ix_snapshot_user_manager" in indexes
    columns, snapshot_indexes = store_shape["snapshot_user"]  # type: ignore[misc]
    store_shape["snapshot_user"] = (
        columns,
        [i for i in snapshot_indexes if i[0] != "ix_snapshot_user_manager"],
    )
    assert store_shape == expected
