"""The state database's tables as sqlmodel classes: the schema's one definition.

Importing sqlmodel (and SQLAlchemy) costs ~0.2 s and ~30 MB that a process keeps, so syncd
itself never imports this module: ``ddl()`` compiles these classes to SQLite's CREATE
statements, kept in ``schema_sql.py``, which ``Store`` runs where a database lacks tables (new,
or older than this syncd). A test fails when the two differ; regenerate with
``python -m syncd.adapters.sqlite.schema syncd/adapters/sqlite/schema_sql.py``.
Every cycle reads and writes through plain sqlite3.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from sqlmodel import Field, SQLModel, create_engine

# Defaults here are Python-side only and never used: the repositories write every row with plain
# sqlite3 and sets each column itself (so timestamps need no default clock).


class SnapshotUserRow(SQLModel, table=True):
    __tablename__ = "snapshot_user"
    id: str = Field(primary_key=True)
    upn: str
    upn_key: str = Field(index=True)  # user_name_key(upn): how UPN clashes are looked up
    data: str  # DirectoryUser.to_json()
    removed: str | None = None  # None | "changed" (recycle bin) | "deleted" (permanent)


class SnapshotGroupRow(SQLModel, table=True):
    __tablename__ = "snapshot_group"
    id: str = Field(primary_key=True)
    data: str  # DirectoryGroup.to_json()
    removed: str | None = None


class LedgerUserRow(SQLModel, table=True):
    __tablename__ = "ledger_user"
    graph_id: str = Field(primary_key=True)
    scim_id: str = Field(index=True)
    attrs: str  # flat attributes last acknowledged by Learnster
    adopted: bool = False
    updated_at: datetime


class LedgerGroupRow(SQLModel, table=True):
    __tablename__ = "ledger_group"
    graph_id: str = Field(primary_key=True)
    scim_id: str = Field(index=True)
    display_name: str  # the name syncd sent (Learnster may have added a suffix)
    updated_at: datetime


class LedgerMemberRow(SQLModel, table=True):
    """One acknowledged tag membership: user (Graph id) in group (Graph id)."""

    __tablename__ = "ledger_member"
    group_id: str = Field(primary_key=True)
    user_id: str = Field(primary_key=True, index=True)


class EscrowRow(SQLModel, table=True):
    __tablename__ = "escrow"
    object_id: str = Field(primary_key=True)
    object_type: str  # user | group
    label: str = ""  # userPrincipalName or group name, for people reading status
    operation: str
    error: str
    attempts: int = 1
    first_failed_at: datetime
    next_retry_at: datetime


class DeltaLinkRow(SQLModel, table=True):
    __tablename__ = "delta_link"
    resource: str = Field(primary_key=True)
    link: str
    stored_at: datetime


class RunRow(SQLModel, table=True):
    __tablename__ = "run"
    id: int | None = Field(default=None, primary_key=True)
    started_at: datetime
    finished_at: datetime | None = None
    mode: str  # full | delta
    dry_run: bool = False
    counts: str = "{}"  # operation kind -> {outcome: n}
    exit_code: int | None = None
    message: str = ""


class LogRow(SQLModel, table=True):
    """The provisioning log: what each cycle did to each object (pruned after [state] log_days)."""

    __tablename__ = "provisioning_log"
    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(index=True)
    at: datetime
    object_id: str = Field(index=True)
    label: str = ""
    operation: str
    outcome: str
    detail: str = ""
    changes: str = ""  # attribute path -> [old, new], JSON ("" in rows of schema 3)


class IntentRow(SQLModel, table=True):
    """A create that was sent but not yet acknowledged in the ledger."""

    __tablename__ = "create_intent"
    graph_id: str = Field(primary_key=True)
    user_name: str
    at: datetime


class MetaRow(SQLModel, table=True):
    __tablename__ = "meta"
    key: str = Field(primary_key=True)
    value: str


def create_tables(path: Path) -> None:
    """Create the tables (and their indexes) a database lacks, with SQLAlchemy (tests compare
    a database made so with one made from ``schema_sql``)."""
    engine = create_engine(f"sqlite:///{path}")
    try:
        SQLModel.metadata.create_all(engine)
    finally:
        engine.dispose()


def ddl() -> dict[str, tuple[str, ...]]:
    """Each table's CREATE TABLE and CREATE INDEX statements for SQLite, by table, in order.

    As ``create_all`` does, a table that exists is left alone, its indexes too: an older
    table's columns arrive with the migrations, then their indexes."""
    from sqlalchemy.dialects import sqlite
    from sqlalchemy.schema import CreateIndex, CreateTable

    dialect = sqlite.dialect()
    statements: dict[str, tuple[str, ...]] = {}
    for table in SQLModel.metadata.sorted_tables:
        indexes = sorted(table.indexes, key=lambda i: str(i.name))
        compiled = [CreateTable(table).compile(dialect=dialect)]
        compiled += [CreateIndex(index).compile(dialect=dialect) for index in indexes]
        statements[table.name] = tuple(" ".join(str(c).split()) for c in compiled)
    return statements


TABLES = frozenset(table.name for table in SQLModel.metadata.sorted_tables)


def _module_text() -> str:
    lines = [
        '"""Generated from syncd/adapters/sqlite/schema.py by ``python -m',
        "syncd.adapters.sqlite.schema syncd/adapters/sqlite/schema_sql.py``: do not edit. The",
        "state database's CREATE statements, run by Store where tables are missing (no",
        'SQLAlchemy at run time)."""',
        "",
        "STATEMENTS: dict[str, tuple[str, ...]] = {",
        *(f"    {table!r}: {statements!r}," for table, statements in ddl().items()),
        "}",
        "",
        f"TABLES = frozenset({sorted(TABLES)!r})",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # python -m syncd.adapters.sqlite.schema FILE
    import sys

    text = _module_text()  # made before FILE (which importing this package reads) is written
    Path(sys.argv[1]).write_text(text, encoding="utf-8")
