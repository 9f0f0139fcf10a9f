"""The prepare stage: what planning needs besides the read, for the whole directory or a slice.

Two ways to the same plan (docs/ARCHITECTURE.md, "Fast paths"): a whole-directory plan reads
the whole ledger; a delta's incremental plan reads only the records and ids the delta touches.
A test plans both ways and compares them.
"""

from __future__ import annotations

from dataclasses import dataclass

from syncd.config import Config
from syncd.core.ledger import LedgerGroup, LedgerUser
from syncd.core.records import Presence, user_name_key
from syncd.core.scope import Scope, compute_scope, resolve_scope_groups
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
        inputs = incremental_inputs(state, read)
        if inputs is not None:
            return Prepared(read, inputs)
        read = refold_fully(state, read)
    return Prepared(read, whole_directory_inputs(state, read, config))


def whole_directory_inputs(state: State, read: DirectoryRead, config: Config) -> PlanningInputs:
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
    return PlanningInputs(scope, state.ledger.users(), state.ledger.groups())


def incremental_inputs(state: State, read: DirectoryRead) -> PlanningInputs | None:
    """Scope, ledger slices and id sets for planning only what a delta touched (mode "all").

    Besides the changed users, the reports of anyone who appeared or disappeared are
    re-targeted (their manager reference depends on it). None when a UPN clash needs the
    whole directory to be decided.
    """
    snapshot, ledger = state.snapshot, state.ledger
    changed = set(read.users)
    appeared_or_left = {
        uid for uid, entry in read.users.items() if _was_present(read, uid) != entry.present
    }
    reports = snapshot.reports_of(appeared_or_left) - changed if appeared_or_left else set()
    read.users.update(snapshot.users(reports))
    mine_by_key: dict[str, set[str]] = {}
    for uid, entry in read.users.items():
        if entry.present:
            mine_by_key.setdefault(user_name_key(entry.record.user_principal_name), set()).add(uid)
    for key, ids in snapshot.ids_by_user_name(mine_by_key).items():
        if ids - read.users.keys() or len(mine_by_key[key]) > 1:
            return None
    # Only the ids the plan can look at: the managers of these users and the members of
    # these groups (not 100,000-id sets).
    referenced = {e.record.manager_id for e in read.users.values() if e.record.manager_id}
    for group in read.groups.values():
        referenced |= group.record.user_members
    outside = snapshot.presence_of(referenced - read.users.keys())
    present = {uid for uid, presence in outside.items() if presence is Presence.PRESENT}
    live = {uid for uid, presence in outside.items() if presence is not Presence.DELETED}
    for uid, entry in read.users.items():
        if entry.present:
            present.add(uid)
        if entry.presence is not Presence.DELETED:
            live.add(uid)
    groups = {gid for gid, entry in read.groups.items() if entry.present}
    affected = set(read.users)
    return PlanningInputs(
        scope=Scope(users=present, groups=groups),
        ledger_users=ledger.users_for(affected),
        ledger_groups=ledger.groups_for(set(read.groups)),
        linked_users=ledger.linked_among(referenced | affected),
        linked_count=ledger.user_count(),
        member_candidates=live,
    )


def _was_present(read: DirectoryRead, uid: str) -> bool:
    before = read.previous_users.get(uid)
    return before is not None and before.present


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
