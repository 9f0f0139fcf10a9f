"""The sync cycle: read Graph, fold the snapshot, plan, apply over SCIM, record every acknowledgement."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from syncd.config import Config
from syncd.errors import ConfigError, ExitCode, SourceError, StopCycle
from syncd.mapping import (
    MANAGER,
    USER_NAME,
    MappingOptions,
    add_members_operation,
    build_user_resource,
    flatten_user_resource,
    group_resource,
    user_patch_operations,
)
from syncd.model import DirectoryUser, Problem
from syncd.planner import (
    AddMembers,
    CreateGroup,
    CreateUser,
    DeleteGroup,
    DeleteUser,
    LedgerGroup,
    LedgerUser,
    Operation,
    Plan,
    PlanOptions,
    RemoveMembers,
    RenameGroup,
    UpdateUser,
    as_dict,
    object_id,
    operation_to_json,
    plan,
)
from syncd.sink import (
    AuthError,
    ConflictError,
    NotFoundError,
    ScimError,
    ScimSink,
    TransientError,
)
from syncd.snapshot import (
    FullUserRound,
    GroupSnapshot,
    Scope,
    UserSnapshot,
    build_targets,
    compute_scope,
    fold_groups,
    fold_users,
    resolve_scope_groups,
)
from syncd.source import GROUPS, USERS, DeltaRound, DeltaTokenExpired, GraphSource, PartialRead
from syncd.store import Store

log = logging.getLogger("syncd.engine")

# Above this many creates, list Learnster's users once instead of one lookup per create.
MATCH_BY_LISTING_ABOVE = 20
# Stop sending, like Entra's quarantine, when most operations fail: something is wrong with
# the target as a whole, and hammering it helps no one.
QUARANTINE_MIN_OPERATIONS = 50
QUARANTINE_FAILURE_SHARE = 0.4


@dataclass
class CycleReport:
    """What one cycle did: for the CLI, status, metrics and tests."""

    mode: str = "delta"
    dry_run: bool = False
    plan: Plan = field(default_factory=Plan)
    outcomes: dict[str, Counter[str]] = field(default_factory=dict)
    failures: list[tuple[str, str, str]] = field(default_factory=list)  # (object, label, error)
    problems: list[Problem] = field(default_factory=list)
    held: int = 0
    graph_requests: int = 0
    scim_requests: dict[str, int] = field(default_factory=dict)
    exit_code: ExitCode = ExitCode.OK
    message: str = ""
    labels: dict[str, str] = field(default_factory=dict)  # object id -> UPN or group name
    stale: list[dict[str, Any]] = field(default_factory=list)  # `apply`: reviewed, now outdated
    duration_seconds: float = 0.0
    interrupted: bool = False  # stopped (SIGTERM) before every operation was sent
    quarantined: bool = False  # most operations failed: the rest were not sent
    planned: bool = True  # False: nothing changed since a converged cycle, nothing to plan
    planned_counts: dict[str, int] = field(default_factory=dict)  # operations by kind
    timings: dict[str, float] = field(default_factory=dict)  # CPU seconds by stage
    incremental: bool = False  # planned from the records the delta touched, not everything

    def count(self, kind: str, outcome: str) -> None:
        self.outcomes.setdefault(kind, Counter())[outcome] += 1

    def summary(self) -> str:
        parts = [
            f"{kind} {sum(c.values())}" + (f" ({c['failed']} failed)" if c.get("failed") else "")
            for kind, c in sorted(self.outcomes.items())
        ]
        return ", ".join(parts) or "nothing to do"


@dataclass
class DirectoryRead:
    users: UserSnapshot
    groups: GroupSnapshot
    links: dict[str, str]
    full: bool
    problems: list[Problem]
    changed_users: set[str]
    errors: list[str] = field(default_factory=list)  # non-empty: the read was partial
    quiet: bool = False  # nothing changed, and the last cycle had left Learnster in sync
    incremental: bool = False  # users/groups hold only the records this delta touched
    previous_users: UserSnapshot = field(default_factory=dict)  # their state before it

    @property
    def complete(self) -> bool:
        return not self.errors


async def read_directory(
    source: GraphSource,
    store: Store,
    *,
    full: bool,
    load_previous: Callable[[], tuple[UserSnapshot, GroupSnapshot]],
    may_skip: bool = False,
    load_subset: Callable[[set[str], set[str]], tuple[UserSnapshot, GroupSnapshot]] | None = None,
) -> DirectoryRead:
    """One read of users and groups (delta, or full when asked or when tokens expired).

    A round that fails part-way still contributes the objects it read (creates and updates
    may go ahead), but nothing it lacks counts as removed and its delta link is not advanced.
    ``may_skip``: when the delta rounds bring nothing, the snapshot is not even loaded.
    """
    links = {} if full else store.delta_links()
    rounds: dict[str, DeltaRound] = {}
    complete: dict[str, bool] = {}
    errors: list[str] = []
    is_full = full or USERS not in links or GROUPS not in links
    streamed = FullUserRound() if is_full else None

    async def read_round(resource: str) -> DeltaRound | DeltaTokenExpired | PartialRead:
        link = None if is_full else links.get(resource)
        on_object = streamed.add if streamed is not None and resource == USERS else None
        try:
            return await source.delta(resource, link, on_object)
        except (DeltaTokenExpired, PartialRead) as exc:
            return exc

    # Users and groups at the same time: a small delta cycle waits one Graph round trip less.
    try:
        async with asyncio.TaskGroup() as group:
            tasks = {r: group.create_task(read_round(r)) for r in (USERS, GROUPS)}
    except BaseExceptionGroup as failed:  # StopCycle, SourceError: as if read one by one
        raise failed.exceptions[0] from None
    for resource, task in tasks.items():
        outcome = task.result()
        if isinstance(outcome, DeltaTokenExpired):
            log.warning("Graph delta token for %s expired: reading everything again", resource)
            return await read_directory(source, store, full=True, load_previous=load_previous)
        if isinstance(outcome, PartialRead):
            log.error("reading %s from Graph failed: %s", resource, outcome)
            errors.append(str(outcome))
            rounds[resource] = outcome.partial
            rounds[resource].removed.clear()  # never remove anyone on a partial read
            complete[resource] = False
        else:
            rounds[resource] = outcome
            complete[resource] = True
    links_after = {r: rounds[r].delta_link for r in rounds if complete[r]}
    quiet = (
        streamed is None and not errors and not any(r.objects or r.removed for r in rounds.values())
    )
    if may_skip and quiet and not is_full:
        return DirectoryRead({}, {}, links_after, False, [], set(), quiet=True)
    incremental = load_subset is not None and not is_full and not errors
    if incremental and load_subset is not None:
        # Only the records this delta touches: the rest of the snapshot stays on disk.
        previous = load_subset(
            set(rounds[USERS].objects) | set(rounds[USERS].removed),
            set(rounds[GROUPS].objects) | set(rounds[GROUPS].removed),
        )
    else:
        previous = load_previous()
    if streamed is not None:
        users = streamed.finish(previous[0], complete=complete[USERS])
        user_problems = streamed.problems
        changed_users = set(streamed.users) | streamed.failed
    else:
        users, user_problems = fold_users(previous[0], rounds[USERS].objects, rounds[USERS].removed)
        changed_users = set(rounds[USERS].objects)
    groups, group_problems = fold_groups(
        previous[1],
        rounds[GROUPS].objects,
        rounds[GROUPS].removed,
        full=is_full and complete[GROUPS],
    )
    return DirectoryRead(
        users=users,
        groups=groups,
        links=links_after,
        full=is_full,
        problems=[*user_problems, *group_problems],
        changed_users=changed_users,
        errors=errors,
        incremental=incremental,
        previous_users=previous[0] if incremental else {},
    )


def _operation_key(data: Mapping[str, Any]) -> str:
    return json.dumps({k: v for k, v in data.items() if k != "label"}, sort_keys=True, default=str)


def restrict_plan(fresh: Plan, approved: list[dict[str, Any]]) -> tuple[Plan, list[dict[str, Any]]]:
    """The operations of ``fresh`` that were approved, and the approved ones no longer valid.

    An operation is still valid only if planning now yields exactly the same operation (same
    object, same old and new values): anything that changed since the review is not applied
    blind.
    """
    wanted = {_operation_key(op): op for op in approved}
    phases = tuple(
        tuple(op for op in phase if _operation_key(operation_to_json(op)) in wanted)
        for phase in fresh.phases
    )
    kept = {_operation_key(operation_to_json(op)) for phase in phases for op in phase}
    held = tuple(op for op in fresh.held if _operation_key(operation_to_json(op)) in wanted)
    kept |= {_operation_key(operation_to_json(op)) for op in held}
    stale = [op for key, op in wanted.items() if key not in kept]
    return Plan(phases=tuple(p for p in phases if p), held=held), stale


def _incremental_inputs(
    store: Store, read: DirectoryRead
) -> tuple[Scope, dict[str, LedgerUser], dict[str, LedgerGroup], set[str], set[str]] | None:
    """Scope, ledger slices and id sets for planning only what a delta touched (mode "all").

    Besides the changed users, the reports of anyone who appeared or disappeared are
    re-targeted (their manager reference depends on it). None when a UPN clash needs the
    whole directory to be decided.
    """
    changed = set(read.users)
    appeared_or_left = {
        uid
        for uid, (_, removed) in read.users.items()
        if (read.previous_users.get(uid, (None, "new"))[1] is None) != (removed is None)
    }
    reports = store.reports_of(appeared_or_left) - changed if appeared_or_left else set()
    read.users.update(store.load_users(reports))
    mine_by_upn: dict[str, set[str]] = {}
    for uid, (user, removed) in read.users.items():
        if removed is None:
            mine_by_upn.setdefault(user.user_principal_name.lower(), set()).add(uid)
    for upn, ids in store.ids_by_upn(mine_by_upn).items():
        if ids - read.users.keys() or len(mine_by_upn[upn]) > 1:
            return None
    # Only the ids the plan can look at: the managers of these users and the members of
    # these groups (not 100,000-id sets).
    referenced = {u.manager_id for u, _ in read.users.values() if u.manager_id}
    for group, _ in read.groups.values():
        referenced |= group.user_members
    outside = referenced - set(read.users)
    present = store.user_ids_among(outside, present_only=True)
    live = store.user_ids_among(outside, present_only=False)
    for uid, (_, removed) in read.users.items():
        if removed is None:
            present.add(uid)
        if removed != "deleted":
            live.add(uid)
    groups = {gid for gid, (_, removed) in read.groups.items() if removed is None}
    affected = set(read.users)
    return (
        Scope(users=present, groups=groups),
        store.ledger_users_for(affected),
        store.ledger_groups_for(set(read.groups)),
        store.linked_among(referenced | affected),
        live,
    )


async def _refold_fully(store: Store, read: DirectoryRead) -> DirectoryRead:
    """Fall back from a partial view: fold the same delta over the whole snapshot."""
    previous_users, previous_groups = store.load_snapshot()
    changes = {uid: data for uid, data in read.users.items() if uid in read.changed_users}
    users = dict(previous_users)
    users.update(changes)
    for uid, (user, removed) in read.users.items():
        if removed is not None:
            users[uid] = (user, removed)
    groups = dict(previous_groups)
    groups.update(read.groups)
    return DirectoryRead(
        users=users,
        groups=groups,
        links=read.links,
        full=False,
        problems=read.problems,
        changed_users=read.changed_users,
        errors=read.errors,
    )


def defer(the_plan: Plan, waiting: set[str]) -> tuple[Plan, list[Operation]]:
    """Hold back operations on objects whose escrow backoff has not run out yet."""
    if not waiting:
        return the_plan, []
    deferred = [op for op in the_plan.operations if object_id(op) in waiting]
    phases = tuple(
        kept
        for phase in the_plan.phases
        if (kept := tuple(op for op in phase if object_id(op) not in waiting))
    )
    return Plan(phases=phases, held=the_plan.held), deferred


def config_fingerprint(config: Config) -> str:
    """What, besides the directory and the ledger, decides a plan: if it changes, replan."""
    relevant = {
        "tenant_url": config.learnster.tenant_url,
        "scope": [config.scope.mode, config.scope.groups, config.scope.nested],
        "sync_groups": config.scope.effective_sync_groups,
        "sync": [
            config.sync.on_hard_delete,
            config.sync.phone_default_region,
            config.sync.member_batch_size,
        ],
        "mapping": sorted(config.user_mapping_overrides.items()),
    }
    return json.dumps(relevant, sort_keys=True)


def _full_read_due(store: Store, config: Config, now: datetime) -> bool:
    if config.schedule.full_every_days <= 0:
        return False
    last = store.get_meta("last_full_read")
    if last is None:
        return True
    return now - datetime.fromisoformat(last) >= timedelta(days=config.schedule.full_every_days)


class Applier:
    """Applies a plan's operations over SCIM and records each acknowledgement as it happens."""

    def __init__(
        self,
        sink: ScimSink,
        store: Store,
        report: CycleReport,
        labels: Mapping[str, str],
        batch_size: int,
        cancel: threading.Event | None = None,
        progress: Callable[[int, int], None] | None = None,
        run_id: int | None = None,
        now: datetime | None = None,
        groups: dict[str, LedgerGroup] | None = None,
        lazy: bool = False,
    ) -> None:
        self.now = now
        self.cancel = cancel
        self.run_id = run_id
        self._log: list[tuple[str, str, str, str, str]] = []
        self._attempted = 0
        self._failed = 0
        self._intents = store.intents()
        self._done = 0
        self._total = 0
        self.progress = progress
        self.sink = sink
        self.store = store
        self.report = report
        self.labels = labels
        self.batch_size = batch_size
        # Only ids in memory: attributes stay in the database (100k users would cost ~150 MB).
        # ``lazy``: not even all ids; each one is looked up when first needed (small deltas).
        self.lazy = lazy
        self.scim_ids: dict[str, str] = {} if lazy else store.ledger_scim_ids()
        self.groups: dict[str, LedgerGroup] = (
            dict(groups) if groups is not None else store.ledger_groups()
        )
        self._linked_scim_ids: set[str] | None = None if lazy else set(self.scim_ids.values())
        self._graph_of_scim: dict[str, str] | None = None  # built on the first adoption
        # Ledger attributes (canonical JSON) of the current phase's users, read in one go.
        self._acknowledged_json: dict[str, str] = {}
        self._existing_by_name: dict[str, dict[str, Any]] | None = None
        self._existing_groups: dict[str, dict[str, Any]] | None = None

    # -- the plan ---------------------------------------------------------------------------

    async def apply(
        self,
        phases: list[tuple[Operation, ...]],
        concurrency: int,
        meanwhile: list[Callable[[], None]] | None = None,
    ) -> None:
        """Send ``phases`` in order; each is popped off the list once sent (and freed).

        ``meanwhile``: blocking work that the sending does not depend on, popped off the list
        piece by piece, one while each of the first rounds of requests is on its way. What a
        short first phase leaves in the list is the caller's to finish.
        """
        self._total = sum(len(phase) for phase in phases)
        operations = [op for phase in phases for op in phase]
        creates = sum(1 for op in operations if isinstance(op, CreateUser))
        create_groups = any(isinstance(op, CreateGroup) for op in operations)
        del operations
        if creates > MATCH_BY_LISTING_ABOVE:
            await self._list_existing_users()
        if create_groups:
            await self._list_existing_groups()
        try:
            while phases:
                self._prefetch(phases[0])
                phase = phases.pop(0)
                sending = _run_bounded(phase, self._apply_one, concurrency * 2)
                if meanwhile:
                    round_size = min(len(phase), concurrency)
                    await _while_sending(sending, self.sink, round_size, meanwhile)
                    meanwhile = None
                else:
                    await sending
                self.flush_log()
                if self.cancel is not None and self.cancel.is_set():
                    self.report.interrupted = True
                    return
        finally:
            self.flush_log()
        await self.settle_groups()

    def _prefetch(self, phase: tuple[Operation, ...]) -> None:
        """Read the ledger rows a phase needs in a few queries, not one or two per operation."""
        updated = [op.user_id for op in phase if isinstance(op, UpdateUser)]
        referenced: set[str] = set()
        for op in phase:
            if isinstance(op, CreateUser | UpdateUser):
                attrs = op.attrs if isinstance(op, CreateUser) else op.after
                if isinstance(manager := attrs.get(MANAGER), str):
                    referenced.add(manager)
            elif isinstance(op, AddMembers | RemoveMembers | CreateGroup):
                referenced.update(op.user_ids)
        self._acknowledged_json = {}
        if updated or (self.lazy and referenced):
            wanted = [*updated, *(referenced - self.scim_ids.keys())] if self.lazy else updated
            for graph_id, entry in self.store.ledger_users_for(wanted).items():
                self.scim_ids.setdefault(graph_id, entry.scim_id)
                self._acknowledged_json[graph_id] = entry.attrs_json

    def _ledger_holds(self, graph_id: str, attrs: Mapping[str, Any]) -> bool:
        """Whether the ledger's attributes for ``graph_id`` are exactly ``attrs``."""
        known = self._acknowledged_json.get(graph_id)
        if known is not None:
            return bool(json.loads(known) == dict(attrs))
        return self.store.ledger_attrs(graph_id) == dict(attrs)

    async def settle_groups(self) -> None:
        """Remove second copies of tags whose create was retried (a lost answer, applied twice).

        Checked again next cycle too: a slow first POST can land after this check.
        """
        previous = json.loads(self.store.get_meta("groups_in_doubt") or "[]")
        in_doubt = sorted(set(previous) | self.sink.groups_in_doubt)
        for graph_id in in_doubt:
            linked = self.groups.get(graph_id)
            if linked is None:
                continue
            try:
                copies = await self.sink.find_groups(graph_id)
                for copy in copies:
                    if copy["id"] != linked.scim_id:
                        log.warning(
                            "removing a duplicate tag %s (%s)", linked.display_name, copy["id"]
                        )
                        await self.sink.delete_group(copy["id"])
            except ScimError as exc:
                log.warning("could not check tag %s for duplicates: %s", graph_id, exc)
        doubts = sorted(self.sink.groups_in_doubt)
        self.store.set_meta("groups_in_doubt", json.dumps(doubts) if doubts else None)

    async def _apply_one(self, op: Operation) -> None:
        # A stop request is a checkpoint: what was sent is in the ledger, the rest waits.
        if self.cancel is not None and self.cancel.is_set():
            self.report.interrupted = True
            return
        if self.report.quarantined:
            self._outcome(op, "not sent (quarantine)")
            return
        self._attempted += 1
        try:
            await self._dispatch(op)
        finally:
            self._done += 1
            if self.progress is not None:
                self.progress(self._done, self._total)

    async def _dispatch(self, op: Operation) -> None:
        handler: Callable[[Any], Awaitable[None]] = getattr(self, f"_{op.kind}")
        try:
            await handler(op)
        except AuthError:
            raise
        except TransientError as exc:
            if exc.unreachable:
                raise AuthError(f"cannot reach Learnster: {exc}") from None
            self._fail(op, exc)
        except ScimError as exc:
            self._fail(op, exc)

    def _fail(self, op: Operation, exc: ScimError) -> None:
        oid = object_id(op)
        label = self.labels.get(oid, oid)
        error = exc.detail or str(exc)
        self._outcome(op, "failed", error)
        self.report.failures.append((oid, label, error))
        kind = "group" if "group" in op.kind or "members" in op.kind else "user"
        retry = exc.retry_after if isinstance(exc, TransientError) and exc.retry_after else None
        self.store.escrow(oid, kind, label, op.kind, error, retry, now=self.now)
        log.error("%s %s (%s) failed: %s", op.kind, label, oid, error)
        self._failed += 1
        if (
            self._attempted >= QUARANTINE_MIN_OPERATIONS
            and self._failed > QUARANTINE_FAILURE_SHARE * self._attempted
            and not self.report.quarantined
        ):
            self.report.quarantined = True
            log.error(
                "quarantine: %d of %d operations failed; no more are sent this cycle",
                self._failed,
                self._attempted,
            )

    def _outcome(self, op: Operation, outcome: str, detail: str = "") -> None:
        self.report.count(op.kind, outcome)
        oid = object_id(op)
        self._log.append((oid, self.labels.get(oid, oid), op.kind, outcome, detail))

    def flush_log(self) -> None:
        """Write the provisioning log of the operations done so far (one transaction)."""
        if self._log and self.run_id is not None:
            self.store.append_log(self.run_id, self._log)
        self._log = []

    def _resolve(self, graph_id: str) -> str | None:
        scim_id = self.scim_ids.get(graph_id)
        if scim_id is None and self.lazy:
            scim_id = self.store.scim_id_of(graph_id)
            if scim_id is not None:
                self.scim_ids[graph_id] = scim_id
        return scim_id

    def _is_linked(self, scim_id: str) -> bool:
        if self._linked_scim_ids is not None:
            return scim_id in self._linked_scim_ids
        return scim_id in self.scim_ids.values() or self.store.graph_id_of(scim_id) is not None

    def _record_user(self, graph_id: str, entry: LedgerUser, *, adopted: bool = False) -> None:
        self.scim_ids[graph_id] = entry.scim_id
        if graph_id in self._acknowledged_json:
            self._acknowledged_json[graph_id] = entry.attrs_json
        if self._linked_scim_ids is not None:
            self._linked_scim_ids.add(entry.scim_id)
        if self._graph_of_scim is not None:
            self._graph_of_scim[entry.scim_id] = graph_id
        self.store.put_user(graph_id, entry, adopted=adopted)

    # -- users ------------------------------------------------------------------------------

    async def _list_existing_users(self) -> None:
        self._existing_by_name = {}
        async for resource in self.sink.iter_users():
            name = resource.get("userName")
            if isinstance(name, str):
                self._existing_by_name[name.casefold()] = resource

    async def _match(self, user_name: str) -> dict[str, Any] | None:
        if self._existing_by_name is not None:
            found = self._existing_by_name.get(user_name.casefold())
        else:
            found = await self.sink.find_user(user_name)
        if found is not None and self._is_linked(found["id"]):
            raise ConflictError(
                f"Learnster user {user_name!r} is already linked to another directory user",
                status=409,
                detail=f"userName {user_name!r} is already linked to another directory user",
            )
        return found

    async def _create_user(self, op: CreateUser) -> None:
        attrs = as_dict(op.attrs)
        user_name = str(attrs[USER_NAME])
        if op.user_id in self._intents and self._existing_by_name is None:
            log.info("%s: a create was interrupted before; matching it first", user_name)
        existing = await self._match(user_name)
        if existing is None:
            manager = attrs.get(MANAGER)
            manager_scim = self._resolve(manager) if manager else None
            sent = attrs
            if manager and manager_scim is None:
                sent.pop(MANAGER)  # manager failed or is not there yet: a later cycle links it
            self.store.record_intent(op.user_id, user_name)
            try:
                created = await self.sink.create_user(build_user_resource(sent, manager_scim))
            except ConflictError:
                existing = await self.sink.find_user(user_name)
                if existing is None:
                    raise
            else:
                self._record_user(op.user_id, LedgerUser(created["id"], sent))
                self._outcome(op, "created")
                return
        await self._adopt(op, attrs, existing)

    async def _adopt(
        self, op: CreateUser, attrs: dict[str, Any], existing: Mapping[str, Any]
    ) -> None:
        """Link a user Learnster already has and update it to the mapped values."""
        current = flatten_user_resource(existing)
        if current.get(MANAGER):
            # Compare managers by Graph id: translate Learnster's manager id back if we know it.
            if self.lazy:
                current[MANAGER] = self.store.graph_id_of(current[MANAGER]) or current[MANAGER]
            else:
                if self._graph_of_scim is None:
                    self._graph_of_scim = {sid: gid for gid, sid in self.scim_ids.items()}
                current[MANAGER] = self._graph_of_scim.get(current[MANAGER], current[MANAGER])
        ops = user_patch_operations(current, attrs, self._resolve, remove_missing=False)
        sent = self._acknowledged(current, attrs)
        if ops:
            await self.sink.patch_user(existing["id"], ops)
        self._record_user(op.user_id, LedgerUser(existing["id"], sent), adopted=True)
        self._outcome(op, "adopted")

    def _acknowledged(self, before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, Any]:
        """What Learnster holds after a PATCH from before to after (unresolvable manager kept)."""
        sent = dict(after)
        manager = after.get(MANAGER)
        if (
            manager is not None
            and before.get(MANAGER) != manager
            and self._resolve(manager) is None
        ):
            if MANAGER in before:
                sent[MANAGER] = before[MANAGER]
            else:
                sent.pop(MANAGER)
        return sent

    async def _update_user(self, op: UpdateUser) -> None:
        scim_id = self._resolve(op.user_id)
        if scim_id is None or not self._ledger_holds(op.user_id, op.before):
            self._outcome(op, "stale")
            return
        ops = user_patch_operations(op.before, op.after, self._resolve)
        sent = self._acknowledged(op.before, op.after)
        if ops:
            try:
                await self.sink.patch_user(scim_id, ops)
            except NotFoundError:
                # Deleted in Learnster behind our back: forget the link and provision again.
                self._forget_user(op.user_id)
                if op.after.get("active", True):
                    await self._create_user(CreateUser(op.user_id, op.after))
                return
        self._record_user(op.user_id, LedgerUser(scim_id, sent))
        self._outcome(op, "deactivated" if op.deactivates else "updated")

    def _forget_user(self, graph_id: str) -> None:
        scim_id = self.scim_ids.pop(graph_id, None)
        self._acknowledged_json.pop(graph_id, None)
        if scim_id is not None and self._linked_scim_ids is not None:
            self._linked_scim_ids.discard(scim_id)
        self.store.drop_user(graph_id)
        for gid, group in list(self.groups.items()):
            if graph_id in group.members:
                self.groups[gid] = LedgerGroup(
                    group.scim_id, group.display_name, group.members - {graph_id}
                )

    async def _delete_user(self, op: DeleteUser) -> None:
        scim_id = self._resolve(op.user_id)
        if scim_id is None:
            return
        with contextlib.suppress(NotFoundError):  # already gone: the goal is reached
            await self.sink.delete_user(scim_id)
        self._forget_user(op.user_id)
        self._outcome(op, "deleted")

    # -- groups -----------------------------------------------------------------------------

    async def _list_existing_groups(self) -> None:
        linked = {g.scim_id for g in self.groups.values()}
        self._existing_groups = {}
        async for resource in self.sink.iter_groups():
            external = resource.get("externalId")
            if isinstance(external, str) and resource["id"] not in linked:
                self._existing_groups[external] = resource

    async def _create_group(self, op: CreateGroup) -> None:
        existing = (self._existing_groups or {}).get(op.group_id)
        members = self._linked_members(op.user_ids)
        if existing is not None:  # our own tag from an earlier life of the state database
            scim_id = existing["id"]
            ops: list[dict[str, Any]] = []
            if existing.get("displayName") != op.display_name:
                ops.append({"op": "replace", "path": "displayName", "value": op.display_name})
            if members:
                ops.append(add_members_operation(members.values()))
            if ops:
                await self.sink.patch_group(scim_id, ops)
            outcome = "adopted"
        else:
            try:
                created = await self.sink.create_group(
                    group_resource(op.display_name, op.group_id, members.values())
                )
            except ScimError as exc:
                if not members or exc.status != 400:
                    raise
                # A member Learnster refuses must not keep the tag from existing: create it
                # empty, and fail the operation so the next cycle adds the members in batches.
                created = await self.sink.create_group(group_resource(op.display_name, op.group_id))
                self._link_group(op, created["id"], {})
                detail = f"tag created without its members: {exc.detail or exc}"
                raise ScimError(detail, status=exc.status, detail=detail) from None
            scim_id, outcome = created["id"], "created"
        self._link_group(op, scim_id, members)
        self._outcome(op, outcome)

    def _link_group(self, op: CreateGroup, scim_id: str, members: Mapping[str, str]) -> None:
        self.groups[op.group_id] = LedgerGroup(scim_id, op.display_name, frozenset(members))
        self.store.put_group(op.group_id, scim_id, op.display_name)
        if members:
            self.store.add_members(op.group_id, set(members))

    async def _rename_group(self, op: RenameGroup) -> None:
        linked = self.groups.get(op.group_id)
        if linked is None:
            return
        ops = [{"op": "replace", "path": "displayName", "value": op.after}]
        if not await self._patch_group(op.group_id, linked, ops):
            return
        self.groups[op.group_id] = LedgerGroup(linked.scim_id, op.after, linked.members)
        self.store.put_group(op.group_id, linked.scim_id, op.after)
        self._outcome(op, "updated")

    async def _patch_group(
        self, graph_id: str, linked: LedgerGroup, ops: list[dict[str, Any]]
    ) -> bool:
        try:
            await self.sink.patch_group(linked.scim_id, ops)
        except NotFoundError:
            # The tag was deleted in Learnster: forget it, the next cycle creates it again.
            self.groups.pop(graph_id, None)
            self.store.drop_group(graph_id)
            return False
        return True

    async def _add_members(self, op: AddMembers) -> None:
        linked = self.groups.get(op.group_id)
        if linked is None:
            self._outcome(op, "skipped")  # the group's create failed: next cycle
            return
        present = self._linked_members(op.user_ids)
        if not present:
            self._outcome(op, "skipped")
            return
        if not await self._patch_group(
            op.group_id, linked, [add_members_operation(present.values())]
        ):
            return
        added = set(present)
        current = self.groups[op.group_id]
        self.groups[op.group_id] = LedgerGroup(
            current.scim_id, current.display_name, current.members | added
        )
        self.store.add_members(op.group_id, added)
        self._outcome(op, "updated")

    def _linked_members(self, user_ids: Iterable[str]) -> dict[str, str]:
        """Graph id -> Learnster id of the users that exist in Learnster; those whose own
        create failed are left out, and a later cycle adds them."""
        return {uid: sid for uid in user_ids if (sid := self._resolve(uid)) is not None}

    async def _remove_members(self, op: RemoveMembers) -> None:
        linked = self.groups.get(op.group_id)
        if linked is None:
            return
        resolved = [(uid, self._resolve(uid)) for uid in op.user_ids]
        ops = [
            {"op": "remove", "path": f'members[value eq "{sid}"]'}
            for _, sid in resolved
            if sid is not None
        ]
        if ops and not await self._patch_group(op.group_id, linked, ops):
            return
        current = self.groups[op.group_id]
        self.groups[op.group_id] = LedgerGroup(
            current.scim_id, current.display_name, current.members - set(op.user_ids)
        )
        self.store.remove_members(op.group_id, op.user_ids)
        self._outcome(op, "updated")

    async def _delete_group(self, op: DeleteGroup) -> None:
        linked = self.groups.get(op.group_id)
        if linked is None:
            return
        with contextlib.suppress(NotFoundError):
            await self.sink.delete_group(linked.scim_id)
        self.groups.pop(op.group_id, None)
        self.store.drop_group(op.group_id)
        self._outcome(op, "deleted")


