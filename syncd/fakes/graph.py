"""Fake Microsoft Graph v1.0 tenant (users, groups, delta, OAuth2 client credentials) on loopback."""

from __future__ import annotations

import base64
import bisect
import contextlib
import functools
import hashlib
import hmac
import json
import os
import re
import secrets
import ssl
import tempfile
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from random import Random
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, quote, unquote

from syncd.fakes._http import LoopbackServer, Request, Response, answer_after
from syncd.fakes.generator import Organisation

__all__ = ["FakeGraph", "LoggedRequest"]

USER = "#microsoft.graph.user"
GROUP = "#microsoft.graph.group"
DEVICE = "#microsoft.graph.device"
CONTACT = "#microsoft.graph.orgContact"

# What Graph v1.0 returns for a user when the request has no $select.
USER_DEFAULT_SELECT: tuple[str, ...] = (
    "businessPhones", "displayName", "givenName", "jobTitle", "mail", "mobilePhone",
    "officeLocation", "preferredLanguage", "surname", "userPrincipalName", "id",
)  # fmt: skip
# Properties the generator does not produce; stored users hold them only when set.
_USER_EXTRA: dict[str, Any] = {
    "userType": "Member",
    "usageLocation": None,
    "employeeType": None,
    "employeeHireDate": None,
    "otherMails": [],
    "imAddresses": [],
    "onPremisesSyncEnabled": None,
    "onPremisesImmutableId": None,
    "onPremisesSamAccountName": None,
    "onPremisesUserPrincipalName": None,
    "deletedDateTime": None,
    "ageGroup": None,
    "showInAddressList": None,
    "externalUserState": None,
}
_USER_NOT_NULL = frozenset(
    {"businessPhones", "otherMails", "imAddresses", "proxyAddresses", "accountEnabled", "userType"}
)
USER_PROPERTIES: frozenset[str] = frozenset(
    (
        "id", "userPrincipalName", "accountEnabled", "displayName", "givenName", "surname",
        "jobTitle", "mail", "mailNickname", "officeLocation", "streetAddress", "city",
        "postalCode", "state", "country", "businessPhones", "mobilePhone", "companyName",
        "department", "employeeId", "preferredLanguage", "faxNumber", "createdDateTime",
        "proxyAddresses", *_USER_EXTRA,
    )
)  # fmt: skip
GROUP_PROPERTIES: frozenset[str] = frozenset(
    (
        "id", "displayName", "mailNickname", "description", "securityEnabled", "mailEnabled",
        "groupTypes", "mail", "createdDateTime", "visibility", "deletedDateTime",
        "onPremisesSyncEnabled", "classification", "membershipRule", "proxyAddresses",
        "isAssignableToRole", "securityIdentifier",
    )
)  # fmt: skip
GROUP_DEFAULT_SELECT: tuple[str, ...] = tuple(sorted(GROUP_PROPERTIES))
_ALL_USER_PROPERTIES: tuple[str, ...] = tuple(sorted(USER_PROPERTIES))
DEVICE_PROPERTIES: tuple[str, ...] = (
    "id", "displayName", "deviceId", "operatingSystem", "operatingSystemVersion",
    "accountEnabled", "trustType",
)  # fmt: skip
CONTACT_PROPERTIES: tuple[str, ...] = (
    "id", "displayName", "mail", "givenName", "surname", "companyName", "jobTitle",
    "mailNickname",
)  # fmt: skip
_DIRECTORY_PROPERTIES = {
    p.lower(): p
    for p in (*USER_PROPERTIES, *GROUP_PROPERTIES, *DEVICE_PROPERTIES, *CONTACT_PROPERTIES)
}

# Application permissions that let an app read each kind of resource.
_READ_USERS = frozenset(
    {"User.Read.All", "User.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"}
)
_READ_GROUPS = frozenset(
    {
        "GroupMember.Read.All", "GroupMember.ReadWrite.All", "Group.Read.All",
        "Group.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All",
    }
)  # fmt: skip
_READ_ORG = frozenset(
    {
        "Organization.Read.All", "Organization.ReadWrite.All", "Directory.Read.All",
        "Directory.ReadWrite.All",
    }
)  # fmt: skip

_JSON_TYPE = (
    "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;"
    "charset=utf-8"
)
_DELTA_SEGMENTS = frozenset(
    {"delta", "delta()", "microsoft.graph.delta", "microsoft.graph.delta()"}
)
_GRAPH_SCOPES = frozenset(
    {"https://graph.microsoft.com/.default", "00000003-0000-0000-c000-000000000000/.default"}
)
_MAX_SESSIONS = 32  # paging sessions kept for $skiptoken; the oldest is forgotten first


@dataclass(frozen=True)
class LoggedRequest:
    """One request the fake answered (the Authorization header is never kept)."""

    method: str
    path: str
    query: dict[str, str]
    status: int
    headers: dict[str, str] = field(default_factory=dict)


