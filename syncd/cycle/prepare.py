"""The prepare stage: what planning needs besides the read, for the whole directory or a slice.

Two ways to the same plan (docs/ARCHITECTURE.md, "Fast paths"): a whole-directory plan reads
the whole ledger; a delta's incremental plan reads only the records and ids the delta touches.
A test plans both ways and compares them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from syncd.config import Config
from syncd.core.ledger import LedgerGroup, LedgerUser
from syncd.core.records import Presence, user_name_key
from syncd.core.scope import (
    Scope,
    ScopeRules,
    compute_scope,
    resolve_scope_groups,
    scope_group_members,
    tags,
)
from syncd.cycle.read import DirectoryRead
from syncd.errors import ConfigError
from syncd.ports import State


@dataclass
class PlanningInputs:
    """Scope and ledger for one plan.

    Incremental (``linked_users`` set): the ledger holds only the users and groups the delta
    touches, ``linked_users`` those of the ids the plan can refer to that Learnster holds,
    ``linked_count`` how many users Learnster holds in all, and ``member_candidates`` the
    users a tag may list.
    """

    scope: Scope
    ledger_users: dict[str, LedgerUser]
    ledger_groups: dict[str, LedgerGroup]
    linked_users: set[str] | None = None
    linked_count: int | None = None
    member_candidates: set[str] | None = None
    rules: ScopeRules = field(default_factory=ScopeRules)

    @property
    def incremental(self) -> bool:
        return self.linked_users is not None


@dataclass
class Prepared:
    """The read to plan from (widened to the whole snapshot if need be) and its inputs."""

    read: DirectoryRead
    inputs: PlanningInputs


def prepare(state: State, read: DirectoryRead, config: Config) -> Prepared:
    """The planning inputs for ``read``; the read itself is widened to the whole snapshot
    when a slice cannot settle the plan (a UPN clash with a record outside it)."""
    if read.incremental:
        inputs = incremental_inputs(state, read, config)
        if inputs is not None:
            return Prepared(read, inputs)
        read = refold_fully(state, read)
    return Prepared(read, whole_directory_inputs(state, read, config))


def scope_rules(config: Config, read: DirectoryRead) -> ScopeRules:
    """``[scope]`` as rules: its groups resolved in the directory, or the app's assignments."""
    scope = config.scope
    scope_groups: set[str] = set()
    assigned: frozenset[str] = frozenset()
    if scope.mode == "groups":
        scope_groups, errors = resolve_scope_groups(scope.groups, read.groups)
        if errors:
            raise ConfigError("[scope] groups: " + "; ".join(errors))
    elif scope.mode == "assigned":
        if read.assignments is None:  # never so: the read stage reads them in this mode
            raise ConfigError('[scope] mode = "assigned": the assignments were not read')
        scope_groups, assigned = set(read.assignments.groups), read.assignments.users
    return ScopeRules(
        mode=scope.mode,
        scope_groups=frozenset(scope_groups),
        assigned_users=assigned,
        nested=scope.nested,
        sync_groups=scope.effective_sync_groups,
        filters=scope.filters,
    )


def whole_directory_inputs(state: State, read: DirectoryRead, config: Config) -> PlanningInputs:
    rules = scope_rules(config, read)
    scope = compute_scope(read.users, read.groups, rules)
    return PlanningInputs(scope, state.ledger.users(), state.ledger.groups(), rules=rules)


def incremental_inputs(state: State, read: DirectoryRead, config: Config) -> PlanningInputs | None:
    """Scope, ledger slices and id sets for planning only what a delta touched.

    Besides the changed users, the reports of anyone who appeared, disappeared or may have
    moved in or out of scope are re-targeted (their manager reference depends on it), and so
    are the users who joined or left a scope group. None when only the whole directory can
    decide: a UPN clash with a record outside the slice, new assignments, a change in how
    scope groups nest, a user the directory held who is to be created now.
    """
    snapshot, ledger = state.snapshot, state.ledger
    rules = scope_rules(config, read)
    if rules.mode == "assigned" and read.assignments != snapshot.assignments():
        return None
    members = _scope_group_members(state, read, rules)
    if members is None:
        return None
    changed = set(read.users)
    # Whoever entered or left the scope (appeared, disappeared, joined or left a scope group,
    # passes the filters now or no more): their reports' manager references depend on it.
    passes: dict[str, bool] = {}  # uid -> passes the filters now (each user evaluated once)
    moved = members.changed | {uid for uid in changed if _moved(read, uid, rules, passes)}
    reports = snapshot.reports_of(moved) - changed if moved else set()
    read.users.update(snapshot.users(reports | (members.changed - changed)))
    if _clashes_outside(state, read):
        return None
    # Only the ids the plan can look at: the managers of these users and the members of
    # these groups (not 100,000-id sets).
    managers = {e.record.manager_id for e in read.users.values() if e.record.manager_id}
    referenced = set(managers)
    for group in read.groups.values():
        referenced |= group.record.user_members
    outside = snapshot.presence_of(referenced - read.users.keys())
    live = {uid for uid, presence in outside.items() if presence is not Presence.DELETED}
    live |= {uid for uid, entry in read.users.items() if entry.presence is not Presence.DELETED}
    in_scope = _in_scope(state, read, rules, members.users, outside, managers, passes)
    affected = set(read.users)
    linked = ledger.linked_among(referenced | affected)
    if _joins_learnster(read, changed, in_scope, linked):
        return None
    return PlanningInputs(
        scope=Scope(users=in_scope, groups=_touched_tags(read, rules)),
        ledger_users=ledger.users_for(affected),
        ledger_groups=ledger.groups_for(set(read.groups)),
        linked_users=linked,
        linked_count=ledger.user_count(),
        member_candidates=live,
        rules=rules,
    )


