"""The state repositories in memory: the same contract as SQLite's, for tests and dry experiments.

Every method keeps the semantics the SQLite adapter has (tests/contract/ runs one suite over
both); values are copied in and out, so callers never share mutable state with the store.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from syncd.adapters.policy import LOG_KEEP_DAYS, escrow_delay, guard_state
from syncd.core.ledger import LedgerGroup, LedgerUser
from syncd.core.limiter import Learned
from syncd.core.records import Assignments, GroupSnapshot, Presence, UserSnapshot, user_name_key
from syncd.ports import Escrow, LogEntry, LogFilter, LogLine, Run

T = TypeVar("T")


def _now() -> datetime:
    return datetime.now(UTC)


def _limit(rows: list[T], limit: int) -> list[T]:
    """The first ``limit`` rows, as SQL's LIMIT takes them: a negative limit is none."""
    return rows if limit < 0 else rows[:limit]


class MemorySnapshot:
    """SnapshotRepository in dicts."""

    def __init__(self) -> None:
        self._users: UserSnapshot = {}
        self._groups: GroupSnapshot = {}
        self._links: dict[str, str] = {}
        self._last_full_read: datetime | None = None
        self._selection: tuple[str, ...] | None = None
        self._assignments: Assignments | None = None

    def load(self) -> tuple[UserSnapshot, GroupSnapshot]:
        return dict(self._users), dict(self._groups)

    def users(self, ids: Iterable[str]) -> UserSnapshot:
        return {uid: self._users[uid] for uid in ids if uid in self._users}

    def groups(self, ids: Iterable[str]) -> GroupSnapshot:
        return {gid: self._groups[gid] for gid in ids if gid in self._groups}

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
        self._users, self._groups = dict(users), dict(groups)
        self._assignments = assignments or self._assignments
        self._links.update(delta_links)
        if full_read_at is not None:
            self._last_full_read = full_read_at
        if selection is not None:
            self._selection = tuple(selection)

    def update(
        self,
        users: UserSnapshot,
        groups: GroupSnapshot,
        delta_links: Mapping[str, str],
        assignments: Assignments | None = None,
    ) -> None:
        self._assignments = assignments or self._assignments
        self._users.update(users)
        self._groups.update(groups)
        self._links.update(delta_links)

    def settle(self) -> None:
        """Nothing is put off in memory."""

    def delta_links(self) -> dict[str, str]:
        return dict(self._links)

    def save_delta_links(self, links: Mapping[str, str]) -> None:
        self._links.update(links)

    def forget_delta_links(self) -> None:
        self._links.clear()

    def user_selection(self) -> tuple[str, ...] | None:
        return self._selection

    def assignments(self) -> Assignments | None:
        return self._assignments

    def last_full_read(self) -> datetime | None:
        return self._last_full_read

    def forget_full_read(self) -> None:
        self._last_full_read = None

    def reports_of(self, manager_ids: Iterable[str]) -> set[str]:
        managers = set(manager_ids)
        return {uid for uid, (user, _) in self._users.items() if user.manager_id in managers}

    def ids_by_user_name(self, user_names: Iterable[str]) -> dict[str, set[str]]:
        keys = {user_name_key(name) for name in user_names}
        found: dict[str, set[str]] = {}
        for uid, (user, presence) in self._users.items():
            key = user_name_key(user.user_principal_name)
            if presence is Presence.PRESENT and key in keys:
                found.setdefault(key, set()).add(uid)
        return found

    def presence_of(self, ids: Iterable[str]) -> dict[str, Presence]:
        return {uid: self._users[uid].presence for uid in ids if uid in self._users}

    def counts(self) -> dict[str, int]:
        return {"snapshot_users": len(self._users), "snapshot_groups": len(self._groups)}


def _copy(entry: LedgerUser) -> LedgerUser:
    """A LedgerUser of its own (its ``scim_id`` can be set), as SQLite reads one from a row."""
    return LedgerUser(entry.scim_id, attrs_json=entry.attrs_json)