class _ApiError(Exception):
    """Raised inside request handling; becomes Graph's error envelope."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers or {}


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


@dataclass
class _Entry:
    """One item of a delta round, decided when the round starts; values are read per page."""

    id: str
    mode: str  # "full", "partial" or "removed"
    props: tuple[str, ...] = ()
    reason: str = "deleted"
    manager: list[dict[str, Any]] | None = None
    members: list[dict[str, Any]] | None = None


@dataclass
class _DeltaSession:
    kind: str  # "users" or "groups"
    upto: int
    select: tuple[str, ...]
    with_relation: bool  # manager (users) or members (groups) selected
    entries: list[_Entry]
    pages: list[tuple[int, int]]
    epoch: int
    page_size: int


@dataclass
class _ListSession:
    ids: list[str]
    top: int
    epoch: int


@dataclass
class _PageFault:
    prefix: str
    page: int
    status: int
    times: int | None


def _now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _user_default(user: dict[str, Any], key: str) -> Any:
    """The value Graph shows for a property the stored user does not hold."""
    if key in ("businessPhones", "otherMails", "imAddresses"):
        return []
    if key == "proxyAddresses":
        mail = user.get("mail")
        return [f"SMTP:{mail}"] if mail else []
    if key == "accountEnabled":
        return True
    return _USER_EXTRA.get(key)


@functools.lru_cache(maxsize=256)
def _needs_default(select: tuple[str, ...]) -> tuple[str, ...]:
    """The selected properties whose absence does not mean null."""
    return tuple(k for k in select if k in _USER_NOT_NULL)


def _group_defaults(props: dict[str, Any], created: str) -> dict[str, Any]:
    group: dict[str, Any] = dict.fromkeys(GROUP_PROPERTIES)
    group.update(
        securityEnabled=True,
        mailEnabled=False,
        groupTypes=[],
        proxyAddresses=[],
        createdDateTime=created,
        securityIdentifier=f"S-1-12-1-{uuid.UUID(props['id']).int % 10**10}",
    )
    group.update(props)
    if not group.get("mailNickname"):
        group["mailNickname"] = re.sub(r"[^A-Za-z0-9-]", "", str(group["displayName"])) or "grp"
    return group


class FakeGraph:
    """A faithful fake of Microsoft Graph v1.0 for one tenant, served over real HTTP(S).

    Serves users, groups, members, managers, delta queries, the OAuth2 client-credentials token
    endpoint with OpenID discovery, Graph's error envelope, and fault injection. The tenant is
    changed through Python methods or, from another process, over HTTP (JSON bodies, no auth):

    - ``POST /_fake/users`` {props} -> {"id"}; ``PATCH /_fake/users/{id}`` {props};
      ``DELETE /_fake/users/{id}`` (hard delete); ``PUT /_fake/users/{id}/manager``
      {"managerId": id|null}; ``POST /_fake/users/{id}/disable|enable|softDelete|restore``
    - ``POST /_fake/users/bulk-update`` [{"id", props}, ...] -> {"updated": n}: many
      ``PATCH /_fake/users/{id}`` in one request (applied in order; stops at the first error)
    - ``POST /_fake/groups`` {props, "memberIds"} -> {"id"}; ``PATCH|DELETE /_fake/groups/{id}``;
      ``POST /_fake/groups/{id}/members`` {"id"}; ``DELETE /_fake/groups/{id}/members/{member}``
    - ``POST /_fake/devices|contacts`` {props, "groupIds"} -> {"id"}
    - ``POST /_fake/expireDeltaTokens``, ``POST /_fake/expireAccessTokens``
    - ``PUT /_fake/faults`` {"rate429", "rate503", "retryAfterSeconds", "emptyPages"};
      ``POST /_fake/failPage`` {"pathPrefix", "page", "status", "times"}; ``DELETE /_fake/faults``
    - ``PUT /_fake/permissions`` {"permissions": [...]}; ``GET|DELETE /_fake/requests``;
      ``GET /_fake/state``
    """

    def __init__(
        self,
        org: Organisation | None = None,
        *,
        tenant_id: str = "contoso.example",
        client_id: str = "11111111-1111-1111-1111-111111111111",
        client_secret: str | None = "graph-secret",  # noqa: S107 - a fake's test secret
        access_token: str | None = None,
        tls: bool = False,
        port: int = 0,
        permissions: set[str] | None = None,
        page_size_max: int = 999,
        delta_page_size: int = 200,
        members_per_page: int = 1000,
        fault_seed: int = 0,
        own_org: bool = False,
    ) -> None:
        """Build the tenant from ``org`` (copied) and bind 127.0.0.1:``port``; call ``start()``.

        ``client_secret=None`` refuses every client secret, so only ``access_token`` (a fixed
        bearer token accepted as-is) works. ``delta_page_size`` is the page size of delta rounds
        unless the client sends ``Prefer: odata.maxpagesize``; ``members_per_page`` is how many
        member references one delta page carries before a big group is continued on the next.
        ``own_org=True`` takes over the dicts of ``org`` instead of copying them (halves the memory
        of a big tenant; ``org`` must not be used afterwards).
        """
        self.tenant_id = tenant_id
        self.tenant_guid = str(uuid.uuid5(uuid.NAMESPACE_DNS, tenant_id))
        self.client_id = client_id
        self.client_secret = client_secret
        self.access_token = access_token
        self.permissions: set[str] = (
            set(permissions)
            if permissions is not None
            else {"User.Read.All", "GroupMember.Read.All"}
        )
        self.page_size_max = page_size_max
        self.delta_page_size = delta_page_size
        self.members_per_page = members_per_page
        # fault injection
        self.fault_rate_429 = 0.0
        self.fault_rate_503 = 0.0
        self.retry_after_seconds = 1
        self.empty_pages = False
        # From a request's arrival to its answer, for every API request (not the control API).
        self.latency_ms = 0.0
        self._fault_rng = Random(fault_seed)
        self._page_faults: list[_PageFault] = []

        self._created_at = _now_iso() + "Z"
        self._lock = threading.RLock()
        self._nonce = secrets.token_hex(4)  # tokens from another instance are unknown here
        self._jwt_key = secrets.token_bytes(32)
        self._issued: dict[str, float] = {}  # access token -> expiry (epoch seconds)
        self._epoch = 0
        self._seq = 0
        self._users: dict[str, dict[str, Any]] = {}
        self._recycle: dict[str, dict[str, Any]] = {}
        self._upn: dict[str, str] = {}
        self._manager_of: dict[str, str] = {}
        self._groups: dict[str, dict[str, Any]] = {}
        self._members: dict[str, dict[str, None]] = {}  # group -> ordered member ids
        self._member_of: dict[str, set[str]] = {}  # member -> groups (reverse index)
        self._others: dict[str, dict[str, Any]] = {}  # devices and contacts
        self._kind: dict[str, str] = {}  # every id ever seen -> @odata.type
        self._user_track: dict[str, _Track] = {}
        self._group_track: dict[str, _Track] = {}
        self._user_log: tuple[list[int], list[str]] = ([], [])
        self._group_log: tuple[list[int], list[str]] = ([], [])
        self._sessions: OrderedDict[str, _DeltaSession | _ListSession] = OrderedDict()
        self._requests: list[LoggedRequest] = []

        self._ca_path: str | None = None
        ssl_context: ssl.SSLContext | None = None
        if tls:
            ssl_context = self._make_tls()
        self._server = LoopbackServer(self._app, port=port, ssl_context=ssl_context)
        self._started = False
        if org is not None:
            self._load(org, own_org)

    # ------------------------------------------------------------------ lifecycle

    def _make_tls(self) -> ssl.SSLContext:
        import trustme  # only needed for TLS

        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1", "localhost")
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(ctx)
        fd, path = tempfile.mkstemp(prefix="fake-graph-ca-", suffix=".pem")
        os.close(fd)
        ca.cert_pem.write_to_path(path)
        self._ca_path = path
        return ctx

    def start(self) -> FakeGraph:
        """Start serving in a background thread; returns self."""
        if not self._started:
            self._server.start()
            self._started = True
        return self

    def stop(self) -> None:
        """Stop serving and remove the temporary CA file."""
        if self._started:
            self._server.stop()
            self._started = False
        if self._ca_path is not None:
            with contextlib.suppress(OSError):
                os.unlink(self._ca_path)
            self._ca_path = None

    def __enter__(self) -> FakeGraph:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def origin(self) -> str:
        """``http(s)://127.0.0.1:PORT``."""
        return self._server.origin

    @property
    def base_url(self) -> str:
        """The Graph API root, e.g. ``http://127.0.0.1:PORT/v1.0``."""
        return f"{self._server.origin}/v1.0"

    @property
    def authority(self) -> str:
        """The authority host as azure-identity takes it: ``127.0.0.1:PORT``."""
        return f"127.0.0.1:{self._server.port}"

    @property
    def port(self) -> int:
        """The TCP port served."""
        return self._server.port

    @property
    def ca_file(self) -> str | None:
        """PEM file of the test CA when ``tls=True``, else None."""
        return self._ca_path

    @property
    def token_url(self) -> str:
        """The OAuth2 token endpoint of this tenant."""
        return f"{self.origin}/{self.tenant_id}/oauth2/v2.0/token"

    @property
    def requests(self) -> list[LoggedRequest]:
        """A copy of the request log (oldest first)."""
        with self._lock:
            return list(self._requests)

    def clear_requests(self) -> None:
        """Forget the request log."""
        with self._lock:
            self._requests.clear()

    def issue_token(self) -> str:
        """Issue a bearer token directly, as the token endpoint would (for tests)."""
        with self._lock:
            return self._issue()

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
            raise ValueError(f"unknown user properties: {sorted(props.keys() - USER_PROPERTIES)}")
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
                raise ValueError(f"cannot update user properties: {sorted(bad)}")
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

    def expire_delta_tokens(self) -> None:
        """Every outstanding delta token and delta/list skiptoken now answers 410 (or 400)."""
        with self._lock:
            self._epoch += 1
            self._sessions.clear()

    def expire_access_tokens(self) -> None:
        """Every issued access token is now expired (401); the fixed ``access_token`` stays."""
        with self._lock:
            self._issued = dict.fromkeys(self._issued, 0.0)

    def fail_page(
        self, path_prefix: str, page_number: int, status: int = 500, *, times: int | None = 1
    ) -> None:
        """Make page ``page_number`` (1-based) of a paged read under ``path_prefix`` fail.

        ``path_prefix`` is relative to /v1.0, e.g. ``/users/delta`` (any delta spelling) or
        ``/users``; ``times=None`` fails it every time, else that many times.
        """
        with self._lock:
            prefix = "/" + _normalise_api_path(path_prefix.strip("/").removeprefix("v1.0/"))
            self._page_faults.append(_PageFault(prefix, page_number, status, times))

    def clear_faults(self) -> None:
        """Remove rate faults, page faults and empty pages."""
        with self._lock:
            self.fault_rate_429 = self.fault_rate_503 = 0.0
            self.empty_pages = False
            self._page_faults.clear()

    # ------------------------------------------------------------------ HTTP plumbing

    @property
    def server(self) -> LoopbackServer:
        """The HTTP server (its ``connections`` and ``peak_in_flight`` counts)."""
        return self._server

    def _app(self, req: Request) -> Response:
        segments = [unquote(s) for s in req.path.split("/") if s]
        if segments and segments[0] == "_fake":
            return self._control(req, segments[1:])
        try:
            response = self._route(req, segments)
        except _ApiError as err:
            response = self._error_response(req, err)
        self._record(req, response.status)
        answer_after(req, self.latency_ms)
        return response

    def _record(self, req: Request, status: int) -> None:
        headers = {k: v for k, v in req.headers.items() if k != "authorization"}
        with self._lock:
            self._requests.append(LoggedRequest(req.method, req.path, req.query, status, headers))

    def _error_response(self, req: Request, err: _ApiError) -> Response:
        client_request_id = req.headers.get("client-request-id") or str(uuid.uuid4())
        request_id = str(uuid.uuid4())
        body = {
            "error": {
                "code": err.code,
                "message": err.message,
                "innerError": {
                    "date": _now_iso(),
                    "request-id": request_id,
                    "client-request-id": client_request_id,
                },
            }
        }
        headers = {
            "Content-Type": "application/json",
            "request-id": request_id,
            "client-request-id": client_request_id,
            **err.headers,
        }
        return Response(err.status, json.dumps(body).encode(), headers)

    def _ok(self, req: Request, payload: Any, status: int = 200) -> Response:
        headers = {
            "Content-Type": _JSON_TYPE,
            "OData-Version": "4.0",
            "request-id": str(uuid.uuid4()),
            "client-request-id": req.headers.get("client-request-id") or str(uuid.uuid4()),
        }
        text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
        try:
            body = text.encode()
        except UnicodeEncodeError:  # a lone surrogate: Graph sends it as a \uXXXX escape
            body = json.dumps(payload, separators=(",", ":")).encode()
        return Response(status, body, headers)

    def _route(self, req: Request, seg: list[str]) -> Response:
        if len(seg) >= 2 and seg[1] in ("oauth2", "v2.0"):
            return self._identity(req, seg)
        if not seg or seg[0] != "v1.0":
            raise _ApiError(404, "BadRequest", f"Invalid version or path: {req.path}")
        self._authenticate(req)
        if req.method != "GET":
            raise _ApiError(405, "Request_BadRequest", "The fake Graph only reads the directory.")
        self._inject_rate_faults()
        api = seg[1:]
        head = api[0] if api else ""
        if head == "users":
            self._require(_READ_USERS)
            return self._users_route(req, api[1:])
        if head == "groups":
            self._require(_READ_GROUPS)
            return self._groups_route(req, api[1:])
        if head == "organization" and len(api) == 1:
            self._require(_READ_ORG)
            return self._ok(req, self._organization())
        raise _ApiError(
            400, "BadRequest", f"Resource not found for the segment '{head or req.path}'."
        )

    def _authenticate(self, req: Request) -> None:
        header = req.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        challenge = {
            "WWW-Authenticate": (
                f'Bearer realm="", authorization_uri="{self.origin}/{self.tenant_id}'
                '/oauth2/authorize", client_id="00000003-0000-0000-c000-000000000000"'
            )
        }
        if not token or scheme.lower() != "bearer":
            raise _ApiError(401, "InvalidAuthenticationToken", "Access token is empty.", challenge)
        if self.access_token is not None and hmac.compare_digest(
            token.encode(), self.access_token.encode()
        ):
            return
        with self._lock:
            expiry = self._issued.get(token)
        if expiry is None:
            raise _ApiError(
                401,
                "InvalidAuthenticationToken",
                "IDX14100: JWT is not well formed, or the token is not one this tenant issued.",
                challenge,
            )
        if expiry < time.time():
            raise _ApiError(
                401,
                "InvalidAuthenticationToken",
                "Lifetime validation failed, the token is expired.",
                challenge,
            )

    def _require(self, accepted: frozenset[str]) -> None:
        if not (self.permissions & accepted):
            raise _ApiError(
                403,
                "Authorization_RequestDenied",
                "Insufficient privileges to complete the operation.",
            )

    def _inject_rate_faults(self) -> None:
        with self._lock:
            roll = self._fault_rng.random()
        retry = {"Retry-After": str(self.retry_after_seconds)}
        if roll < self.fault_rate_429:
            raise _ApiError(
                429,
                "TooManyRequests",
                "Too many requests are being sent. Retry after the time in Retry-After.",
                retry,
            )
        if roll < self.fault_rate_429 + self.fault_rate_503:
            raise _ApiError(
                503,
                "serviceNotAvailable",
                "The service is temporarily unavailable. Retry after a while.",
                retry,
            )

    def _check_page_fault(self, path: str, page: int) -> None:
        """Raise the configured failure for page ``page`` (1-based) of ``path``."""
        with self._lock:
            for fault in self._page_faults:
                if fault.page != page or not path.startswith(fault.prefix):
                    continue
                if fault.times is not None:
                    if fault.times <= 0:
                        continue
                    fault.times -= 1
                status = fault.status
                break
            else:
                return
        codes = {429: "TooManyRequests", 503: "serviceNotAvailable", 504: "GatewayTimeout"}
        headers = {"Retry-After": str(self.retry_after_seconds)} if status in (429, 503) else {}
        raise _ApiError(
            status,
            codes.get(status, "generalException"),
            f"Injected failure of page {page}.",
            headers,
        )

    # ------------------------------------------------------------------ identity platform

    def _identity(self, req: Request, seg: list[str]) -> Response:
        tenant = seg[0]
        known_tenant = tenant.lower() in (self.tenant_id.lower(), self.tenant_guid)
        if seg[1:] == ["v2.0", ".well-known", "openid-configuration"] and req.method == "GET":
            if not known_tenant:
                return self._aad_error(400, "invalid_request", 90002, self._no_tenant(tenant))
            return self._ok(req, self._openid_configuration())
        if seg[1:] == ["oauth2", "v2.0", "token"] and req.method == "POST":
            return self._token(req, tenant, known_tenant)
        raise _ApiError(404, "NotFound", f"No identity endpoint at {req.path}")

    @staticmethod
    def _no_tenant(tenant: str) -> str:
        return (
            f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and "
            "are signing into the correct cloud. Check with your subscription administrator, "
            "this may happen if there are no active subscriptions for the tenant."
        )

    def _openid_configuration(self) -> dict[str, Any]:
        root = f"{self.origin}/{self.tenant_guid}"
        return {
            "token_endpoint": f"{root}/oauth2/v2.0/token",
            "token_endpoint_auth_methods_supported": [
                "client_secret_post",
                "private_key_jwt",
                "client_secret_basic",
            ],
            "jwks_uri": f"{self.origin}/{self.tenant_guid}/discovery/v2.0/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": f"{root}/v2.0",
            "request_uri_parameter_supported": False,
            "userinfo_endpoint": f"{self.base_url}/oidc/userinfo",
            "authorization_endpoint": f"{root}/oauth2/v2.0/authorize",
            "device_authorization_endpoint": f"{root}/oauth2/v2.0/devicecode",
            "http_logout_supported": True,
            "frontchannel_logout_supported": True,
            "end_session_endpoint": f"{root}/oauth2/v2.0/logout",
            "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nbf", "tid", "roles"],
            "kerberos_endpoint": f"{root}/kerberos",
            "tenant_region_scope": "EU",
            "cloud_instance_name": "microsoftonline.com",
            "cloud_graph_host_name": "graph.windows.net",
            "msgraph_host": "graph.microsoft.com",
            "rbac_url": "https://pas.windows.net",
        }

    def _aad_error(self, status: int, error: str, code: int, description: str) -> Response:
        trace, correlation = str(uuid.uuid4()), str(uuid.uuid4())
        stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        body = {
            "error": error,
            "error_description": (
                f"AADSTS{code}: {description} Trace ID: {trace} Correlation ID: {correlation} "
                f"Timestamp: {stamp}"
            ),
            "error_codes": [code],
            "timestamp": stamp,
            "trace_id": trace,
            "correlation_id": correlation,
            "error_uri": f"{self.origin}/error?code={code}",
        }
        return Response(status, json.dumps(body).encode(), {"Content-Type": "application/json"})

    def _token(self, req: Request, tenant: str, known_tenant: bool) -> Response:
        if not known_tenant:
            return self._aad_error(400, "invalid_request", 90002, self._no_tenant(tenant))
        form = {k: v[-1] for k, v in parse_qs(req.body.decode("utf-8", "replace")).items()}
        grant = form.get("grant_type")
        if grant != "client_credentials":
            return self._aad_error(
                400,
                "unsupported_grant_type",
                70003,
                f"The app requested an unsupported grant type '{grant}'.",
            )
        client_id = form.get("client_id")
        if not client_id:
            return self._aad_error(
                400,
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'client_id'.",
            )
        if client_id != self.client_id:
            return self._aad_error(
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{client_id}' was not found in the directory "
                f"'{self.tenant_id}'. This can happen if the application has not been installed "
                "by the administrator of the tenant or consented to by any user in the tenant.",
            )
        secret = form.get("client_secret")
        if not secret:
            return self._aad_error(
                401,
                "invalid_client",
                7000218,
                "The request body must contain the following parameter: 'client_assertion' or "
                "'client_secret'.",
            )
        if self.client_secret is None or not hmac.compare_digest(
            secret.encode(), self.client_secret.encode()
        ):
            return self._aad_error(
                401,
                "invalid_client",
                7000215,
                "Invalid client secret provided. Ensure the secret being sent in the request is "
                f"the client secret value, not the client secret ID, for a secret added to app "
                f"'{client_id}'.",
            )
        scope = form.get("scope", "")
        scopes = scope.split()
        if not scopes or not all(s.endswith("/.default") for s in scopes):
            return self._aad_error(
                400,
                "invalid_scope",
                1002012,
                f"The provided value for scope {scope} is not valid. Client credential flows "
                "must have a scope value with /.default suffixed to the resource identifier "
                "(application ID URI).",
            )
        unknown = [s for s in scopes if s.lower() not in _GRAPH_SCOPES]
        if unknown:
            resource = unknown[0].removesuffix("/.default")
            return self._aad_error(
                400,
                "invalid_resource",
                500011,
                f"The resource principal named {resource} was not found in the tenant named "
                f"{self.tenant_id}. This can happen if the application has not been installed "
                "by the administrator of the tenant or consented to by any user in the tenant.",
            )
        with self._lock:
            token = self._issue()
        body: dict[str, Any] = {
            "token_type": "Bearer",
            "expires_in": 3599,
            "ext_expires_in": 3599,
            "access_token": token,
        }
        return Response(200, json.dumps(body).encode(), {"Content-Type": "application/json"})

    def _issue(self) -> str:
        now = int(time.time())
        header = _b64(json.dumps({"typ": "JWT", "alg": "HS256"}).encode())
        claims = {
            "aud": "https://graph.microsoft.com",
            "iss": f"https://sts.windows.net/{self.tenant_guid}/",
            "iat": now,
            "nbf": now,
            "exp": now + 3599,
            "appid": self.client_id,
            "tid": self.tenant_guid,
            "roles": sorted(self.permissions),
            "jti": secrets.token_hex(8),
        }
        payload = _b64(json.dumps(claims).encode())
        signature = hmac.new(self._jwt_key, f"{header}.{payload}".encode(), hashlib.sha256)
        token = f"{header}.{payload}.{_b64(signature.digest())}"
        self._issued[token] = now + 3599
        return token

    # ------------------------------------------------------------------ query parsing

    def _select(self, query: dict[str, str], kind: str, default: Sequence[str]) -> tuple[str, ...]:
        raw = query.get("$select")
        if raw is None or not raw.strip():
            return tuple(default)
        names: list[str] = []
        type_name = "microsoft.graph.user" if kind == USER else "microsoft.graph.group"
        for part in raw.split(","):
            name = part.strip()
            canonical = _DIRECTORY_PROPERTIES.get(name.lower())
            if name.lower() in ("manager", "members"):
                canonical = name.lower()
            if canonical is None:
                raise _ApiError(
                    400,
                    "BadRequest",
                    f"Could not find a property named '{name}' on type '{type_name}'.",
                )
            if canonical not in names:
                names.append(canonical)
        return tuple(names)

    def _top(self, query: dict[str, str], default: int) -> int:
        raw = query.get("$top")
        if raw is None:
            return default
        try:
            top = int(raw)
        except ValueError:
            raise _ApiError(400, "BadRequest", f"Invalid value '{raw}' for $top.") from None
        if not 1 <= top <= self.page_size_max:
            raise _ApiError(
                400,
                "BadRequest",
                f"Invalid page size specified: '{top}'. Must be between 1 and "
                f"{self.page_size_max} inclusive.",
            )
        return top

    @staticmethod
    def _check_options(query: dict[str, str], allowed: set[str]) -> None:
        for key in query:
            if key.startswith("$") and key not in allowed:
                raise _ApiError(
                    400, "BadRequest", f"Query option '{key}' is not allowed on this resource."
                )

    @staticmethod
    def _expand_manager(query: dict[str, str]) -> tuple[str, ...] | None:
        raw = query.get("$expand")
        if raw is None:
            return None
        match = re.fullmatch(r"\s*manager\s*(?:\(\s*\$select\s*=\s*([^)]*)\))?\s*", raw, re.I)
        if match is None:
            raise _ApiError(
                400, "BadRequest", f"Parsing OData Select and Expand failed: '{raw}' unsupported."
            )
        if match.group(1) is None:
            return USER_DEFAULT_SELECT
        names = []
        for part in match.group(1).split(","):
            canonical = _DIRECTORY_PROPERTIES.get(part.strip().lower())
            if canonical is None:
                raise _ApiError(
                    400, "BadRequest", f"Could not find a property named '{part.strip()}'."
                )
            names.append(canonical)
        return tuple(names)

    # ------------------------------------------------------------------ sessions and links

    def _store_session(self, session: _DeltaSession | _ListSession) -> str:
        key = secrets.token_hex(12)
        self._sessions[key] = session
        while len(self._sessions) > _MAX_SESSIONS:
            self._sessions.popitem(last=False)
        return key

    def _link(self, path: str, params: dict[str, str]) -> str:
        parts = [f"{k}={quote(v, safe=',()$=:@')}" for k, v in params.items()]
        return f"{self.base_url}/{path}" + ("?" + "&".join(parts) if parts else "")

    def _page_of(self, query: dict[str, str]) -> tuple[_ListSession | None, int]:
        raw = query.get("$skiptoken")
        if raw is None:
            return None, 0
        key, _, page = raw.rpartition(".")
        with self._lock:
            session = self._sessions.get(key)
            if session is not None:
                self._sessions.move_to_end(key)
        if not isinstance(session, _ListSession) or session.epoch != self._epoch:
            raise _ApiError(400, "BadRequest", "Invalid or expired $skiptoken.")
        try:
            return session, int(page)
        except ValueError:
            raise _ApiError(400, "BadRequest", "Invalid $skiptoken.") from None

    def _paged(
        self,
        req: Request,
        path: str,
        ids_factory: Callable[[], list[str]],
        render: Callable[[str], dict[str, Any] | None],
        context: str,
        default_top: int = 100,
    ) -> Response:
        """Serve one page of a plain (non-delta) collection with ``$top``/``$skiptoken``."""
        query = req.query
        session, page = self._page_of(query)
        if session is None:
            top = self._top(query, default_top)
            with self._lock:
                ids: list[str] = ids_factory()
                session = _ListSession(ids, top, self._epoch)
                key = self._store_session(session) if len(ids) > top else ""
        else:
            key = query["$skiptoken"].rpartition(".")[0]
        self._check_page_fault("/" + path, page + 1)
        start = page * session.top
        with self._lock:
            chunk = session.ids[start : start + session.top]
            items = [render(oid) for oid in chunk]
        payload: dict[str, Any] = {"@odata.context": context}
        if page == 0 and query.get("$count", "").lower() == "true":
            if req.headers.get("consistencylevel", "").lower() != "eventual":
                raise _ApiError(
                    400,
                    "Request_BadRequest",
                    "$count requires the ConsistencyLevel header set to eventual.",
                )
            payload["@odata.count"] = len(session.ids)
        if start + session.top < len(session.ids):
            params = {k: v for k, v in query.items() if k != "$skiptoken"}
            params["$skiptoken"] = f"{key}.{page + 1}"
            payload["@odata.nextLink"] = self._link(path, params)
        payload["value"] = [item for item in items if item is not None]
        return self._ok(req, payload)

    # ------------------------------------------------------------------ users

    def _find_user(self, key: str) -> dict[str, Any]:
        user = self._users.get(key)
        if user is None:
            uid = self._upn.get(key.lower())
            user = self._users.get(uid) if uid else None
        if user is None:
            raise _ApiError(
                404,
                "Request_ResourceNotFound",
                f"Resource '{key}' does not exist or one of its queried reference-property "
                "objects are not present.",
            )
        return user

    def _users_route(self, req: Request, rest: list[str]) -> Response:
        query = req.query
        if not rest:
            return self._list_users(req)
        if rest[0] in _DELTA_SEGMENTS and len(rest) == 1:
            return self._delta(req, "users")
        with self._lock:
            user = self._find_user(rest[0])
            uid = user["id"]
        if len(rest) == 1:
            self._check_options(query, {"$select", "$expand"})
            select = self._select(query, USER, USER_DEFAULT_SELECT)
            expand = self._expand_manager(query)
            with self._lock:
                body = self._render_user(uid, select, expand)
            assert body is not None
            body = {"@odata.context": f"{self.base_url}/$metadata#users/$entity", **body}
            return self._ok(req, body)
        if rest[1:] == ["manager"]:
            self._check_options(query, {"$select"})
            select = self._select(query, USER, USER_DEFAULT_SELECT)
            with self._lock:
                manager = self._effective_manager(uid)
                body = self._render_user(manager, select) if manager else None
            if body is None:
                raise _ApiError(
                    404,
                    "Request_ResourceNotFound",
                    "Resource 'manager' does not exist or one of its queried reference-property "
                    "objects are not present.",
                )
            return self._ok(
                req,
                {
                    "@odata.context": f"{self.base_url}/$metadata#directoryObjects/$entity",
                    "@odata.type": USER,
                    **body,
                },
            )
        if rest[1:] == ["directReports"]:
            return self._directory_page(
                req,
                f"users/{uid}/directReports",
                lambda: [r for r, m in self._manager_of.items() if m == uid and r in self._users],
            )
        if rest[1:] in (["memberOf"], ["transitiveMemberOf"]):
            transitive = rest[1] == "transitiveMemberOf"
            return self._directory_page(
                req, f"users/{uid}/{rest[1]}", lambda: self._groups_of(uid, transitive)
            )
        raise _ApiError(400, "BadRequest", f"Resource not found for the segment '{rest[1]}'.")

    def _render_user(
        self, uid: str, select: tuple[str, ...], expand: tuple[str, ...] | None = None
    ) -> dict[str, Any] | None:
        user = self._users.get(uid)
        if user is None:
            return None
        body = _user_body(user, select)
        if expand is not None:
            manager = self._effective_manager(uid)
            if manager is not None:
                body["manager"] = {"@odata.type": USER, **_user_body(self._users[manager], expand)}
        return body

    def _list_users(self, req: Request) -> Response:
        query = req.query
        self._check_options(
            query, {"$select", "$top", "$filter", "$expand", "$count", "$orderby", "$skiptoken"}
        )
        select = tuple(s for s in self._select(query, USER, USER_DEFAULT_SELECT) if s != "manager")
        expand = self._expand_manager(query)
        matcher = _Filter.parse(query.get("$filter"), USER_PROPERTIES)
        order = _order_key(query.get("$orderby"))

        def ids() -> list[str]:
            upn = matcher.upn_lookup() if matcher else None
            if upn is not None:
                found = self._upn.get(upn.lower())
                return [found] if found else []
            users = self._users
            result = [u for u, p in users.items() if matcher is None or matcher.matches(p)]
            if order is not None:
                result.sort(key=lambda u: str(users[u].get(order[0]) or "").lower())
                if order[1]:
                    result.reverse()
            return result

        context = f"{self.base_url}/$metadata#users"
        if "$select" in query:
            context += f"({','.join(select)})"
        return self._paged(
            req, "users", ids, lambda uid: self._render_user(uid, select, expand), context
        )

    # ------------------------------------------------------------------ groups

    def _groups_route(self, req: Request, rest: list[str]) -> Response:
        query = req.query
        if not rest:
            self._check_options(
                query, {"$select", "$top", "$filter", "$count", "$orderby", "$skiptoken"}
            )
            select = self._select(query, GROUP, GROUP_DEFAULT_SELECT)
            matcher = _Filter.parse(query.get("$filter"), GROUP_PROPERTIES)
            order = _order_key(query.get("$orderby"))

            def ids() -> list[str]:
                groups = self._groups
                result = [g for g, p in groups.items() if matcher is None or matcher.matches(p)]
                if order is not None:
                    result.sort(key=lambda g: str(groups[g].get(order[0]) or "").lower())
                    if order[1]:
                        result.reverse()
                return result

            return self._paged(
                req,
                "groups",
                ids,
                lambda gid: self._render_group(gid, select),
                f"{self.base_url}/$metadata#groups",
            )
        if rest[0] in _DELTA_SEGMENTS and len(rest) == 1:
            return self._delta(req, "groups")
        gid = rest[0]
        with self._lock:
            if gid not in self._groups:
                raise _ApiError(
                    404,
                    "Request_ResourceNotFound",
                    f"Resource '{gid}' does not exist or one of its queried reference-property "
                    "objects are not present.",
                )
        if len(rest) == 1:
            self._check_options(query, {"$select"})
            select = self._select(query, GROUP, GROUP_DEFAULT_SELECT)
            with self._lock:
                body = self._render_group(gid, select)
            return self._ok(
                req, {"@odata.context": f"{self.base_url}/$metadata#groups/$entity", **(body or {})}
            )
        relation = rest[1]
        cast = rest[2] if len(rest) == 3 else None
        if relation in ("members", "transitiveMembers") and len(rest) <= 3:
            if cast is not None and cast not in (
                "microsoft.graph.user",
                "microsoft.graph.group",
                "microsoft.graph.device",
                "microsoft.graph.orgContact",
            ):
                raise _ApiError(400, "BadRequest", f"Unknown type cast '{cast}'.")
            wanted = f"#{cast}" if cast else None

            def member_ids() -> list[str]:
                found = (
                    self._transitive_members(gid)
                    if relation == "transitiveMembers"
                    else self._live_members(gid)
                )
                return [m for m in found if wanted is None or self._kind.get(m) == wanted]

            path = f"groups/{gid}/{relation}" + (f"/{cast}" if cast else "")
            return self._directory_page(req, path, member_ids)
        raise _ApiError(400, "BadRequest", f"Resource not found for the segment '{relation}'.")

    def _render_group(self, gid: str, select: Sequence[str]) -> dict[str, Any] | None:
        group = self._groups.get(gid)
        if group is None:
            return None
        return {k: group.get(k) for k in select}

    def _render_directory_object(
        self, oid: str, select: tuple[str, ...] | None
    ) -> dict[str, Any] | None:
        kind = self._kind.get(oid)
        if kind == USER:
            body = self._render_user(oid, select or USER_DEFAULT_SELECT)
        elif kind == GROUP:
            body = self._render_group(oid, select or GROUP_DEFAULT_SELECT)
        else:
            obj = self._others.get(oid)
            body = None if obj is None else {k: obj[k] for k in (select or obj) if k in obj}
        if body is None:
            return None
        return {"@odata.type": kind, **body}

    def _directory_page(self, req: Request, path: str, ids: Callable[[], list[str]]) -> Response:
        query = req.query
        self._check_options(query, {"$select", "$top", "$count", "$skiptoken", "$filter"})
        if "$filter" in query:
            raise _ApiError(400, "Request_UnsupportedQuery", "Unsupported query.")
        select = self._select(query, USER, ()) or None
        return self._paged(
            req,
            path,
            ids,
            lambda oid: self._render_directory_object(oid, select),
            f"{self.base_url}/$metadata#directoryObjects",
        )

    def _transitive_members(self, gid: str) -> list[str]:
        seen: dict[str, None] = {}
        stack = [gid]
        visited = {gid}
        while stack:
            current = stack.pop(0)
            for member in self._members.get(current, {}):
                if not self._live(member) or member in seen or member == gid:
                    continue
                seen[member] = None
                if self._kind.get(member) == GROUP and member not in visited:
                    visited.add(member)
                    stack.append(member)
        return list(seen)

    def _groups_of(self, oid: str, transitive: bool) -> list[str]:
        found: dict[str, None] = {}
        frontier = [oid]
        while frontier:
            current = frontier.pop(0)
            for gid in sorted(self._member_of.get(current, ())):
                if gid in self._groups and gid not in found and gid != oid:
                    found[gid] = None
                    if transitive:
                        frontier.append(gid)
        return list(found)

    def _organization(self) -> dict[str, Any]:
        return {
            "@odata.context": f"{self.base_url}/$metadata#organization",
            "value": [
                {
                    "id": self.tenant_guid,
                    "displayName": "Contoso (fake)",
                    "tenantType": "AAD",
                    "countryLetterCode": "SE",
                    "preferredLanguage": "en",
                    "verifiedDomains": [
                        {
                            "capabilities": "Email, OfficeCommunicationsOnline",
                            "isDefault": True,
                            "isInitial": True,
                            "name": self.tenant_id,
                            "type": "Managed",
                        }
                    ],
                }
            ],
        }

    # ------------------------------------------------------------------ delta

    def _encode_delta_token(self, session: _DeltaSession) -> str:
        data = [
            1,
            self._nonce,
            session.epoch,
            session.kind,
            session.upto,
            list(session.select),
            session.with_relation,
            session.page_size,
        ]
        return _b64(json.dumps(data, separators=(",", ":")).encode())

    def _gone(self) -> _ApiError:
        return _ApiError(
            410,
            "syncStateNotFound",
            "The delta token has expired or is unknown (resyncRequired): start a new round of "
            "change tracking without a token.",
        )

    def _decode_delta_token(self, token: str, kind: str) -> tuple[int, tuple[str, ...], bool, int]:
        try:
            data = json.loads(_unb64(token))
            version, nonce, epoch, token_kind, upto, select, relation, page_size = data
        except (ValueError, TypeError):
            raise self._gone() from None
        if (
            version != 1
            or nonce != self._nonce
            or epoch != self._epoch
            or token_kind != kind
            or not isinstance(upto, int)
            or upto > self._seq
        ):
            raise self._gone()
        return upto, tuple(select), bool(relation), int(page_size)

    def _delta(self, req: Request, kind: str) -> Response:
        query = req.query
        self._check_options(
            query, {"$select", "$expand", "$top", "$deltatoken", "$skiptoken", "$filter"}
        )
        if "$filter" in query:
            raise _ApiError(
                400, "Request_UnsupportedQuery", "The fake supports no $filter on delta."
            )
        if "$skiptoken" in query:
            key, _, page_text = query["$skiptoken"].rpartition(".")
            with self._lock:
                session = self._sessions.get(key)
                if session is not None:
                    self._sessions.move_to_end(key)
            if (
                not isinstance(session, _DeltaSession)
                or session.kind != kind
                or session.epoch != self._epoch
                or not page_text.isdigit()
                or int(page_text) >= len(session.pages)
            ):
                raise self._gone()
            page = int(page_text)
        else:
            since: int | None = None
            if "$deltatoken" in query:
                since, select, relation, page_size = self._decode_delta_token(
                    query["$deltatoken"], kind
                )
                if "odata.maxpagesize" in req.headers.get("prefer", ""):
                    page_size = self._delta_page_size(req)
            else:
                relation_name = "manager" if kind == "users" else "members"
                default = USER_DEFAULT_SELECT if kind == "users" else GROUP_DEFAULT_SELECT
                select = self._select(query, USER if kind == "users" else GROUP, default)
                expand = query.get("$expand", "").strip().lower()
                if expand and not expand.startswith(relation_name):
                    raise _ApiError(400, "BadRequest", f"$expand={expand} is not supported.")
                # without $select, groups/delta still sends members@delta; users/delta sends
                # the manager only when asked for
                default_relation = kind == "groups" and "$select" not in query
                relation = relation_name in select or bool(expand) or default_relation
                select = tuple(s for s in select if s not in ("manager", "members"))
                page_size = self._delta_page_size(req)
            with self._lock:
                session = self._new_delta_session(kind, since, select, relation, page_size)
                key = self._store_session(session)
            page = 0
        self._check_page_fault(f"/{kind}/delta", page + 1)
        start, end = session.pages[page]
        with self._lock:
            items = [self._render_entry(kind, e, session) for e in session.entries[start:end]]
        context = f"{self.base_url}/$metadata#{kind}({','.join(session.select)})"
        payload: dict[str, Any] = {"@odata.context": context}
        if page + 1 < len(session.pages):
            payload["@odata.nextLink"] = f"{self.base_url}/{kind}/delta?$skiptoken={key}.{page + 1}"
        else:
            token = self._encode_delta_token(session)
            payload["@odata.deltaLink"] = f"{self.base_url}/{kind}/delta?$deltatoken={token}"
        payload["value"] = items
        return self._ok(req, payload)

    def _delta_page_size(self, req: Request) -> int:
        size = self.delta_page_size
        match = re.search(r"odata\.maxpagesize\s*=\s*(\d+)", req.headers.get("prefer", ""))
        if match:
            size = int(match.group(1))
        if "$top" in req.query:
            size = self._top(req.query, size)
        return max(1, min(size, self.page_size_max))

    def _new_delta_session(
        self,
        kind: str,
        since: int | None,
        select: tuple[str, ...],
        relation: bool,
        page_size: int,
    ) -> _DeltaSession:
        if kind == "users":
            entries = self._user_entries(since, select, relation)
        else:
            entries = self._group_entries(since, select, relation)
        pages: list[tuple[int, int]] = []
        start, count, refs = 0, 0, 0
        for index, entry in enumerate(entries):
            weight = len(entry.members) if entry.members else 0
            if count and (count >= page_size or refs + weight > self.members_per_page):
                pages.append((start, index))
                start, count, refs = index, 0, 0
            count += 1
            refs += weight
        pages.append((start, len(entries)))
        if self.empty_pages:
            # Graph may send an empty page that still has a nextLink; clients must go on
            pages.insert(0, (0, 0))
            if len(pages) > 2:
                middle = len(pages) // 2
                pages.insert(middle, (pages[middle][0], pages[middle][0]))
        return _DeltaSession(
            kind, self._seq, select, relation, entries, pages, self._epoch, page_size
        )

    def _changed_ids(self, log: tuple[list[int], list[str]], since: int) -> list[str]:
        start = bisect.bisect_right(log[0], since)
        return list(dict.fromkeys(log[1][start:]))

    def _manager_delta(self, uid: str) -> list[dict[str, Any]] | None:
        manager = self._effective_manager(uid)
        if manager is not None:
            return [{"@odata.type": USER, "id": manager}]
        old = self._utrack(uid).old_manager
        if old is not None:
            return [{"@odata.type": USER, "id": old, "@removed": {"reason": "deleted"}}]
        return None

    def _user_entries(
        self, since: int | None, select: tuple[str, ...], relation: bool
    ) -> list[_Entry]:
        if since is None:
            return [
                _Entry(uid, "full", manager=self._manager_full(uid) if relation else None)
                for uid in self._users
            ]
        entries: list[_Entry] = []
        for uid in self._changed_ids(self._user_log, since):
            track = self._utrack(uid)
            if uid not in self._users:
                if track.removed > since:
                    entries.append(_Entry(uid, "removed", reason=track.reason or "deleted"))
                continue
            if track.created > since:
                entries.append(
                    _Entry(uid, "full", manager=self._manager_full(uid) if relation else None)
                )
                continue
            props = tuple(p for p in select if track.props.get(p, 0) > since)
            manager = self._manager_delta(uid) if relation and track.manager > since else None
            if props or manager:
                entries.append(_Entry(uid, "partial", props=props, manager=manager))
        return entries

    def _manager_full(self, uid: str) -> list[dict[str, Any]] | None:
        manager = self._effective_manager(uid)
        return [{"@odata.type": USER, "id": manager}] if manager else None

    def _member_refs(self, gid: str, since: int | None) -> list[dict[str, Any]]:
        if since is None:
            return [{"@odata.type": self._kind[m], "id": m} for m in self._live_members(gid)]
        current = self._members.get(gid, {})
        refs = []
        for member, seq in self._gtrack(gid).members.items():
            if seq <= since:
                continue
            ref: dict[str, Any] = {"@odata.type": self._kind.get(member, USER), "id": member}
            if member not in current or not self._live(member):
                ref["@removed"] = {"reason": "deleted"}
            refs.append(ref)
        return refs

    def _group_entries(
        self, since: int | None, select: tuple[str, ...], relation: bool
    ) -> list[_Entry]:
        chunk = max(1, self.members_per_page)
        entries: list[_Entry] = []

        def add(gid: str, mode: str, props: tuple[str, ...], refs: list[dict[str, Any]]) -> None:
            if not relation:
                entries.append(_Entry(gid, mode, props=props))
                return
            # a big group is repeated, each copy carrying the next slice of members@delta
            if not refs and mode == "partial":
                entries.append(_Entry(gid, mode, props=props))
                return
            for offset in range(0, max(len(refs), 1), chunk):
                piece = refs[offset : offset + chunk]
                entries.append(_Entry(gid, mode, props=props, members=piece))

        if since is None:
            for gid in self._groups:
                add(gid, "full", (), self._member_refs(gid, None))
            return entries
        for gid in self._changed_ids(self._group_log, since):
            track = self._gtrack(gid)
            if gid not in self._groups:
                if track.removed > since:
                    entries.append(_Entry(gid, "removed", reason=track.reason or "deleted"))
                continue
            if track.created > since:
                add(gid, "full", (), self._member_refs(gid, None))
                continue
            props = tuple(p for p in select if track.props.get(p, 0) > since)
            refs = self._member_refs(gid, since) if relation else []
            if props or refs:
                add(gid, "partial", props, refs)
        return entries

    def _render_entry(self, kind: str, entry: _Entry, session: _DeltaSession) -> dict[str, Any]:
        store = self._users if kind == "users" else self._groups
        obj = store.get(entry.id)
        if entry.mode == "removed" or obj is None:
            reason = entry.reason
            if obj is None and entry.mode != "removed":
                track = self._utrack(entry.id) if kind == "users" else self._gtrack(entry.id)
                reason = track.reason or "deleted"
            return {"id": entry.id, "@removed": {"reason": reason}}
        names = session.select if entry.mode == "full" else entry.props
        body = _user_body(obj, names) if kind == "users" else {k: obj.get(k) for k in names}
        body["id"] = entry.id
        if entry.manager is not None:
            body["manager@delta"] = entry.manager
        if entry.members is not None:
            body["members@delta"] = entry.members
        return body

    # ------------------------------------------------------------------ control API (/_fake)

    def _control(self, req: Request, seg: list[str]) -> Response:
        try:
            body = req.json()
        except ValueError:
            return Response.json({"error": "body is not JSON"}, 400)
        if body is None:
            body = {}
        try:
            result = self._control_dispatch(req.method, seg, body)
        except KeyError as exc:
            return Response.json({"error": f"not found: {exc.args[0]}"}, 404)
        except (ValueError, TypeError) as exc:
            return Response.json({"error": str(exc)}, 400)
        if result is None:
            return Response(204)
        return Response.json(result, 201 if req.method == "POST" else 200)

    def _bulk_update_users(self, updates: Any) -> int:
        if not isinstance(updates, list) or not all(isinstance(u, dict) for u in updates):
            raise TypeError("bulk-update takes a JSON list of objects with an 'id'")
        with self._lock:
            for update in updates:
                props = dict(update)
                uid = props.pop("id", None)
                if not isinstance(uid, str):
                    raise ValueError(f"bulk-update entry without a string 'id': {update!r}")
                self.update_user(uid, **props)
        return len(updates)

    def _control_dispatch(self, method: str, seg: list[str], body: Any) -> Any:
        route = (method, *seg)
        match route:
            case ("POST", "users"):
                return {"id": self.add_user(body)}
            case ("PATCH", "users", uid):
                self.update_user(uid, **body)
            case ("POST", "users", "bulk-update"):
                return {"updated": self._bulk_update_users(body)}
            case ("DELETE", "users", uid):
                self.hard_delete_user(uid)
            case ("PUT", "users", uid, "manager"):
                self.set_manager(uid, body.get("managerId"))
            case ("POST", "users", uid, action) if action in _USER_ACTIONS:
                getattr(self, _USER_ACTIONS[action])(uid)
            case ("POST", "groups"):
                props = dict(body)
                members = props.pop("memberIds", [])
                return {"id": self.add_group(props, members)}
            case ("PATCH", "groups", gid):
                self.update_group(gid, **body)
            case ("DELETE", "groups", gid):
                self.delete_group(gid)
            case ("POST", "groups", gid, "members"):
                self.add_member(gid, body["id"])
            case ("DELETE", "groups", gid, "members", mid):
                self.remove_member(gid, mid)
            case ("POST", "devices" | "contacts" as what):
                props = dict(body)
                group_ids = props.pop("groupIds", [])
                add = self.add_device if what == "devices" else self.add_contact
                return {"id": add(props, group_ids)}
            case ("POST", "expireDeltaTokens"):
                self.expire_delta_tokens()
            case ("POST", "expireAccessTokens"):
                self.expire_access_tokens()
            case ("PUT", "faults"):
                with self._lock:
                    self.fault_rate_429 = float(body.get("rate429", self.fault_rate_429))
                    self.fault_rate_503 = float(body.get("rate503", self.fault_rate_503))
                    self.retry_after_seconds = int(
                        body.get("retryAfterSeconds", self.retry_after_seconds)
                    )
                    self.empty_pages = bool(body.get("emptyPages", self.empty_pages))
            case ("DELETE", "faults"):
                self.clear_faults()
            case ("POST", "failPage"):
                times = body.get("times", 1)
                self.fail_page(
                    str(body["pathPrefix"]),
                    int(body["page"]),
                    int(body.get("status", 500)),
                    times=None if times is None else int(times),
                )
            case ("PUT", "permissions"):
                with self._lock:
                    self.permissions = set(body["permissions"])
            case ("GET", "requests"):
                return [r.__dict__ for r in self.requests]
            case ("DELETE", "requests"):
                self.clear_requests()
            case ("GET", "state"):
                with self._lock:
                    return {
                        "users": len(self._users),
                        "recycleBin": len(self._recycle),
                        "groups": len(self._groups),
                        "sequence": self._seq,
                    }
            case _:
                raise KeyError("/_fake/" + "/".join(seg))
        return None