@dataclass
class _Members:
    users: set[str]  # the users the scope groups hold now (all users, in mode all)
    changed: set[str]  # those who joined or left a scope group in this delta


def _scope_group_members(state: State, read: DirectoryRead, rules: ScopeRules) -> _Members | None:
    """The scope groups' members, now, and who of them changed (None: a nesting changed)."""
    if rules.mode == "all":
        return _Members(set(), set())
    groups = dict(state.snapshot.groups(rules.scope_groups - read.groups.keys()))
    groups.update(read.groups)
    closure: set[str] = set()
    pending = list(rules.scope_groups)
    while pending:
        gid = pending.pop()
        if gid in closure:
            continue
        closure.add(gid)
        if rules.nested and gid in groups:
            unseen = set(groups[gid].record.group_members) - closure - groups.keys()
            groups.update(state.snapshot.groups(unseen))
            pending.extend(groups[gid].record.group_members)
    changed: set[str] = set()
    for gid in closure & read.groups.keys():
        before, after = read.previous_groups.get(gid), read.groups[gid]
        old = before.record if before is not None and before.present else None
        new = after.record if after.present else None
        old_nested = old.group_members if old else frozenset()
        new_nested = new.group_members if new else frozenset()
        if rules.nested and old_nested != new_nested:
            return None
        changed |= (old.user_members if old else frozenset()) ^ (
            new.user_members if new else frozenset()
        )
    members = scope_group_members(groups, rules.scope_groups, nested=rules.nested)
    return _Members(members, changed)


def _clashes_outside(state: State, read: DirectoryRead) -> bool:
    """Whether a userName of the slice is held by a present user outside it, or twice in it."""
    mine_by_key: dict[str, set[str]] = {}
    for uid, entry in read.users.items():
        if entry.present:
            mine_by_key.setdefault(user_name_key(entry.record.user_principal_name), set()).add(uid)
    return any(
        ids - read.users.keys() or len(mine_by_key[key]) > 1
        for key, ids in state.snapshot.ids_by_user_name(mine_by_key).items()
    )


def _in_scope(
    state: State,
    read: DirectoryRead,
    rules: ScopeRules,
    group_members: set[str],
    outside: Mapping[str, Presence],
    managers: set[str],
    passes: dict[str, bool],
) -> set[str]:
    """The slice's users in scope, with the referenced users outside it that may be."""
    candidates = {uid for uid, entry in read.users.items() if entry.present}
    candidates |= {uid for uid, presence in outside.items() if presence is Presence.PRESENT}
    if rules.mode != "all":
        candidates &= group_members | rules.assigned_users
    if not rules.filters:
        return candidates
    # A manager outside the slice decides whether a report's manager reference is sent: read
    # the few there are. Tag members outside it are not in scope-dependent ways.
    records = {uid: e.record for uid, e in read.users.items()}
    records.update(
        (uid, e.record) for uid, e in state.snapshot.users(managers & outside.keys()).items()
    )
    return {
        uid
        for uid in candidates
        if uid in records and (passes[uid] if uid in passes else rules.passes_filters(records[uid]))
    }


def _joins_learnster(
    read: DirectoryRead, changed: set[str], in_scope: set[str], linked: set[str]
) -> bool:
    """Whether a user of the delta the directory held before, and Learnster does not, is to be
    created now (enabled, or in scope now): their reports and the tags they are a member of
    lie outside the slice, which found no Learnster id for them until now."""
    for uid in changed & in_scope - linked:
        before, now = read.previous_users.get(uid), read.users[uid]
        if before is not None and before.present and now.present and now.record.account_enabled:
            return True
    return False


def _touched_tags(read: DirectoryRead, rules: ScopeRules) -> set[str]:
    present = {gid for gid, entry in read.groups.items() if entry.present}
    return tags(read.groups, present, set(), rules)


def _moved(read: DirectoryRead, uid: str, rules: ScopeRules, passes: dict[str, bool]) -> bool:
    """Whether a user of the delta is there now and was not, or the other way round, or
    passes the filters now and did not (or did and does not)."""
    before, now = read.previous_users.get(uid), read.users[uid]
    was = before is not None and before.present
    if was != now.present:
        return True
    if not was or not rules.filters or before is None:
        return False
    passes[uid] = rules.passes_filters(now.record)
    return rules.passes_filters(before.record) != passes[uid]


def refold_fully(state: State, read: DirectoryRead) -> DirectoryRead:
    """Fall back from a partial view: fold the same delta over the whole snapshot."""
    previous_users, previous_groups = state.snapshot.load()
    users = dict(previous_users)
    users.update({uid: e for uid, e in read.users.items() if uid in read.changed_users})
    for uid, entry in read.users.items():
        if not entry.present:
            users[uid] = entry
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