class MemoryLedger:
    """LedgerRepository in dicts."""

    def __init__(self) -> None:
        self._users: dict[str, tuple[LedgerUser, bool]] = {}  # graph id -> (entry, adopted)
        self._groups: dict[str, tuple[str, str]] = {}  # graph id -> (scim id, name)
        self._members: dict[str, set[str]] = {}
        self._escrows: dict[str, Escrow] = {}
        self._intents: dict[str, str] = {}
        self._converged: str | None = None
        self._in_doubt: list[str] = []

    def users(self) -> dict[str, LedgerUser]:
        return {gid: _copy(entry) for gid, (entry, _) in self._users.items()}

    def users_for(self, ids: Iterable[str]) -> dict[str, LedgerUser]:
        return {gid: _copy(self._users[gid][0]) for gid in ids if gid in self._users}

    def scim_ids(self) -> dict[str, str]:
        return {gid: entry.scim_id for gid, (entry, _) in self._users.items()}

    def scim_id_of(self, graph_id: str) -> str | None:
        found = self._users.get(graph_id)
        return found[0].scim_id if found else None

    def graph_id_of(self, scim_id: str) -> str | None:
        return next((g for g, (e, _) in self._users.items() if e.scim_id == scim_id), None)

    def graph_ids_of(self, scim_ids: Iterable[str]) -> dict[str, str]:
        wanted = set(scim_ids)
        return {e.scim_id: g for g, (e, _) in self._users.items() if e.scim_id in wanted}

    def attrs_of(self, graph_id: str) -> dict[str, Any] | None:
        found = self._users.get(graph_id)
        return found[0].attrs if found else None

    def user_count(self) -> int:
        return len(self._users)

    def linked_among(self, ids: Iterable[str]) -> set[str]:
        return {gid for gid in ids if gid in self._users}

    def groups(self) -> dict[str, LedgerGroup]:
        return self.groups_for(self._groups)

    def groups_for(self, ids: Iterable[str]) -> dict[str, LedgerGroup]:
        return {
            gid: LedgerGroup(*self._groups[gid], frozenset(self._members.get(gid, ())))
            for gid in ids
            if gid in self._groups
        }

    def put_user(self, graph_id: str, entry: LedgerUser, *, adopted: bool = False) -> None:
        was_adopted = self._users[graph_id][1] if graph_id in self._users else adopted
        self._users[graph_id] = (_copy(entry), was_adopted)
        self._intents.pop(graph_id, None)
        self._escrows.pop(graph_id, None)

    def drop_user(self, graph_id: str) -> None:
        self._users.pop(graph_id, None)
        for members in self._members.values():
            members.discard(graph_id)
        self._escrows.pop(graph_id, None)

    def put_group(self, graph_id: str, scim_id: str, display_name: str) -> None:
        self._groups[graph_id] = (scim_id, display_name)
        self._escrows.pop(graph_id, None)

    def add_members(self, graph_id: str, user_ids: Iterable[str]) -> None:
        self._members.setdefault(graph_id, set()).update(user_ids)
        self._escrows.pop(graph_id, None)

    def remove_members(self, graph_id: str, user_ids: Iterable[str]) -> None:
        self._members.get(graph_id, set()).difference_update(user_ids)
        self._escrows.pop(graph_id, None)

    def drop_group(self, graph_id: str) -> None:
        self._groups.pop(graph_id, None)
        self._members.pop(graph_id, None)
        self._escrows.pop(graph_id, None)

    def forget_links(self) -> None:
        self._users.clear()
        self._groups.clear()
        self._members.clear()

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
        now = now or _now()
        before = self._escrows.get(object_id)
        attempts = before.attempts + 1 if before else 1
        self._escrows[object_id] = Escrow(
            object_id=object_id,
            object_type=object_type,
            label=label,
            operation=operation,
            error=error,
            attempts=attempts,
            first_failed_at=before.first_failed_at if before else _now().replace(tzinfo=None),
            next_retry_at=(now + timedelta(seconds=escrow_delay(attempts, retry_after)))
            .astimezone(UTC)
            .replace(tzinfo=None),
        )

    def deferred(self, now: datetime) -> set[str]:
        moment = now.astimezone(UTC).replace(tzinfo=None)
        return {oid for oid, e in self._escrows.items() if e.next_retry_at > moment}

    def escrows(self) -> list[Escrow]:
        return sorted(self._escrows.values(), key=lambda e: e.first_failed_at)

    def clear_escrows(self) -> None:
        self._escrows.clear()

    def record_intent(self, graph_id: str, user_name: str) -> None:
        self._intents[graph_id] = user_name

    def intents(self) -> dict[str, str]:
        return dict(self._intents)

    def converged(self) -> str | None:
        return self._converged

    def set_converged(self, fingerprint: str | None) -> None:
        self._converged = fingerprint

    def groups_in_doubt(self) -> list[str]:
        return list(self._in_doubt)

    def set_groups_in_doubt(self, external_ids: Iterable[str]) -> None:
        self._in_doubt = sorted(external_ids)

    def counts(self) -> dict[str, int]:
        return {
            "users_linked": len(self._users),
            "groups_linked": len(self._groups),
            "escrows": len(self._escrows),
        }