_USER_ACTIONS = {
    "disable": "disable_user",
    "enable": "enable_user",
    "softDelete": "soft_delete_user",
    "restore": "restore_user",
}


def _user_body(user: dict[str, Any], select: tuple[str, ...]) -> dict[str, Any]:
    # stored values are never mutated in place (updates assign new lists), so the body may share
    # them with the store while it is serialised outside the lock
    body = {k: user.get(k) for k in select}
    for key in _needs_default(select):
        if key not in user:
            body[key] = _user_default(user, key)
    return body


def _normalise_api_path(path: str) -> str:
    """``users/microsoft.graph.delta()`` -> ``users/delta``, for fault matching."""
    parts = path.split("/")
    return "/".join("delta" if p in _DELTA_SEGMENTS else p for p in parts)


def _order_key(raw: str | None) -> tuple[str, bool] | None:
    if raw is None:
        return None
    match = re.fullmatch(r"\s*(displayName|userPrincipalName)(?:\s+(asc|desc))?\s*", raw, re.I)
    if match is None:
        raise _ApiError(400, "Request_UnsupportedQuery", f"Unsupported sort: '{raw}'.")
    name = "displayName" if match.group(1).lower() == "displayname" else "userPrincipalName"
    return name, (match.group(2) or "").lower() == "desc"


