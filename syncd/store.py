"""SQLite state (sqlmodel): the directory snapshot, the ledger, escrows, delta links, run history."""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import delete, event, text
from sqlalchemy.engine import Engine
from sqlmodel import Field, Session, SQLModel, create_engine, select

from syncd.errors import ConfigError, LockHeld
from syncd.model import DirectoryGroup, DirectoryUser
from syncd.planner import LedgerGroup, LedgerUser

SCHEMA_VERSION = 1


def utcnow() -> datetime:
    return datetime.now(UTC)


class SnapshotUserRow(SQLModel, table=True):
    __tablename__ = "snapshot_user"
    id: str = Field(primary_key=True)
    upn: str = Field(index=True)
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
    updated_at: datetime = Field(default_factory=utcnow)


class LedgerGroupRow(SQLModel, table=True):
    __tablename__ = "ledger_group"
    graph_id: str = Field(primary_key=True)
    scim_id: str = Field(index=True)
    display_name: str
    members: str = "[]"  # graph ids of acknowledged members
    updated_at: datetime = Field(default_factory=utcnow)


class EscrowRow(SQLModel, table=True):
    __tablename__ = "escrow"
    object_id: str = Field(primary_key=True)
    object_type: str  # user | group
    label: str = ""  # userPrincipalName or group name, for people reading status
    operation: str
    error: str
    attempts: int = 1
    first_failed_at: datetime = Field(default_factory=utcnow)
    next_retry_at: datetime = Field(default_factory=utcnow)


class DeltaLinkRow(SQLModel, table=True):
    __tablename__ = "delta_link"
    resource: str = Field(primary_key=True)
    link: str
    stored_at: datetime = Field(default_factory=utcnow)


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