def _lets_through(where: LogFilter | None, entry: LogEntry) -> bool:
    if where is None:
        return True
    if where.objects and not {entry.object_id, entry.label} & where.objects:
        return False
    since = where.since
    if since is not None and since.tzinfo is not None:
        since = since.astimezone(UTC).replace(tzinfo=None)  # entries are naive UTC, as SQLite's
    return since is None or entry.at >= since


class MemoryRunLog:
    """RunLog in lists."""

    def __init__(self) -> None:
        self._runs: dict[int, Run] = {}
        self._log: list[LogEntry] = []
        self._guard: dict[str, Any] | None = None
        self._health: str | None = None  # JSON, as SQLite keeps it: same copies, same types
        self._learned: Learned | None = None

    def start(self, mode: str, dry_run: bool, keep_days: float = LOG_KEEP_DAYS) -> int:
        now = _now().replace(tzinfo=None)
        cutoff = now - timedelta(days=keep_days)
        old = {rid for rid, run in self._runs.items() if run.started_at < cutoff}
        self._log = [entry for entry in self._log if entry.run_id not in old]
        run_id = max(self._runs, default=0) + 1
        self._runs[run_id] = Run(run_id, now, None, mode, dry_run, "{}", None, "")
        return run_id

    def finish(
        self, run_id: int, counts: Mapping[str, Mapping[str, int]], exit_code: int, message: str
    ) -> None:
        run = self._runs.get(run_id)
        if run is None:  # as SQLite's UPDATE of no row: nothing to finish
            return
        self._runs[run_id] = Run(
            run.id,
            run.started_at,
            _now().replace(tzinfo=None),
            run.mode,
            run.dry_run,
            json.dumps(counts, sort_keys=True),
            exit_code,
            message,
        )

    def recent(self, limit: int = 10) -> list[Run]:
        return [self._runs[rid] for rid in _limit(sorted(self._runs, reverse=True), limit)]

    def append(self, run_id: int, entries: Iterable[LogLine]) -> None:
        now = _now().replace(tzinfo=None)
        for line in entries:
            # one more than the largest id, as SQLite numbers rows: pruning never reuses an id
            # a remaining line has
            next_id = self._log[-1].id + 1 if self._log else 1
            self._log.append(LogEntry(next_id, run_id, now, *line))

    def entries(
        self, limit: int = 100, object_key: str = "", where: LogFilter | None = None
    ) -> list[LogEntry]:
        wanted = [e for e in self._log if not object_key or object_key in (e.object_id, e.label)]
        return _limit([e for e in wanted[::-1] if _lets_through(where, e)], limit)

    def entries_after(
        self, after_id: int, limit: int = 1000, where: LogFilter | None = None
    ) -> list[LogEntry]:
        wanted = (e for e in self._log if e.id > after_id and _lets_through(where, e))
        return _limit(list(wanted), limit)

    def guard(self) -> dict[str, Any] | None:
        return dict(self._guard) if self._guard else None

    def set_guard(self, held: int, message: str, now: datetime) -> None:
        self._guard = guard_state(self._guard, held, message, now)

    def learnster_limit(self) -> Learned | None:
        return self._learned

    def set_learnster_limit(self, learned: Learned) -> None:
        self._learned = learned

    def health(self) -> dict[str, Any] | None:
        if self._health is None:
            return None
        state: dict[str, Any] = json.loads(self._health)
        return state

    def set_health(self, state: Mapping[str, Any]) -> None:
        self._health = json.dumps(dict(state))


class MemoryStore:
    """The three repositories in memory (a State, as a cycle needs one)."""

    def __init__(self) -> None:
        self.snapshot = MemorySnapshot()
        self.ledger = MemoryLedger()
        self.runs = MemoryRunLog()

    def close(self) -> None:
        """Nothing to release."""