_STRING = r"'(?:[^']|'')*'"
_CLAUSE = re.compile(
    rf"^(?:(?P<prop>\w+)\s+(?P<op>eq|ne)\s+(?P<value>{_STRING}|true|false|null)"
    rf"|startswith\(\s*(?P<sprop>\w+)\s*,\s*(?P<svalue>{_STRING})\s*\)"
    rf"|(?P<iprop>\w+)\s+in\s+\((?P<ivalues>\s*{_STRING}(?:\s*,\s*{_STRING})*\s*)\))$",
    re.I,
)


def _literal(token: str) -> Any:
    lowered = token.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered == "null":
        return None
    return token[1:-1].replace("''", "'")


def _split_outside_quotes(text: str, word: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    quoted, i = False, 0
    needle = f" {word} "
    while i < len(text):
        char = text[i]
        if char == "'":
            quoted = not quoted
        if not quoted and text[i : i + len(needle)].lower() == needle:
            parts.append("".join(current))
            current = []
            i += len(needle)
            continue
        current.append(char)
        i += 1
    parts.append("".join(current))
    return parts


class _Filter:
    """The small part of OData ``$filter`` directory sync tools use: eq/ne/in/startswith."""

    def __init__(self, clauses: list[tuple[str, str, Any]], conjunction: str) -> None:
        self.clauses = clauses
        self.conjunction = conjunction

    @classmethod
    def parse(cls, raw: str | None, known: frozenset[str]) -> _Filter | None:
        if raw is None or not raw.strip():
            return None
        text = raw.strip()
        conjunction = "and"
        parts = _split_outside_quotes(text, "and")
        if len(parts) == 1:
            parts = _split_outside_quotes(text, "or")
            conjunction = "or"
        elif len(_split_outside_quotes(text, "or")) > 1:
            raise _ApiError(400, "BadRequest", "Invalid filter clause: mixed and/or.")
        lookup = {p.lower(): p for p in known}
        clauses: list[tuple[str, str, Any]] = []
        for part in parts:
            match = _CLAUSE.match(part.strip())
            if match is None:
                raise _ApiError(400, "BadRequest", f"Invalid filter clause: {part.strip()}")
            if match.group("prop"):
                prop, op, value = match.group("prop"), match.group("op").lower(), match["value"]
                literal: Any = _literal(value)
            elif match.group("sprop"):
                prop, op, literal = match["sprop"], "startswith", _literal(match["svalue"])
            else:
                prop, op = match["iprop"], "in"
                literal = [_literal(v) for v in re.findall(_STRING, match["ivalues"])]
            canonical = lookup.get(prop.lower())
            if canonical is None:
                raise _ApiError(400, "BadRequest", f"Property '{prop}' does not exist.")
            clauses.append((canonical, op, literal))
        return cls(clauses, conjunction)

    def upn_lookup(self) -> str | None:
        """The UPN when the filter is exactly ``userPrincipalName eq '...'`` (index lookup)."""
        if len(self.clauses) == 1:
            prop, op, value = self.clauses[0]
            if prop == "userPrincipalName" and op == "eq" and isinstance(value, str):
                return value
        return None

    def matches(self, obj: dict[str, Any]) -> bool:
        results = (self._clause(obj, c) for c in self.clauses)
        return all(results) if self.conjunction == "and" else any(results)

    @staticmethod
    def _clause(obj: dict[str, Any], clause: tuple[str, str, Any]) -> bool:
        prop, op, expected = clause
        actual = obj.get(prop)

        def norm(value: Any) -> Any:
            return value.lower() if isinstance(value, str) else value

        if op == "startswith":
            return isinstance(actual, str) and actual.lower().startswith(str(expected).lower())
        if op == "in":
            return norm(actual) in {norm(v) for v in expected}
        if isinstance(actual, list):  # e.g. groupTypes/any() is not supported; compare lists
            equal = norm(expected) in [norm(v) for v in actual]
        else:
            equal = norm(actual) == norm(expected)
        return equal if op == "eq" else not equal