class MetaRow(SQLModel, table=True):
    __tablename__ = "meta"
    key: str = Field(primary_key=True)
    value: str


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL + NORMAL: each acknowledged operation is its own small durable transaction.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


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
        self.engine: Engine = create_engine(f"sqlite:///{self.path}")
        event.listen(self.engine, "connect", _sqlite_pragmas)
        SQLModel.metadata.create_all(self.engine)
        with Session(self.engine) as session:
            if session.get(MetaRow, "schema_version") is None:
                session.add(MetaRow(key="schema_version", value=str(SCHEMA_VERSION)))
                session.commit()

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def session(self) -> Iterator[Session]:
        with Session(self.engine, expire_on_commit=False) as session:
            yield session

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
        with self.session() as s:
            row = s.get(MetaRow, key)
            return row.value if row else None

    def set_meta(self, key: str, value: str | None) -> None:
        with self.session() as s:
            row = s.get(MetaRow, key)
            if value is None:
                if row is not None:
                    s.delete(row)
            elif row is None:
                s.add(MetaRow(key=key, value=value))
            else:
                row.value = value
                s.add(row)
            s.commit()

    # -- snapshot ---------------------------------------------------------------------------

    def load_snapshot(
        self,
    ) -> tuple[
        dict[str, tuple[DirectoryUser, str | None]], dict[str, tuple[DirectoryGroup, str | None]]
    ]:
        with self.session() as s:
            users = {
                row.id: (DirectoryUser.from_json(json.loads(row.data)), row.removed)
                for row in s.exec(select(SnapshotUserRow))
            }
            groups = {
                row.id: (DirectoryGroup.from_json(json.loads(row.data)), row.removed)
                for row in s.exec(select(SnapshotGroupRow))
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
        """Replace the snapshot and store the delta links that produced it, in one transaction."""
        with self.session() as s:
            s.execute(delete(SnapshotUserRow))
            s.execute(delete(SnapshotGroupRow))
            if users:
                s.execute(
                    SnapshotUserRow.__table__.insert(),  # type: ignore[attr-defined]
                    [
                        {
                            "id": uid,
                            "upn": user.user_principal_name,
                            "data": json.dumps(user.to_json(), separators=(",", ":")),
                            "removed": removed,
                        }
                        for uid, (user, removed) in users.items()
                    ],
                )
            if groups:
                s.execute(
                    SnapshotGroupRow.__table__.insert(),  # type: ignore[attr-defined]
                    [
                        {
                            "id": gid,
                            "data": json.dumps(group.to_json(), separators=(",", ":")),
                            "removed": removed,
                        }
                        for gid, (group, removed) in groups.items()
                    ],
                )
            for resource, link in delta_links.items():
                s.merge(DeltaLinkRow(resource=resource, link=link, stored_at=utcnow()))
            if full_read_at is not None:
                s.merge(MetaRow(key="last_full_read", value=full_read_at.isoformat()))
            s.commit()

    def delta_links(self) -> dict[str, str]:
        with self.session() as s:
            return {row.resource: row.link for row in s.exec(select(DeltaLinkRow))}

    def forget_delta_links(self) -> None:
        with self.session() as s:
            s.execute(delete(DeltaLinkRow))
            s.commit()

    # -- ledger -----------------------------------------------------------------------------

    def ledger_users(self) -> dict[str, LedgerUser]:
        with self.session() as s:
            return {
                row.graph_id: LedgerUser(row.scim_id, json.loads(row.attrs))
                for row in s.exec(select(LedgerUserRow))
            }

    def ledger_groups(self) -> dict[str, LedgerGroup]:
        with self.session() as s:
            return {
                row.graph_id: LedgerGroup(
                    row.scim_id, row.display_name, frozenset(json.loads(row.members))
                )
                for row in s.exec(select(LedgerGroupRow))
            }

    def put_user(self, graph_id: str, entry: LedgerUser, *, adopted: bool = False) -> None:
        """Record one acknowledged user operation (its own transaction)."""
        with self.session() as s:
            row = s.get(LedgerUserRow, graph_id)
            attrs = json.dumps(dict(entry.attrs), sort_keys=True, separators=(",", ":"))
            if row is None:
                row = LedgerUserRow(
                    graph_id=graph_id, scim_id=entry.scim_id, attrs=attrs, adopted=adopted
                )
            else:
                row.scim_id, row.attrs, row.updated_at = entry.scim_id, attrs, utcnow()
            s.add(row)
            s.execute(delete(EscrowRow).where(EscrowRow.object_id == graph_id))  # type: ignore[arg-type]
            s.commit()

    def drop_user(self, graph_id: str) -> None:
        """Forget a user's link (deleted in Learnster) and its memberships."""
        with self.session() as s:
            s.execute(delete(LedgerUserRow).where(LedgerUserRow.graph_id == graph_id))  # type: ignore[arg-type]
            s.execute(delete(EscrowRow).where(EscrowRow.object_id == graph_id))  # type: ignore[arg-type]
            for row in s.exec(select(LedgerGroupRow)):
                members = json.loads(row.members)
                if graph_id in members:
                    members.remove(graph_id)
                    row.members = json.dumps(members)
                    s.add(row)
            s.commit()

    def put_group(self, graph_id: str, entry: LedgerGroup) -> None:
        with self.session() as s:
            row = s.get(LedgerGroupRow, graph_id)
            members = json.dumps(sorted(entry.members))
            if row is None:
                row = LedgerGroupRow(
                    graph_id=graph_id,
                    scim_id=entry.scim_id,
                    display_name=entry.display_name,
                    members=members,
                )
            else:
                row.scim_id, row.display_name, row.members = (
                    entry.scim_id,
                    entry.display_name,
                    members,
                )
                row.updated_at = utcnow()
            s.add(row)
            s.execute(delete(EscrowRow).where(EscrowRow.object_id == graph_id))  # type: ignore[arg-type]
            s.commit()

    def drop_group(self, graph_id: str) -> None:
        with self.session() as s:
            s.execute(delete(LedgerGroupRow).where(LedgerGroupRow.graph_id == graph_id))  # type: ignore[arg-type]
            s.execute(delete(EscrowRow).where(EscrowRow.object_id == graph_id))  # type: ignore[arg-type]
            s.commit()

    def forget_links(self) -> None:
        """Forget every Learnster id: the next cycle re-matches users by userName."""
        with self.session() as s:
            s.execute(delete(LedgerUserRow))
            s.execute(delete(LedgerGroupRow))
            s.commit()

    # -- escrow -----------------------------------------------------------------------------

    def escrow(
        self,
        object_id: str,
        object_type: str,
        label: str,
        operation: str,
        error: str,
        retry_after: float,
    ) -> None:
        """Keep a failed object pending, with its error and when to try again."""
        now = utcnow()
        with self.session() as s:
            row = s.get(EscrowRow, object_id)
            if row is None:
                row = EscrowRow(
                    object_id=object_id,
                    object_type=object_type,
                    label=label,
                    operation=operation,
                    error=error,
                )
            else:
                row.attempts += 1
                row.operation, row.error, row.label = operation, error, label
            row.next_retry_at = datetime.fromtimestamp(now.timestamp() + retry_after, UTC)
            s.add(row)
            s.commit()

    def escrows(self) -> list[EscrowRow]:
        with self.session() as s:
            return list(s.exec(select(EscrowRow).order_by(EscrowRow.first_failed_at)))  # type: ignore[arg-type]

    def clear_escrows(self) -> None:
        with self.session() as s:
            s.execute(delete(EscrowRow))
            s.commit()

    # -- runs -------------------------------------------------------------------------------

    def start_run(self, mode: str, dry_run: bool) -> int:
        with self.session() as s:
            row = RunRow(started_at=utcnow(), mode=mode, dry_run=dry_run)
            s.add(row)
            s.commit()
            assert row.id is not None
            return row.id

    def finish_run(
        self, run_id: int, counts: Mapping[str, Mapping[str, int]], exit_code: int, message: str
    ) -> None:
        with self.session() as s:
            row = s.get(RunRow, run_id)
            if row is None:
                return
            row.finished_at = utcnow()
            row.counts = json.dumps(counts, sort_keys=True)
            row.exit_code = exit_code
            row.message = message
            s.add(row)
            s.commit()

    def runs(self, limit: int = 10) -> list[RunRow]:
        with self.session() as s:
            query = select(RunRow).order_by(RunRow.id.desc()).limit(limit)  # type: ignore[union-attr]
            return list(s.exec(query))

    def counts(self) -> dict[str, int]:
        with self.session() as s:
            result: dict[str, int] = {}
            for name, table in (
                ("users_linked", "ledger_user"),
                ("groups_linked", "ledger_group"),
                ("snapshot_users", "snapshot_user"),
                ("snapshot_groups", "snapshot_group"),
                ("escrows", "escrow"),
            ):
                result[name] = int(s.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar_one())  # noqa: S608 - fixed names
            return result


def to_json_lines(items: Iterable[Mapping[str, Any]]) -> str:
    return "\n".join(json.dumps(item, default=str) for item in items)
