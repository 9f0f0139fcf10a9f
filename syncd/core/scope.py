"""Pure scope: which directory users syncd provisions, and which groups become Learnster tags."""

from __future__ import annotations

from dataclasses import dataclass, field

from syncd.core.records import GroupSnapshot, UserSnapshot


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


def compute_scope(
    users: UserSnapshot,
    groups: GroupSnapshot,
    *,
    mode: str,
    scope_groups: set[str],
    nested: bool,
    sync_groups: str,
) -> Scope:
    """Users in scope and groups to provision as tags (``[scope]`` of the configuration)."""
    present_users = {uid for uid, entry in users.items() if entry.present}
    present_groups = {gid for gid, entry in groups.items() if entry.present}
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
            group = groups[gid].record
            in_scope |= group.user_members & present_users
            if nested:
                pending.extend(group.group_members)
    if sync_groups == "none":
        tags: set[str] = set()
    elif sync_groups == "scope":
        tags = scope_groups & present_groups
    elif sync_groups == "with_members":
        tags = {g for g in present_groups if groups[g].record.user_members & in_scope}
    else:
        tags = present_groups
    return Scope(users=in_scope, groups=tags)
