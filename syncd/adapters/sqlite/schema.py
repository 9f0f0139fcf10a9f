"""The state database's tables as sqlmodel classes: created with them, read without them.

Importing sqlmodel (and SQLAlchemy) costs ~0.2 s, a third of a small delta cycle's start, so
``Store`` imports this module only when a database lacks tables (new, or older than this
syncd); every cycle reads and writes through plain sqlite3.
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
    """Create the tables (and their indexes) a database lacks; existing ones are left alone."""
    engine = create_engine(f"sqlite:///{path}")
    try:
        SQLModel.metadata.create_all(engine)
    finally:
        engine.dispose()


TABLES = frozenset(table.name for table in SQLModel.metadata.sorted_tables)
