"""Pure desired state: what Learnster should hold for each user and tag in scope."""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any, NamedTuple

from syncd.core.attrs import PackedAttrs
from syncd.core.ledger import LedgerUser
from syncd.core.mapping import ACTIVE, MANAGER, MappingOptions, map_user
from syncd.core.records import GroupSnapshot, Presence, Problem, UserSnapshot, user_name_key
from syncd.core.scope import Scope


@dataclass(frozen=True, slots=True)
class UserTarget:
    """What Learnster should hold for one directory user (flat attributes incl. ``active``)."""

    attrs: Mapping[str, Any]
    hard_deleted: bool = False


@dataclass(frozen=True, slots=True)
class GroupTarget:
    """What Learnster should hold for one group (tag): its name and direct user members."""

    display_name: str
    members: frozenset[str] = frozenset()


class Targets(NamedTuple):
    """Desired Learnster state: a target per user and per tag, and what was wrong on the way."""

    users: dict[str, UserTarget]
    groups: dict[str, GroupTarget]
    problems: list[Problem]


def members_within(members: frozenset[str], allowed: AbstractSet[str]) -> frozenset[str]:
    """``members & allowed``, sharing ``members`` when nothing is left out (the usual case):
    400 groups with 500,000 memberships would otherwise be held twice."""
    return members if members <= allowed else members & allowed


def duplicate_user_names(
    users: UserSnapshot, in_scope: AbstractSet[str], ledger: Mapping[str, LedgerUser]
) -> dict[str, str]:
    """Users whose UPN another in-scope user also has: id -> the id that keeps it.

    userName is Learnster's unique key, so only one of them can be provisioned: the one already
    linked, else the lowest object id (deterministic across cycles).
    """
    by_key: dict[str, list[str]] = {}
    for uid in in_scope & users.keys():  # users may be a slice (incremental planning)
        user, presence = users[uid]
        if presence is Presence.PRESENT:
            by_key.setdefault(user_name_key(user.user_principal_name), []).append(uid)
    losers: dict[str, str] = {}
    for ids in by_key.values():
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
    report_for: AbstractSet[str] | None = None,
    member_candidates: AbstractSet[str] | None = None,
    consume: bool = False,
) -> Targets:
    """Desired Learnster state from the snapshot: mapped users, soft deletes, tags.

    Mapping problems are returned for ``report_for`` only (None: everyone), so an unchanged
    user's bad phone number is reported when it changes, not every night.
    ``member_candidates``: the users a tag may list (incremental planning, where ``users`` is
    a slice); None: those with a target here.
    ``consume``: each user record is removed from ``users`` once mapped, so a big directory's
    snapshot and its targets are never both in memory whole.
    """
    problems: list[Problem] = []
    targets: dict[str, UserTarget] = {}
    duplicates = duplicate_user_names(users, scope.users, ledger)
    for uid, other in duplicates.items():
        problems.append(
            Problem(
                uid,
                "userPrincipalName",
                f"{users[uid].record.user_principal_name!r} is also the UPN of {other}: "
                "user skipped",
                "error",
            )
        )
    for uid in list(users):
        user, presence = users.pop(uid) if consume else users[uid]
        if presence is Presence.DELETED:
            targets[uid] = UserTarget({}, hard_deleted=True)
            continue
        if uid in duplicates:
            continue  # neither created nor changed until the directory is unambiguous
        if presence is Presence.PRESENT and uid in scope.users:
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
            groups[gid].record.display_name,
            members_within(groups[gid].record.user_members, members_ok),
        )
        for gid in scope.groups
    }
    return Targets(targets, group_targets, problems)
