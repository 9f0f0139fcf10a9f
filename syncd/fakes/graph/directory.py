"""The fake tenant's directory: users, groups, devices and contacts, their changes and mutations."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from syncd.fakes.generator import Organisation
from syncd.fakes.graph.base import _GraphBase
from syncd.fakes.graph.properties import (
    _ALL_USER_PROPERTIES,
    CONTACT,
    CONTACT_PROPERTIES,
    DEVICE,
    DEVICE_PROPERTIES,
    GROUP,
    GROUP_PROPERTIES,
    USER,
    USER_PROPERTIES,
    _group_defaults,
    _unknown_extension,
    _user_body,
    _user_default,
    _user_update,
)


def _refuse_unknown(names: Iterable[str], what: str) -> None:
    """Raise ValueError for properties a user does not have (Graph's words for an extension)."""
    for name in sorted(names):
        error = _unknown_extension(name)
        if error is not None:
            raise ValueError(error.message)
    raise ValueError(f"{what}: {sorted(names)}")


@dataclass(slots=True)
class _Track:
    """Change bookkeeping for one object: the sequence number of each fact's last change."""

    created: int  # creation or restore: the object is reported in full
    props: dict[str, int] = field(default_factory=dict)
    removed: int = 0
    reason: str | None = None  # "changed" (recycle bin) or "deleted" while removed
    manager: int = 0  # users: last change of the effective manager
    old_manager: str | None = None  # users: manager before it was removed
    members: dict[str, int] = field(default_factory=dict)  # groups: member -> last change


class _Directory(_GraphBase):
    """Users, groups, devices and contacts with the change bookkeeping that delta rounds read."""

    _created_at: str
    _seq: int
    _users: dict[str, dict[str, Any]]
    _recycle: dict[str, dict[str, Any]]
    _upn: dict[str, str]
    _manager_of: dict[str, str]
    _groups: dict[str, dict[str, Any]]
    _members: dict[str, dict[str, None]]
    _member_of: dict[str, set[str]]
    _others: dict[str, dict[str, Any]]
    _kind: dict[str, str]
    _user_track: dict[str, _Track]
    _group_track: dict[str, _Track]
    _user_log: tuple[list[int], list[str]]
    _group_log: tuple[list[int], list[str]]

    # ------------------------------------------------------------------ reading state (tests)

    @property
    def users(self) -> list[dict[str, Any]]:
        """Copies of the live users (not those in the recycle bin)."""
        with self._lock:
            return [_user_body(u, _ALL_USER_PROPERTIES) for u in self._users.values()]

    @property
    def groups(self) -> list[dict[str, Any]]:
        """Copies of the live groups."""
        with self._lock:
            return [dict(g) for g in self._groups.values()]

    def manager_of(self, user_id: str) -> str | None:
        """The effective manager id of a user, or None."""
        with self._lock:
            return self._effective_manager(user_id)

    def member_ids(self, group_id: str) -> list[str]:
        """The live direct members of a group."""
        with self._lock:
            return self._live_members(group_id)

    # ------------------------------------------------------------------ mutation (Python API)

    def _load(self, org: Organisation, own: bool) -> None:
        # loaded objects exist "since the beginning" (sequence 0): no tracks, no change log
        with self._lock:
            for raw in org.users:
                props = raw if own else dict(raw)
                manager = props.pop("managerId", None)
                uid = self._insert_user(props, initial=True)
                if manager:
                    self._manager_of[uid] = manager
            for graw in org.groups:
                props = graw if own else dict(graw)
                members = props.pop("memberIds", ())
                gid = self._insert_group(props, initial=True)
                self._members[gid] = dict.fromkeys(members)
                for mid in members:
                    self._member_of.setdefault(mid, set()).add(gid)

    def _utrack(self, uid: str) -> _Track:
        track = self._user_track.get(uid)
        if track is None:
            track = self._user_track[uid] = _Track(created=0)
        return track

    def _gtrack(self, gid: str) -> _Track:
        track = self._group_track.get(gid)
        if track is None:
            track = self._group_track[gid] = _Track(created=0)
        return track

    def _tick(self) -> int:
        self._seq += 1
        return self._seq

    def _log_user(self, uid: str, seq: int) -> None:
        self._user_log[0].append(seq)
        self._user_log[1].append(uid)

    def _log_group(self, gid: str, seq: int) -> None:
        self._group_log[0].append(seq)
        self._group_log[1].append(gid)

    def _insert_user(self, props: dict[str, Any], *, initial: bool = False) -> str:
        """Store ``props`` (owned from now on) as a user; absent properties read as defaults."""
        if not props.keys() <= USER_PROPERTIES:
            _refuse_unknown(props.keys() - USER_PROPERTIES, "unknown user properties")
        complete = _user_update({}, props)
        if complete is not props:
            props.update(complete)
        uid = str(props.get("id") or uuid.uuid4())
        if uid in self._kind:
            raise ValueError(f"id {uid} already exists")
        props["id"] = uid
        if not props.get("userPrincipalName"):
            props["userPrincipalName"] = f"user-{uid[:8]}@{self.tenant_id}"
        if not props.get("mailNickname"):
            props["mailNickname"] = props["userPrincipalName"].split("@", 1)[0]
        props.setdefault("createdDateTime", self._created_at)
        key = props["userPrincipalName"].lower()
        if key in self._upn:
            raise ValueError(f"userPrincipalName {props['userPrincipalName']} already exists")
        self._users[uid] = props
        self._upn[key] = uid
        self._kind[uid] = USER
        if not initial:
            seq = self._tick()
            self._user_track[uid] = _Track(created=seq)
            self._log_user(uid, seq)
        return uid

    def _insert_group(self, props: dict[str, Any], *, initial: bool = False) -> str:
        if not props.keys() <= GROUP_PROPERTIES:
            raise ValueError(f"unknown group properties: {sorted(props.keys() - GROUP_PROPERTIES)}")
        gid = str(props.get("id") or uuid.uuid4())
        if gid in self._kind:
            raise ValueError(f"id {gid} already exists")
        props["id"] = gid
        self._groups[gid] = _group_defaults(props, self._created_at)
        self._kind[gid] = GROUP
        if not initial:
            seq = self._tick()
            self._group_track[gid] = _Track(created=seq)
            self._log_group(gid, seq)
        return gid

    def _live(self, oid: str) -> bool:
        return oid in self._users or oid in self._groups or oid in self._others

    def _effective_manager(self, uid: str) -> str | None:
        mid = self._manager_of.get(uid)
        return mid if mid is not None and mid in self._users else None

    def _live_members(self, gid: str) -> list[str]:
        if gid not in self._groups:
            raise KeyError(gid)
        return [m for m in self._members.get(gid, {}) if self._live(m)]

    def _manager_changed(self, uid: str, seq: int, old: str | None) -> None:
        """Record that ``uid``'s effective manager changed (``old``: the one it had)."""
        track = self._utrack(uid)
        track.manager = seq
        if old is not None:
            track.old_manager = old
        if uid in self._users:
            self._log_user(uid, seq)

    def _membership_changed(self, oid: str, seq: int) -> None:
        """Every group holding ``oid`` saw it come or go."""
        for gid in self._member_of.get(oid, ()):
            if gid in self._groups:
                self._gtrack(gid).members[oid] = seq
                self._log_group(gid, seq)

    def _reports_of(self, uid: str) -> list[str]:
        return [r for r, m in self._manager_of.items() if m == uid]

    def add_user(self, props: dict[str, Any]) -> str:
        """Create a user from Graph-shaped ``props`` (``managerId`` allowed); returns its id."""
        props = dict(props)
        manager = props.pop("managerId", None)
        with self._lock:
            uid = self._insert_user(props)
            if manager:
                self.set_manager(uid, manager)
            return uid

    def update_user(self, user_id: str, **props: Any) -> None:
        """Change user properties; only the ones whose value changes are reported by delta."""
        with self._lock:
            user = self._users.get(user_id)
            if user is None:
                raise KeyError(user_id)
            if "managerId" in props:
                self.set_manager(user_id, props.pop("managerId"))
            bad = (set(props) - USER_PROPERTIES) | ({"id"} & set(props))
            if bad:
                _refuse_unknown(bad, "cannot update user properties")
            props = _user_update(user, props)
            changed = {
                k: v
                for k, v in props.items()
                if (user[k] if k in user else _user_default(user, k)) != v
            }
            if not changed:
                return
            if "userPrincipalName" in changed:
                new_key = str(changed["userPrincipalName"]).lower()
                old_key = str(user["userPrincipalName"]).lower()
                if new_key != old_key and new_key in self._upn:
                    raise ValueError(f"userPrincipalName {changed['userPrincipalName']} taken")
                del self._upn[old_key]
                self._upn[new_key] = user_id
            seq = self._tick()
            track = self._utrack(user_id)
            for key, value in changed.items():
                user[key] = list(value) if isinstance(value, list) else value
                track.props[key] = seq
            self._log_user(user_id, seq)

    def set_manager(self, user_id: str, manager_id: str | None) -> None:
        """Set (or with None remove) a user's direct manager."""
        with self._lock:
            if user_id not in self._users:
                raise KeyError(user_id)
            if manager_id is not None:
                if manager_id not in self._users:
                    raise KeyError(manager_id)
                if manager_id == user_id:
                    raise ValueError("a user cannot be their own manager")
            old = self._effective_manager(user_id)
            if manager_id is None:
                self._manager_of.pop(user_id, None)
            else:
                self._manager_of[user_id] = manager_id
            if old != manager_id:
                self._manager_changed(user_id, self._tick(), old)

    def disable_user(self, user_id: str) -> None:
        """Block sign-in (``accountEnabled: false``)."""
        self.update_user(user_id, accountEnabled=False)

    def enable_user(self, user_id: str) -> None:
        """Allow sign-in again (``accountEnabled: true``)."""
        self.update_user(user_id, accountEnabled=True)

    def soft_delete_user(self, user_id: str) -> None:
        """Move a user to the recycle bin: gone from /users; delta says ``@removed: changed``.

        Their reports lose the manager and their groups lose them, until ``restore_user``.
        """
        with self._lock:
            user = self._users.pop(user_id, None)
            if user is None:
                raise KeyError(user_id)
            self._recycle[user_id] = user
            del self._upn[str(user["userPrincipalName"]).lower()]
            seq = self._tick()
            track = self._utrack(user_id)
            track.removed, track.reason = seq, "changed"
            self._log_user(user_id, seq)
            for report in self._reports_of(user_id):
                if report in self._users:
                    self._manager_changed(report, seq, user_id)
            self._membership_changed(user_id, seq)

    def restore_user(self, user_id: str) -> None:
        """Bring a user back from the recycle bin with manager, reports and memberships."""
        with self._lock:
            user = self._recycle.get(user_id)
            if user is None:
                raise KeyError(user_id)
            key = str(user["userPrincipalName"]).lower()
            if key in self._upn:
                raise ValueError(f"userPrincipalName {user['userPrincipalName']} was reused")
            del self._recycle[user_id]
            self._users[user_id] = user
            self._upn[key] = user_id
            seq = self._tick()
            self._user_track[user_id] = _Track(created=seq)
            self._log_user(user_id, seq)
            for report in self._reports_of(user_id):
                if report in self._users:
                    self._manager_changed(report, seq, None)
            self._membership_changed(user_id, seq)

    def hard_delete_user(self, user_id: str) -> None:
        """Delete a user permanently (from live or the recycle bin): ``@removed: deleted``."""
        with self._lock:
            user = self._users.pop(user_id, None) or self._recycle.pop(user_id, None)
            if user is None:
                raise KeyError(user_id)
            self._upn.pop(str(user["userPrincipalName"]).lower(), None)
            seq = self._tick()
            track = self._utrack(user_id)
            track.removed, track.reason = seq, "deleted"
            self._log_user(user_id, seq)
            for report in self._reports_of(user_id):
                del self._manager_of[report]
                if report in self._users:
                    self._manager_changed(report, seq, user_id)
            self._manager_of.pop(user_id, None)
            self._membership_changed(user_id, seq)
            self._drop_memberships(user_id)
            self._principal_gone(user_id)

    def _principal_gone(self, oid: str) -> None:
        """Hook: ``oid`` is deleted for good (its app role assignments go with it)."""

    def _drop_memberships(self, oid: str) -> None:
        for gid in self._member_of.pop(oid, set()):
            self._members.get(gid, {}).pop(oid, None)

    def add_group(self, props: dict[str, Any], member_ids: Iterable[str] = ()) -> str:
        """Create a group from Graph-shaped ``props`` with direct members; returns its id."""
        props = dict(props)
        members = list(props.pop("memberIds", ())) + list(member_ids)
        with self._lock:
            for mid in members:
                if not self._live(mid):
                    raise KeyError(mid)
            gid = self._insert_group(props)
            self._members[gid] = dict.fromkeys(members)
            for mid in members:
                self._member_of.setdefault(mid, set()).add(gid)
            return gid

    def update_group(self, group_id: str, **props: Any) -> None:
        """Change group properties."""
        with self._lock:
            group = self._groups.get(group_id)
            if group is None:
                raise KeyError(group_id)
            bad = (set(props) - GROUP_PROPERTIES) | ({"id"} & set(props))
            if bad:
                raise ValueError(f"cannot update group properties: {sorted(bad)}")
            changed = {k: v for k, v in props.items() if group.get(k) != v}
            if not changed:
                return
            seq = self._tick()
            track = self._gtrack(group_id)
            for key, value in changed.items():
                group[key] = value
                track.props[key] = seq
            self._log_group(group_id, seq)

    def rename_group(self, group_id: str, name: str) -> None:
        """Change a group's displayName."""
        self.update_group(group_id, displayName=name)

    def delete_group(self, group_id: str) -> None:
        """Delete a group permanently (security groups skip the recycle bin): ``deleted``."""
        with self._lock:
            if self._groups.pop(group_id, None) is None:
                raise KeyError(group_id)
            seq = self._tick()
            track = self._gtrack(group_id)
            track.removed, track.reason = seq, "deleted"
            self._log_group(group_id, seq)
            self._membership_changed(group_id, seq)
            self._drop_memberships(group_id)
            for mid in self._members.pop(group_id, {}):
                self._member_of.get(mid, set()).discard(group_id)
            self._principal_gone(group_id)

    def add_member(self, group_id: str, member_id: str) -> None:
        """Add a user, group, device or contact to a group."""
        with self._lock:
            if group_id not in self._groups:
                raise KeyError(group_id)
            if not self._live(member_id):
                raise KeyError(member_id)
            if member_id == group_id:
                raise ValueError("a group cannot contain itself")
            members = self._members.setdefault(group_id, {})
            if member_id in members:
                return
            members[member_id] = None
            self._member_of.setdefault(member_id, set()).add(group_id)
            seq = self._tick()
            self._gtrack(group_id).members[member_id] = seq
            self._log_group(group_id, seq)

    def remove_member(self, group_id: str, member_id: str) -> None:
        """Remove a direct member from a group."""
        with self._lock:
            members = self._members.get(group_id)
            if group_id not in self._groups or members is None:
                raise KeyError(group_id)
            if member_id not in members:
                raise KeyError(member_id)
            del members[member_id]
            self._member_of.get(member_id, set()).discard(group_id)
            seq = self._tick()
            self._gtrack(group_id).members[member_id] = seq
            self._log_group(group_id, seq)

    def _add_other(self, kind: str, props: dict[str, Any], group_ids: Iterable[str]) -> str:
        with self._lock:
            oid = str(props.get("id") or uuid.uuid4())
            if oid in self._kind:
                raise ValueError(f"id {oid} already exists")
            names = DEVICE_PROPERTIES if kind == DEVICE else CONTACT_PROPERTIES
            obj: dict[str, Any] = dict.fromkeys(names)
            if kind == DEVICE:
                obj.update(
                    deviceId=str(uuid.uuid4()), accountEnabled=True, operatingSystem="Windows"
                )
            obj.update(props)
            obj["id"] = oid
            self._others[oid] = obj
            self._kind[oid] = kind
            for gid in group_ids:
                self.add_member(gid, oid)
            return oid

    def add_device(self, props: dict[str, Any], group_ids: Iterable[str] = ()) -> str:
        """Create a device (optionally in groups); returns its id."""
        return self._add_other(DEVICE, props, group_ids)

    def add_contact(self, props: dict[str, Any], group_ids: Iterable[str] = ()) -> str:
        """Create an organisational contact (optionally in groups); returns its id."""
        return self._add_other(CONTACT, props, group_ids)
