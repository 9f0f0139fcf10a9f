"""Pure scope: which directory users syncd provisions, and which groups become Learnster tags.

The mode decides first (everyone; the members of the scope groups; those assigned to the
Learnster app, directly or through a group), then the attribute scoping filters: a user is in
scope when the mode includes them and, if there are filters, at least one matches.
"""

from __future__ import annotations

import functools
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field

from syncd.core.filters import ScopeFilter, in_filters, why_filtered_out
from syncd.core.records import DirectoryUser, GroupSnapshot, UserSnapshot


@dataclass
class Scope:
    """Which users and groups syncd provisions."""

    users: set[str] = field(default_factory=set)
    groups: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class ScopeRules:
    """``[scope]`` with its groups resolved to ids (and, for mode assigned, the assignments)."""

    mode: str = "all"  # all | groups | assigned
    scope_groups: frozenset[str] = frozenset()  # the scope groups, or the assigned groups
    assigned_users: frozenset[str] = frozenset()  # mode assigned: users assigned directly
    nested: bool = False
    sync_groups: str = "all"  # all | scope | with_members | none
    filters: tuple[ScopeFilter, ...] = ()

    @functools.cached_property
    def attributes(self) -> tuple[str, ...]:
        """The user attributes the filters read."""
        return tuple(sorted({c.attribute for f in self.filters for c in f.clauses}))

    def passes_filters(self, user: DirectoryUser) -> bool:
        if not self.filters:
            return True
        values = user.values(self.attributes)
        return in_filters(self.filters, values.__getitem__)

    def why_out(self, uid: str, users: UserSnapshot, groups: GroupSnapshot) -> str:
        """Why a present user is not in scope, for ``plan`` and ``provision``: "<user> …"."""
        user = users[uid].record
        if not self._by_mode(uid, groups):
            if self.mode == "assigned":
                return "is not assigned to the Learnster app, neither directly nor by a group"
            return "is not a member of any [scope] group"
        values = user.values(self.attributes)
        return "matches no [[scope.filter]]: " + why_filtered_out(self.filters, values.__getitem__)

    def _by_mode(self, uid: str, groups: GroupSnapshot) -> bool:
        if self.mode == "all" or uid in self.assigned_users:
            return True
        return uid in scope_group_members(groups, self.scope_groups, nested=self.nested)


def scope_group_members(
    groups: GroupSnapshot, scope_groups: AbstractSet[str], *, nested: bool
) -> set[str]:
    """The user members of the scope groups that are there (and of their nested groups)."""
    members: set[str] = set()
    seen: set[str] = set()
    pending = list(scope_groups)
    while pending:  # breadth-first; `seen` stops a group that contains itself
        gid = pending.pop()
        if gid in seen or gid not in groups or not groups[gid].present:
            continue
        seen.add(gid)
        group = groups[gid].record
        members |= group.user_members
        if nested:
            pending.extend(group.group_members)
    return members


def resolve_scope_groups(
    names: tuple[str, ...], groups: GroupSnapshot
) -> tuple[set[str], list[str]]:
    """Group ids for the configured scope groups (object ids or exact display names)."""
    by_name: dict[str, list[str]] = {}
    for gid, entry in groups.items():
        if entry.present:
            by_name.setdefault(entry.record.display_name.casefold(), []).append(gid)
    found: set[str] = set()
    errors: list[str] = []
    for name in names:
        if name in groups and groups[name].present:
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


def compute_scope(users: UserSnapshot, groups: GroupSnapshot, rules: ScopeRules) -> Scope:
    """Users in scope and groups to provision as tags."""
    present_users = {uid for uid, entry in users.items() if entry.present}
    present_groups = {gid for gid, entry in groups.items() if entry.present}
    if rules.mode == "all":
        in_scope = present_users
    else:
        members = scope_group_members(groups, rules.scope_groups, nested=rules.nested)
        in_scope = (members | rules.assigned_users) & present_users
    if rules.filters:
        in_scope = {uid for uid in in_scope if rules.passes_filters(users[uid].record)}
    return Scope(users=in_scope, groups=tags(groups, present_groups, in_scope, rules))


def tags(
    groups: GroupSnapshot,
    present_groups: AbstractSet[str],
    in_scope: AbstractSet[str],
    rules: ScopeRules,
) -> set[str]:
    """The groups that are Learnster tags under ``sync_groups``."""
    if rules.sync_groups == "none":
        return set()
    if rules.sync_groups == "scope":
        return set(rules.scope_groups & present_groups)
    if rules.sync_groups == "with_members":
        return {g for g in present_groups if groups[g].record.user_members & in_scope}
    return set(present_groups)
