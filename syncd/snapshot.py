"""Pure folding of Graph delta rounds into the directory snapshot, and scope/target derivation."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from syncd.mapping import ACTIVE, MANAGER, MappingOptions, map_user
from syncd.model import (
    GROUP_TYPE,
    MAX_VALUE_LENGTH,
    USER_STRING_PROPERTIES,
    USER_TYPE,
    Decoded,
    DirectoryGroup,
    DirectoryUser,
    Problem,
    clean_text,
    decode_user,
)
from syncd.planner import GroupTarget, LedgerUser, PackedAttrs, UserTarget, members_within

# id -> (record, removed) where removed is None, "changed" (recycle bin) or "deleted".
UserSnapshot = dict[str, tuple[DirectoryUser, str | None]]
GroupSnapshot = dict[str, tuple[DirectoryGroup, str | None]]


def _decode_delta_user(obj: Mapping[str, Any], base: DirectoryUser | None) -> Decoded:
    """Decode one users/delta object, merged over ``base`` (its properties before the round)."""
    merged: dict[str, Any] = _graph_shape(base) if base is not None else {}
    merged.update({k: v for k, v in obj.items() if k != "manager@delta"})
    if "manager@delta" in obj:
        merged["manager"] = _manager_from_delta(obj["manager@delta"])
    return decode_user(merged)


def fold_users(
    previous: Mapping[str, tuple[DirectoryUser, str | None]],
    objects: Mapping[str, Mapping[str, Any]],
    removed: Mapping[str, str],
) -> tuple[UserSnapshot, list[Problem]]:
    """The user snapshot after an incremental delta round (full rounds: FullUserRound).

    Such a round carries only changed properties, merged over what the snapshot holds. A
    record that fails to decode keeps its previous state: bad data never removes anyone.
    """
    problems: list[Problem] = []
    result: UserSnapshot = dict(previous)
    for object_id, obj in objects.items():
        before = previous.get(object_id)
        decoded = _decode_delta_user(obj, before[0] if before is not None else None)
        problems.extend(decoded.problems)
        if decoded.user is not None:
            result[object_id] = (decoded.user, None)
    for object_id, reason in removed.items():
        before = result.get(object_id)
        if before is not None:
            result[object_id] = (before[0], reason)
    return result, problems


class FullUserRound:
    """A full users round decoded page by page, so raw Graph objects never pile up.

    At 100,000 users the raw JSON objects of a whole round would cost as much memory as the
    snapshot itself; here each one is decoded as it arrives and dropped.
    """

    def __init__(self) -> None:
        self.users: dict[str, DirectoryUser] = {}
        self.failed: set[str] = set()
        self.removed: dict[str, str] = {}
        self.problems: list[Problem] = []

    def add(self, obj: Mapping[str, Any]) -> None:
        object_id = obj.get("id")
        removed = obj.get("@removed")
        if isinstance(removed, Mapping) and isinstance(object_id, str):
            self.removed[object_id] = "deleted" if removed.get("reason") == "deleted" else "changed"
            return
        decoded = _decode_delta_user(obj, None)
        self.problems.extend(decoded.problems)
        if decoded.user is not None:
            self.users[decoded.user.id] = decoded.user
        elif isinstance(object_id, str):
            self.failed.add(object_id)

    def finish(
        self, previous: Mapping[str, tuple[DirectoryUser, str | None]], *, complete: bool
    ) -> UserSnapshot:
        """The snapshot after the round.

        Complete: a user the snapshot holds but the round does not is gone (recycle bin or
        deleted; a full read cannot tell, so it counts as a soft delete). A record that failed
        to decode keeps its previous state.
        """
        if not complete:  # partial: what was read updates the snapshot, nothing is removed
            result: UserSnapshot = dict(previous)
            result.update((uid, (user, None)) for uid, user in self.users.items())
            return result
        result = {uid: (user, None) for uid, user in self.users.items()}
        for object_id in self.failed:
            if object_id in previous:
                result[object_id] = previous[object_id]
        for object_id, reason in self.removed.items():
            before = previous.get(object_id) or result.get(object_id)
            if before is not None:
                result[object_id] = (before[0], reason)
        for object_id, (user, was_removed) in previous.items():
            if object_id not in result and was_removed != "deleted":
                result[object_id] = (user, "changed")
        return result


def fold_groups(
    previous: Mapping[str, tuple[DirectoryGroup, str | None]],
    objects: Mapping[str, Mapping[str, Any]],
    removed: Mapping[str, str],
    *,
    full: bool,
) -> tuple[GroupSnapshot, list[Problem]]:
    """The group snapshot after one delta round (members@delta adds and removes)."""
    problems: list[Problem] = []
    result: GroupSnapshot = {} if full else dict(previous)
    for object_id, obj in objects.items():
        before = previous.get(object_id)
        base = before[0] if before is not None and not full else None
        users = set(base.user_members) if base else set()
        groups = set(base.group_members) if base else set()
        # (odata type, id, removed) triples, as GraphSource compacts them
        for kind, member_id, was_removed in obj.get("members@delta") or []:
            if was_removed:
                users.discard(member_id)
                groups.discard(member_id)
            elif kind == USER_TYPE:
                users.add(member_id)
            elif kind == GROUP_TYPE and member_id != object_id:
                groups.add(member_id)
            # devices, contacts and service principals are not Learnster tag members
        raw_name = obj.get("displayName", base.display_name if base else "")
        name, notes = clean_text(raw_name) if isinstance(raw_name, str) else ("", [])
        if not name or len(name) > MAX_VALUE_LENGTH:
            why = "without a name" if not name else f"name over {MAX_VALUE_LENGTH} characters"
            problems.append(Problem(object_id, "displayName", f"group {why}: skipped", "error"))
            if before is not None:
                result[object_id] = before
            continue
        if notes:
            problems.append(Problem(object_id, "displayName", f"sent cleaned ({', '.join(notes)})"))
        result[object_id] = (
            DirectoryGroup(object_id, name, frozenset(users), frozenset(groups)),
            None,
        )
    for object_id, reason in removed.items():
        before = previous.get(object_id) or result.get(object_id)
        if before is not None:
            result[object_id] = (before[0], reason)
    if full:
        for object_id, (group, was_removed) in previous.items():
            if object_id not in result and was_removed != "deleted":
                result[object_id] = (group, "deleted")
    return result, problems


def _graph_shape(user: DirectoryUser) -> dict[str, Any]:
    shaped: dict[str, Any] = dict.fromkeys(USER_STRING_PROPERTIES)
    shaped.update(user.properties)
    shaped["id"] = user.id
    shaped["accountEnabled"] = user.account_enabled
    shaped["businessPhones"] = list(user.business_phones)
    shaped["manager"] = {"id": user.manager_id} if user.manager_id else None
    return shaped


def _manager_from_delta(value: Any) -> dict[str, str] | None:
    if not isinstance(value, list):
        return None
    current = None
    for entry in value:
        if not isinstance(entry, Mapping) or not isinstance(entry.get("id"), str):
            continue
        current = None if isinstance(entry.get("@removed"), Mapping) else {"id": entry["id"]}
    return current


@dataclass
class Scope:
    """Which users and groups syncd provisions."""

    users: set[str] = field(default_factory=set)
    groups: set[str] = field(default_factory=set)


def resolve_scope_groups(
    names: tuple[str, ...], groups: GroupSnapshot
) -> tuple[set[str], list[str]]:
    """Group ids for the configured scope groups (object ids or exact display names)."""
    by_name: dict[str, list[str]] = {}
    for gid, (group, removed) in groups.items():
        if removed is None:
            by_name.setdefault(group.display_name.casefold(), []).append(gid)
    found: set[str] = set()
    errors: list[str] = []
    for name in names:
        if name in groups and groups[name][1] is None:
            found.add(name)
            continue
        matches = by_name.get(name.casefold(), [])
        if len(matches) == 1:
            found.add(matches[0])
        elif not matches:
            errors.append(f"scope group {name!r} not found in the directory")
        else:
            errors.append(f"scope group {name!r} matches {len(matches)} groups; use its object id")
    return found, errors


def compute_scope(
    users: UserSnapshot,
    groups: GroupSnapshot,
    *,
    mode: str,
    scope_groups: set[str],
    nested: bool,
    sync_groups: str,
) -> Scope:
    """Users in scope and groups to provision as tags (DESIGN §3 [scope])."""
    present_users = {uid for uid, (_, removed) in users.items() if removed is None}
    present_groups = {gid for gid, (_, removed) in groups.items() if removed is None}
    if mode == "all":
        in_scope = present_users
    else:
        in_scope = set()
        seen: set[str] = set()
        pending = list(scope_groups)
        while pending:  # breadth-first; `seen` stops a group that contains itself
            gid = pending.pop()
            if gid in seen or gid not in present_groups:
                continue
            seen.add(gid)
            group = groups[gid][0]
            in_scope |= group.user_members & present_users
            if nested:
                pending.extend(group.group_members)
    if sync_groups == "none":
        tags: set[str] = set()
    elif sync_groups == "scope":
        tags = scope_groups & present_groups
    elif sync_groups == "with_members":
        tags = {g for g in present_groups if groups[g][0].user_members & in_scope}
    else:
        tags = present_groups
    return Scope(users=in_scope, groups=tags)


def _duplicate_upns(
    users: UserSnapshot, in_scope: set[str], ledger: Mapping[str, LedgerUser]
) -> dict[str, str]:
    """Users whose UPN another in-scope user also has: id -> the id that keeps it.

    userName is Learnster's unique key, so only one of them can be provisioned: the one already
    linked, else the lowest object id (deterministic across cycles).
    """
    by_upn: dict[str, list[str]] = {}
    for uid in in_scope & users.keys():  # users may be a slice (incremental planning)
        user, removed = users[uid]
        if removed is None:
            by_upn.setdefault(user.user_principal_name.casefold(), []).append(uid)
    losers: dict[str, str] = {}
    for ids in by_upn.values():
        if len(ids) > 1:
            keeper = min(ids, key=lambda i: (i not in ledger, i))
            losers.update({i: keeper for i in ids if i != keeper})
    return losers


def build_targets(
    users: UserSnapshot,
    groups: GroupSnapshot,
    scope: Scope,
    ledger: Mapping[str, LedgerUser],
    options: MappingOptions,
    report_for: set[str] | None = None,
    member_candidates: set[str] | None = None,
    consume: bool = False,
) -> tuple[dict[str, UserTarget], dict[str, GroupTarget], list[Problem]]:
    """Desired Learnster state from the snapshot: mapped users, soft deletes, tags.

    Mapping problems are returned for ``report_for`` only (None: everyone), so an unchanged
    user's bad phone number is reported when it changes, not every night.
    ``consume``: each user record is removed from ``users`` once mapped, so a big directory's
    snapshot and its targets are never both in memory whole.
    """
    problems: list[Problem] = []
    targets: dict[str, UserTarget] = {}
    duplicates = _duplicate_upns(users, scope.users, ledger)
    for uid, other in duplicates.items():
        problems.append(
            Problem(
                uid,
                "userPrincipalName",
                f"{users[uid][0].user_principal_name!r} is also the UPN of {other}: user skipped",
                "error",
            )
        )
    for uid in list(users):
        user, removed = users.pop(uid) if consume else users[uid]
        if removed == "deleted":
            targets[uid] = UserTarget({}, hard_deleted=True)
            continue
        if uid in duplicates:
            continue  # neither created nor changed until the directory is unambiguous
        if removed is None and uid in scope.users:
            attrs, user_problems = map_user(user, options)
            if report_for is None or uid in report_for:
                problems.extend(user_problems)
            manager = attrs.get(MANAGER)
            if manager is not None and manager not in scope.users:
                del attrs[MANAGER]  # a manager outside scope does not exist in Learnster
            targets[uid] = UserTarget(PackedAttrs(attrs))
        elif uid in ledger:
            # Recycle bin or out of scope: the soft delete sends only active=false.
            targets[uid] = UserTarget({**ledger[uid].attrs, ACTIVE: False})
    members_ok = (
        {uid for uid, t in targets.items() if not t.hard_deleted}
        if member_candidates is None
        else member_candidates
    )
    group_targets = {
        gid: GroupTarget(
            groups[gid][0].display_name, members_within(groups[gid][0].user_members, members_ok)
        )
        for gid in scope.groups
    }
    return targets, group_targets, problems
