"""The ports a cycle depends on: the directory source, the SCIM target, and the state repositories.

Adapters implement them: Graph (syncd.adapters.graph), Learnster's SCIM (syncd.adapters.scim),
and the repositories in SQLite (syncd.adapters.sqlite) and in memory (syncd.adapters.memory).
One contract test suite per repository port runs over both (tests/contract/).
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, NamedTuple, Protocol

from syncd.core.ledger import LedgerGroup, LedgerUser
from syncd.core.limiter import Learned, LimiterState
from syncd.core.records import Assignments, DeltaRound, GroupSnapshot, Presence, UserSnapshot

# -- records the repositories hand out ------------------------------------------------------


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
    changes: str = ""  # JSON text, as LogLine.changes ("": written before syncd kept them)

    def to_json(self) -> dict[str, Any]:
        row = super().to_json()
        row["changes"] = self.changes_json()
        return row

    def changes_json(self) -> dict[str, Any] | None:
        """``changes`` decoded: attribute path -> [old, new]; None when it was not recorded."""
        try:
            decoded = json.loads(self.changes) if self.changes else None
        except ValueError:
            return None
        return decoded if isinstance(decoded, dict) else None


@dataclass(frozen=True)
class LogFilter:
    """Which lines of the provisioning log to hand out (every line by default)."""

    # Object ids or labels (UPN, group name), compared exactly; empty: every object.
    objects: frozenset[str] = frozenset()
    since: datetime | None = None  # only lines written at or after this moment (aware)


class LogLine(NamedTuple):
    """What the cycle writes to the provisioning log for one operation."""

    object_id: str
    label: str
    operation: str
    outcome: str
    detail: str  # the error, for an operation that failed
    # What the operation changes, as JSON text of core.operations.operation_changes: attribute
    # path -> [old, new]
    changes: str = ""


# -- the directory and Learnster --------------------------------------------------------------


class DirectorySource(Protocol):
    """Microsoft Graph, read only."""

    requests: int  # requests sent so far, for reports

    async def delta(
        self,
        resource: str,
        link: str | None,
        on_object: Callable[[dict[str, Any]], None] | None = None,
        select: Sequence[str] = ...,
    ) -> DeltaRound:
        """One delta round of "users" or "groups"; a full read when ``link`` is None, which
        selects ``select`` of each user."""
        ...

    async def assignments(self, application: str) -> Assignments:
        """The users and groups assigned to the application (its appId or its service
        principal's object id)."""
        ...

    async def get_user(self, key: str, select: Sequence[str] = ...) -> dict[str, Any] | None:
        """One user by object id or UPN, with its manager's id; None when there is none."""
        ...

    async def member_groups(self, user_id: str, *, transitive: bool) -> list[tuple[str, str]]:
        """(id, displayName) of the groups the user is a member of."""
        ...

    async def aclose(self) -> None: ...


class ScimTarget(Protocol):
    """Learnster's SCIM API: one method per request kind syncd sends."""

    requests: Counter[str]  # "POST /Users" -> count
    groups_in_doubt: set[str]  # externalIds whose POST may have been applied twice

    def watch_sends(self, count: int) -> asyncio.Event:
        """Set once the next ``count`` requests are written and awaiting their answers."""
        ...

    def sending(self) -> LimiterState:
        """How many requests Learnster is being sent at a time, and what it has answered."""
        ...

    async def create_user(self, resource: Mapping[str, Any]) -> dict[str, Any]: ...
    async def patch_user(self, scim_id: str, operations: Sequence[Mapping[str, Any]]) -> None: ...
    async def delete_user(self, scim_id: str) -> None: ...
    async def find_user(self, user_name: str) -> dict[str, Any] | None: ...
    async def find_users_by_email(self, address: str) -> list[dict[str, Any]]: ...
    def iter_users(self, page_size: int = ...) -> AsyncIterator[dict[str, Any]]: ...
    async def create_group(self, resource: Mapping[str, Any]) -> dict[str, Any]: ...
    async def find_groups(self, external_id: str) -> list[dict[str, Any]]: ...
    async def patch_group(self, scim_id: str, operations: Sequence[Mapping[str, Any]]) -> None: ...
    async def group_members(self, scim_id: str) -> list[str]:
        """The Learnster ids of a tag's members."""
        ...

    async def delete_group(self, scim_id: str) -> None: ...
    def iter_groups(
        self, page_size: int = ..., attributes: str = ...
    ) -> AsyncIterator[dict[str, Any]]:
        """Every tag, in pages; ``attributes`` "" for whole tags (members included)."""
        ...

    async def aclose(self) -> None: ...


# -- state --------------------------------------------------------------------------------------


class SnapshotRepository(Protocol):
    """The directory as last read, with the delta links that produced it."""

    def load(self) -> tuple[UserSnapshot, GroupSnapshot]: ...
    def users(self, ids: Iterable[str]) -> UserSnapshot: ...
    def groups(self, ids: Iterable[str]) -> GroupSnapshot: ...

    def replace(
        self,
        users: UserSnapshot,
        groups: GroupSnapshot,
        delta_links: Mapping[str, str],
        *,
        full_read_at: datetime | None,
        selection: Sequence[str] | None = None,
        assignments: Assignments | None = None,
    ) -> None:
        """The whole snapshot, and the delta links that produced it, in one transaction;
        ``selection``: the user properties the users delta link now selects; ``assignments``:
        who the Learnster app was assigned to when it was read."""
        ...

    def update(
        self,
        users: UserSnapshot,
        groups: GroupSnapshot,
        delta_links: Mapping[str, str],
        assignments: Assignments | None = None,
    ) -> None:
        """Only these records, and the delta links, in one transaction; ``settle()`` follows."""
        ...

    def assignments(self) -> Assignments | None:
        """The app's assignments as the last cycle read them (None: not read)."""
        ...

    def settle(self) -> None:
        """Finish the housekeeping ``update`` put off (a WAL checkpoint); safe to call any time."""
        ...

    def delta_links(self) -> dict[str, str]: ...

    def user_selection(self) -> tuple[str, ...] | None:
        """What the stored users delta link selects (None: not recorded, an older syncd's)."""
        ...

    def save_delta_links(self, links: Mapping[str, str]) -> None: ...
    def forget_delta_links(self) -> None: ...
    def last_full_read(self) -> datetime | None: ...
    def forget_full_read(self) -> None: ...

    def reports_of(self, manager_ids: Iterable[str]) -> set[str]:
        """The users whose manager is one of ``manager_ids``."""
        ...

    def ids_by_user_name(self, user_names: Iterable[str]) -> dict[str, set[str]]:
        """user_name_key -> ids of the present users with that userName (keyed the same way)."""
        ...

    def presence_of(self, ids: Iterable[str]) -> dict[str, Presence]:
        """The presence of those of ``ids`` the snapshot holds."""
        ...

    def counts(self) -> dict[str, int]: ...


class LedgerRepository(Protocol):
    """What Learnster acknowledged, per object; escrows and create intents beside it."""

    def users(self) -> dict[str, LedgerUser]: ...
    def users_for(self, ids: Iterable[str]) -> dict[str, LedgerUser]: ...
    def scim_ids(self) -> dict[str, str]: ...
    def scim_id_of(self, graph_id: str) -> str | None: ...
    def graph_id_of(self, scim_id: str) -> str | None: ...

    def graph_ids_of(self, scim_ids: Iterable[str]) -> dict[str, str]:
        """Learnster id -> Graph id, for those of ``scim_ids`` that are linked."""
        ...

    def attrs_of(self, graph_id: str) -> dict[str, Any] | None: ...
    def user_count(self) -> int: ...
    def linked_among(self, ids: Iterable[str]) -> set[str]: ...
    def groups(self) -> dict[str, LedgerGroup]: ...
    def groups_for(self, ids: Iterable[str]) -> dict[str, LedgerGroup]: ...

    def put_user(self, graph_id: str, entry: LedgerUser, *, adopted: bool = False) -> None:
        """Record one acknowledged user operation; clears its escrow and create intent."""
        ...

    def drop_user(self, graph_id: str) -> None: ...
    def put_group(self, graph_id: str, scim_id: str, display_name: str) -> None: ...
    def add_members(self, graph_id: str, user_ids: Iterable[str]) -> None: ...
    def remove_members(self, graph_id: str, user_ids: Iterable[str]) -> None: ...
    def drop_group(self, graph_id: str) -> None: ...
    def forget_links(self) -> None: ...

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
        """Keep a failed object pending, with its error and when to try again."""
        ...

    def deferred(self, now: datetime) -> set[str]: ...
    def escrows(self) -> list[Escrow]: ...
    def clear_escrows(self) -> None: ...
    def record_intent(self, graph_id: str, user_name: str) -> None: ...
    def intents(self) -> dict[str, str]: ...

    def converged(self) -> str | None:
        """The configuration fingerprint under which the last cycle left Learnster in sync."""
        ...

    def set_converged(self, fingerprint: str | None) -> None: ...
    def groups_in_doubt(self) -> list[str]: ...
    def set_groups_in_doubt(self, external_ids: Iterable[str]) -> None: ...
    def counts(self) -> dict[str, int]: ...


class RunLog(Protocol):
    """The run history, the provisioning log, and the state the last cycle left behind."""

    def start(self, mode: str, dry_run: bool, keep_days: float = 30.0) -> int:
        """A new run; the provisioning log of runs begun more than ``keep_days`` ago goes."""
        ...

    def finish(
        self, run_id: int, counts: Mapping[str, Mapping[str, int]], exit_code: int, message: str
    ) -> None: ...

    def recent(self, limit: int = 10) -> list[Run]: ...
    def append(self, run_id: int, entries: Iterable[LogLine]) -> None: ...
    def entries(
        self, limit: int = 100, object_key: str = "", where: LogFilter | None = None
    ) -> list[LogEntry]:
        """The latest ``limit`` lines (negative: no limit), newest first: of one object (its id
        or label, exactly) when ``object_key`` is given, and those ``where`` lets through."""
        ...

    def entries_after(
        self, after_id: int, limit: int = 1000, where: LogFilter | None = None
    ) -> list[LogEntry]:
        """Up to ``limit`` lines with an id above ``after_id``, oldest first: the log read in
        pages, in the order it was written (a page's last id starts the next)."""
        ...

    def guard(self) -> dict[str, Any] | None: ...
    def set_guard(self, held: int, message: str, now: datetime) -> None: ...
    def learnster_limit(self) -> Learned | None:
        """What the last cycle that sent anything learned of Learnster's capacity."""
        ...

    def set_learnster_limit(self, learned: Learned) -> None: ...
    def health(self) -> dict[str, Any] | None: ...
    def set_health(self, state: Mapping[str, Any]) -> None: ...


class State(Protocol):
    """The three repositories of one state database."""

    @property
    def snapshot(self) -> SnapshotRepository: ...
    @property
    def ledger(self) -> LedgerRepository: ...
    @property
    def runs(self) -> RunLog: ...
