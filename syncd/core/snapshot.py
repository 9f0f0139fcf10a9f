"""Pure folding of Graph delta rounds into the directory snapshot (the directory as last read)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from syncd.core.decode import MAX_VALUE_LENGTH, clean_text, decode_delta_user
from syncd.core.records import (
    GROUP_TYPE,
    USER_TYPE,
    DirectoryGroup,
    DirectoryUser,
    Entry,
    GroupSnapshot,
    Presence,
    Problem,
    UserSnapshot,
)


class FoldedUsers(NamedTuple):
    snapshot: UserSnapshot
    problems: list[Problem]


class FoldedGroups(NamedTuple):
    snapshot: GroupSnapshot
    problems: list[Problem]


PRESENT = Presence.PRESENT
RECYCLED = Presence.RECYCLED
DELETED = Presence.DELETED


def fold_users(
    previous: Mapping[str, Entry[DirectoryUser]],
    objects: Mapping[str, Mapping[str, Any]],
    removed: Mapping[str, Presence],
) -> FoldedUsers:
    """The user snapshot after an incremental delta round (full rounds: FullUserRound).

    Such a round carries only changed properties, merged over what the snapshot holds. A
    record that fails to decode keeps its previous state: bad data never removes anyone.
    """
    problems: list[Problem] = []
    result: UserSnapshot = dict(previous)
    for object_id, obj in objects.items():
        before = previous.get(object_id)
        decoded = decode_delta_user(obj, before.record if before is not None else None)
        problems.extend(decoded.problems)
        if decoded.user is not None:
            result[object_id] = Entry(decoded.user, PRESENT)
    for object_id, presence in removed.items():
        was = result.get(object_id)
        if was is not None:
            result[object_id] = Entry(was.record, presence)
    return FoldedUsers(result, problems)


class FullUserRound:
    """A full users round decoded page by page, so raw Graph objects never pile up.

    At 100,000 users the raw JSON objects of a whole round would cost as much memory as the
    snapshot itself; here each one is decoded as it arrives and dropped.
    """

    def __init__(self) -> None:
        self.users: dict[str, DirectoryUser] = {}
        self.failed: set[str] = set()
        self.removed: dict[str, Presence] = {}
        self.problems: list[Problem] = []

    def add(self, obj: Mapping[str, Any]) -> None:
        object_id = obj.get("id")
        removed = obj.get("@removed")
        if isinstance(removed, Mapping) and isinstance(object_id, str):
            self.removed[object_id] = Presence.of_removed_reason(removed.get("reason"))
            return
        decoded = decode_delta_user(obj, None)
        self.problems.extend(decoded.problems)
        if decoded.user is not None:
            self.users[decoded.user.id] = decoded.user
        elif isinstance(object_id, str):
            self.failed.add(object_id)

    def finish(
        self, previous: Mapping[str, Entry[DirectoryUser]], *, complete: bool
    ) -> UserSnapshot:
        """The snapshot after the round.

        Complete: a user the snapshot holds but the round does not is gone (recycle bin or
        deleted; a full read cannot tell, so it counts as a soft delete). A record that failed
        to decode keeps its previous state.
        """
        if not complete:  # partial: what was read updates the snapshot, nothing is removed
            result: UserSnapshot = dict(previous)
            result.update((uid, Entry(user, PRESENT)) for uid, user in self.users.items())
            return result
        result = {uid: Entry(user, PRESENT) for uid, user in self.users.items()}
        for object_id in self.failed:
            if object_id in previous:
                result[object_id] = previous[object_id]
        for object_id, presence in self.removed.items():
            was = previous.get(object_id) or result.get(object_id)
            if was is not None:
                result[object_id] = Entry(was.record, presence)
        for object_id, (user, was_presence) in previous.items():
            if object_id not in result and was_presence is not DELETED:
                result[object_id] = Entry(user, RECYCLED)
        return result


def fold_groups(
    previous: Mapping[str, Entry[DirectoryGroup]],
    objects: Mapping[str, Mapping[str, Any]],
    removed: Mapping[str, Presence],
    *,
    full: bool,
) -> FoldedGroups:
    """The group snapshot after one delta round (members@delta adds and removes)."""
    problems: list[Problem] = []
    result: GroupSnapshot = {} if full else dict(previous)
    for object_id, obj in objects.items():
        before = previous.get(object_id)
        base = before.record if before is not None and not full else None
        group, group_problems = _fold_group(object_id, obj, base)
        problems.extend(group_problems)
        if group is not None:
            result[object_id] = Entry(group, PRESENT)
        elif before is not None:
            result[object_id] = before
    for object_id, presence in removed.items():
        was = previous.get(object_id) or result.get(object_id)
        if was is not None:
            result[object_id] = Entry(was.record, presence)
    if full:
        for object_id, (group, was_presence) in previous.items():
            if object_id not in result and was_presence is not DELETED:
                result[object_id] = Entry(group, DELETED)
    return FoldedGroups(result, problems)


def _fold_group(
    object_id: str, obj: Mapping[str, Any], base: DirectoryGroup | None
) -> tuple[DirectoryGroup | None, list[Problem]]:
    """One group of a delta round merged over ``base``; None when it cannot be a tag."""
    users = set(base.user_members) if base else set()
    groups = set(base.group_members) if base else set()
    # (odata type, id, removed) triples, as merge_delta_object compacts them
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
        return None, [Problem(object_id, "displayName", f"group {why}: skipped", "error")]
    problems = []
    if notes:
        problems.append(Problem(object_id, "displayName", f"sent cleaned ({', '.join(notes)})"))
    return DirectoryGroup(object_id, name, frozenset(users), frozenset(groups)), problems


def labels_of(users: UserSnapshot, groups: GroupSnapshot) -> dict[str, str]:
    """Object id -> UPN or group name, for people reading reports and logs."""
    labels = {uid: entry.record.user_principal_name for uid, entry in users.items()}
    labels.update({gid: entry.record.display_name for gid, entry in groups.items()})
    return labels