async def _while_sending(
    sending: Awaitable[None],
    sink: ScimSink,
    round_size: int,
    pieces: list[Callable[[], None]],
) -> None:
    """Await ``sending``, running ``pieces`` one by one, each once a round is written.

    A round is ``round_size`` requests (or the end of the sending): their answers take a
    round trip, time in which the event loop has nothing else to do. Pieces left when the
    sending ends stay in the list.
    """
    task = asyncio.ensure_future(sending)
    try:
        while pieces and not task.done():
            waiting = asyncio.ensure_future(sink.watch_sends(round_size).wait())
            try:
                await asyncio.wait({task, waiting}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                waiting.cancel()
            pieces.pop(0)()
        await task
    finally:
        task.cancel()  # only if we are cancelled or a piece failed: it is done otherwise


async def _run_bounded(
    items: Iterable[Operation], worker: Callable[[Operation], Awaitable[None]], width: int
) -> None:
    """Run ``worker`` over ``items`` with at most ``width`` in flight (no task per item)."""
    iterator = iter(items)

    async def drain() -> None:
        for item in iterator:
            await worker(item)

    try:
        # A TaskGroup cancels the other workers as soon as one raises (a stopped cycle).
        async with asyncio.TaskGroup() as group:
            for _ in range(max(1, width)):
                group.create_task(drain())
    except BaseExceptionGroup as failed:
        raise failed.exceptions[0] from None


def labels_of(users: UserSnapshot, groups: GroupSnapshot) -> dict[str, str]:
    """Object id -> UPN or group name, for people reading reports and logs."""
    labels = {uid: user.user_principal_name for uid, (user, _) in users.items()}
    labels.update({gid: group.display_name for gid, (group, _) in groups.items()})
    return labels


async def run_cycle(
    config: Config,
    store: Store,
    *,
    full: bool = False,
    dry_run: bool = False,
    allow_deletions: bool = False,
    source: GraphSource | None = None,
    sink: ScimSink | None = None,
    now: datetime | None = None,
    approved: list[dict[str, Any]] | None = None,
    cancel: threading.Event | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> CycleReport:
    """One synchronisation cycle. The caller holds the store's lock.

    ``approved`` (``syncd apply``): only operations of a reviewed plan that the fresh plan
    still contains are applied; the others are stale, skipped and reported.
    """
    now = now or datetime.now(UTC)
    started = time.monotonic()
    report = CycleReport(dry_run=dry_run)
    own_source = source is None
    source = source or GraphSource(config)
    run_id = None if dry_run else store.start_run("full" if full else "delta", dry_run)
    try:
        full = full or _full_read_due(store, config, now)
        fingerprint = config_fingerprint(config)
        # Steady state: the last cycle converged under this configuration, so only what the
        # delta touches can need an operation.
        steady = (
            approved is None
            and store.get_meta("converged") == fingerprint
            and not store.get_meta("groups_in_doubt")
        )
        cpu = time.process_time()
        read = await read_directory(
            source,
            store,
            full=full,
            load_previous=store.load_snapshot,
            may_skip=steady,
            load_subset=(lambda u, g: (store.load_users(u), store.load_groups(g)))
            if steady and config.scope.mode == "all"
            else None,
        )
        report.mode = "full" if read.full else "delta"
        report.graph_requests = source.requests
        report.timings["read_cpu_seconds"] = time.process_time() - cpu
        cpu = time.process_time()
        report.problems.extend(read.problems)
        if read.quiet:
            # Planning is a pure function of snapshot, ledger and configuration; none of them
            # changed since a cycle that converged, so the plan would be empty.
            if not dry_run:
                store.save_delta_links(read.links)
            report.planned = False
            return report
        if not dry_run:
            store.set_meta("converged", None)

        mapping_options = MappingOptions(
            config.sync.phone_default_region, config.user_mapping_overrides
        )
        linked_users: set[str] | None = None
        incremental = _incremental_inputs(store, read) if read.incremental else None
        if incremental is not None:
            report.incremental = True
            scope, ledger_users, ledger_groups, linked_users, member_candidates = incremental
        else:
            if read.incremental:  # an ambiguity the partial view cannot settle: see everything
                read = await _refold_fully(store, read)
            scope_ids: set[str] = set()
            if config.scope.mode == "groups":
                scope_ids, errors = resolve_scope_groups(config.scope.groups, read.groups)
                if errors:
                    raise ConfigError("[scope] groups: " + "; ".join(errors))
            scope = compute_scope(
                read.users,
                read.groups,
                mode=config.scope.mode,
                scope_groups=scope_ids,
                nested=config.scope.nested,
                sync_groups=config.scope.effective_sync_groups,
            )
            ledger_users = store.ledger_users()
            ledger_groups = store.ledger_groups()
            member_candidates = None
        report.labels = labels_of(read.users, read.groups)
        # Safe to save at any point of the cycle: the ledger, not the snapshot, says what
        # Learnster holds; an interrupted cycle is planned again from it. A whole directory is
        # saved before planning, so its records can be dropped as they are mapped. A delta's
        # few records are written while the first round of requests is out (~45 ms at 100,000
        # users, measured), and the WAL checkpoint that makes due while the second one is.
        saves: list[Callable[[], None]] = []
        if not dry_run and read.incremental:
            saves = [
                functools.partial(
                    store.update_snapshot,
                    read.users,
                    dict(read.groups),
                    read.links,
                    checkpoint=False,
                ),
                store.checkpoint,
            ]
        elif not dry_run:
            store.save_snapshot(
                read.users,
                read.groups,
                read.links,
                full_read_at=now if read.full and read.complete else None,
            )
        user_targets, group_targets, problems = build_targets(
            read.users,
            read.groups,
            scope,
            ledger_users,
            mapping_options,
            report_for=None if read.full else read.changed_users,
            member_candidates=member_candidates,
            consume=not dry_run and not saves,
        )
        report.problems.extend(problems)
        for problem in report.problems:
            (log.error if problem.severity == "error" else log.warning)("%s", problem)
        report.plan = plan(
            user_targets,
            ledger_users,
            group_targets,
            ledger_groups,
            PlanOptions(
                allow_removals=read.complete,
                on_hard_delete=config.sync.on_hard_delete,
                max_deletions=config.sync.max_deletions,
                max_deletion_percent=config.sync.max_deletion_percent,
                allow_deletions=allow_deletions,
                member_batch_size=config.sync.member_batch_size,
            ),
            linked_users=linked_users,
            linked_count=store.ledger_user_count() if linked_users is not None else None,
        )
        if approved is not None:
            report.plan, report.stale = restrict_plan(report.plan, approved)
        if not dry_run:
            report.plan, deferred = defer(report.plan, store.deferred(now))
            for op in deferred:
                report.count(op.kind, "deferred")
        report.held = len(report.plan.held)
        report.planned_counts = report.plan.counts()
        report.timings["plan_cpu_seconds"] = time.process_time() - cpu
        if dry_run:
            return report
        del user_targets, group_targets, ledger_users  # the plan holds what is still needed
        applier_groups = ledger_groups
        read.groups.clear()  # saved, or copied for the save to come; applying needs labels
        phases, report.plan = list(report.plan.phases), Plan(held=report.plan.held)
        try:
            # After a cycle whose tag creates were retried, check those tags once more even
            # when nothing else is to be sent (the only reads a quiet cycle may make).
            if phases or store.get_meta("groups_in_doubt"):
                own_sink = sink is None
                sink = sink or ScimSink.from_config(config)
                try:
                    applier = Applier(
                        sink,
                        store,
                        report,
                        report.labels,
                        config.sync.member_batch_size,
                        cancel=cancel,
                        progress=progress,
                        run_id=run_id,
                        now=now,
                        groups=applier_groups,
                        lazy=report.incremental,
                    )
                    cpu = time.process_time()
                    await applier.apply(
                        phases,
                        config.learnster.max_concurrency,
                        meanwhile=saves,
                    )
                    report.timings["apply_cpu_seconds"] = time.process_time() - cpu
                finally:
                    report.scim_requests = dict(sink.requests)
                    if own_sink:
                        await sink.aclose()
        finally:
            while saves:  # nothing was sent, or too little to hide them behind
                saves.pop(0)()
        if report.failures:
            report.exit_code = ExitCode.PARTIAL
        if report.quarantined:
            report.message = (
                f"quarantine: more than {QUARANTINE_FAILURE_SHARE:.0%} of the operations failed, "
                "so the rest were not sent; see 'syncd status' for the errors"
            )
        if report.interrupted:
            report.message = "stopped on request; the operations not yet sent follow next cycle"
        if not read.complete:
            report.exit_code = ExitCode.AUTH
            report.message = (
                "the Graph read did not complete, so no deactivation or deletion was planned "
                f"(creates and updates of what was read were applied): {'; '.join(read.errors)}"
            )
        if report.held:
            report.exit_code = ExitCode.GUARD
            report.message = (
                f"deletion guard: {report.held} deactivations/deletions held (max_deletions = "
                f"{config.sync.max_deletions}, max_deletion_percent = "
                f"{config.sync.max_deletion_percent}); review them with 'syncd plan', release "
                "them once with 'syncd sync --allow-deletions'"
            )
        store.set_guard(report.held, report.message if report.held else "", now)
        converged = (
            read.complete
            and approved is None
            and not report.failures
            and not report.interrupted
            and not report.quarantined
            and not report.held
            and not any("deferred" in c for c in report.outcomes.values())
            and not store.escrows()
        )
        store.set_meta("converged", fingerprint if converged else None)
        return report
    except StopCycle as exc:
        report.exit_code = ExitCode.AUTH
        report.message = str(exc)
        return report
    except ConfigError as exc:
        report.exit_code = ExitCode.USAGE
        report.message = str(exc)
        return report
    except SourceError as exc:
        report.exit_code = ExitCode.AUTH
        report.message = f"directory read incomplete, nothing applied: {exc}"
        return report
    finally:
        report.duration_seconds = time.monotonic() - started
        report.graph_requests = source.requests
        if own_source:
            await source.aclose()
        if run_id is not None:
            counts = {kind: dict(c) for kind, c in report.outcomes.items()}
            store.finish_run(
                run_id, counts, int(report.exit_code), report.message or report.summary()
            )


def directory_user_label(user: DirectoryUser) -> str:
    return user.user_principal_name or user.id
