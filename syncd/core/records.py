"""Frozen records of the directory as read from Graph, and the shapes the snapshot keeps them in."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Generic, NamedTuple, TypeVar

from syncd.errors import GraphReadError

# Graph user properties syncd selects; the mapping table (syncd.core.mapping) reads these.
USER_STRING_PROPERTIES: tuple[str, ...] = (
    "userPrincipalName",
    "displayName",
    "givenName",
    "surname",
    "jobTitle",
    "mail",
    "mailNickname",
    "officeLocation",
    "streetAddress",
    "city",
    "postalCode",
    "state",
    "country",
    "mobilePhone",
    "companyName",
    "department",
    "employeeId",
    "preferredLanguage",
    "faxNumber",
    "usageLocation",  # ISO country code; tells which country a national phone number is in
    "userType",  # "Member" or "Guest" (B2B)
)
USER_SELECT: tuple[str, ...] = ("id", "accountEnabled", "businessPhones", *USER_STRING_PROPERTIES)
GROUP_SELECT: tuple[str, ...] = ("id", "displayName")

# Graph v1.0 user properties a scoping filter or the mapping may name (besides the
# onPremisesExtensionAttributes and directory extensions, see is_user_attribute).
GRAPH_USER_PROPERTIES: frozenset[str] = frozenset(
    {
        *USER_SELECT,
        "ageGroup", "consentProvidedForMinor", "createdDateTime", "creationType",
        "employeeHireDate", "employeeLeaveDateTime", "employeeType", "externalUserState",
        "imAddresses", "legalAgeGroupClassification", "onPremisesDistinguishedName",
        "onPremisesDomainName", "onPremisesImmutableId", "onPremisesSamAccountName",
        "onPremisesSecurityIdentifier", "onPremisesSyncEnabled", "onPremisesUserPrincipalName",
        "otherMails", "preferredDataLocation", "proxyAddresses", "showInAddressList",
        "employeeOrgData.costCenter", "employeeOrgData.division",
    }
)  # fmt: skip
_EXTENSION_ATTRIBUTE = re.compile(
    r"onPremisesExtensionAttributes\.extensionAttribute(1[0-5]|[1-9])"
)
_DIRECTORY_EXTENSION = re.compile(r"extension_[0-9a-fA-F]{32}_[A-Za-z0-9_]+")


def is_user_attribute(name: str) -> bool:
    """Whether ``name`` is a Graph user property syncd can read: a property, one of the 15
    onPremisesExtensionAttributes (``onPremisesExtensionAttributes.extensionAttribute7``) or a
    directory extension (``extension_<appId without dashes>_<name>``)."""
    return (
        name in GRAPH_USER_PROPERTIES
        or _EXTENSION_ATTRIBUTE.fullmatch(name) is not None
        or _DIRECTORY_EXTENSION.fullmatch(name) is not None
    )


def selected_property(attribute: str) -> str:
    """The property of a Graph ``$select`` that carries ``attribute`` (its first part)."""
    return attribute.split(".", 1)[0]


def user_select(attributes: Iterable[str] = ()) -> tuple[str, ...]:
    """What syncd selects of each user: what the mapping table reads, and the properties that
    carry ``attributes`` (those scoping filters and mapping overrides read)."""
    extra = {selected_property(a) for a in attributes} - set(USER_SELECT)
    return (*USER_SELECT, *sorted(extra))


# What syncd selected before it read userType: delta links stored without a selection were
# made with it.
LEGACY_USER_SELECT: tuple[str, ...] = tuple(p for p in USER_SELECT if p != "userType")


USER_TYPE = "#microsoft.graph.user"
GROUP_TYPE = "#microsoft.graph.group"


@dataclass(frozen=True, slots=True)
class Problem:
    """Something wrong with one directory object: kept as data so the pure core can report it."""

    object_id: str
    field: str
    message: str
    severity: str = "warning"  # "warning": field dropped; "error": object skipped

    def __str__(self) -> str:
        return f"{self.object_id}: {self.field}: {self.message}"


# The string properties other than the UPN, in the order a DirectoryUser packs them.
_PACKED_PROPERTIES: tuple[str, ...] = tuple(
    name for name in USER_STRING_PROPERTIES if name != "userPrincipalName"
)


class DirectoryUser:
    """One Entra user as syncd needs it; keyed by the immutable object id, never by UPN.

    Immutable. The string properties other than the UPN are packed into one JSON array: a
    100,000-user snapshot then takes ~45 MB instead of ~190 MB as one dict per user (measured
    with ``make bench``). ``properties`` unpacks them; read it once per user, not per field.
    Properties selected for scoping filters or the mapping beyond those (extension attributes,
    ``employeeType`` …) are kept as Graph gave them, packed too (``extra``).
    """

    __slots__ = (
        "_extra",
        "_packed",
        "account_enabled",
        "business_phones",
        "id",
        "manager_id",
        "user_principal_name",
    )

    id: str
    user_principal_name: str
    account_enabled: bool
    business_phones: tuple[str, ...]
    manager_id: str | None
    _packed: str
    _extra: str

    def __init__(
        self,
        id: str,
        properties: Mapping[str, str],
        account_enabled: bool = True,
        business_phones: tuple[str, ...] = (),
        manager_id: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        setter = object.__setattr__
        setter(self, "id", id)
        setter(self, "user_principal_name", properties.get("userPrincipalName", ""))
        setter(self, "account_enabled", account_enabled)
        setter(self, "business_phones", tuple(business_phones))
        setter(self, "manager_id", manager_id)
        values = [properties.get(name) or "" for name in _PACKED_PROPERTIES]
        setter(self, "_packed", json.dumps(values, ensure_ascii=False, separators=(",", ":")))
        setter(self, "_extra", _pack_extra(extra) if extra else "")

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"DirectoryUser is immutable (setting {name!r})")

    @property
    def properties(self) -> dict[str, str]:
        """The selected string properties that have a value, by Graph name."""
        unpacked = {
            name: value
            for name, value in zip(_PACKED_PROPERTIES, json.loads(self._packed), strict=True)
            if value
        }
        if self.user_principal_name:
            unpacked["userPrincipalName"] = self.user_principal_name
        return unpacked

    @property
    def extra(self) -> dict[str, Any]:
        """The other selected properties that have a value, by Graph name, as Graph gave them."""
        return dict(json.loads(self._extra)) if self._extra else {}

    def values(self, attributes: Iterable[str]) -> dict[str, Any]:
        """The values of these attributes (None where unset), unpacking the user once.

        A dotted attribute names a member of a complex property
        (``onPremisesExtensionAttributes.extensionAttribute7``).
        """
        properties, extra = self.properties, self.extra
        known: dict[str, Any] = {
            **extra,
            **properties,
            "id": self.id,
            "accountEnabled": self.account_enabled,
            "businessPhones": list(self.business_phones),
        }
        result: dict[str, Any] = {}
        for attribute in attributes:
            head, _, member = attribute.partition(".")
            value = known.get(head)
            if member:
                value = value.get(member) if isinstance(value, Mapping) else None
            result[attribute] = value
        return result

    @property
    def is_guest(self) -> bool:
        """A B2B guest (``userType`` Guest)."""
        return self.properties.get("userType", "").casefold() == "guest"

    def _key(self) -> tuple[Any, ...]:
        return (
            self.id,
            self.user_principal_name,
            self._packed,
            self.account_enabled,
            self.business_phones,
            self.manager_id,
            self._extra,
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DirectoryUser) and other._key() == self._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return (
            f"DirectoryUser(id={self.id!r}, properties={self.properties!r}, "
            f"account_enabled={self.account_enabled!r}, business_phones={self.business_phones!r}, "
            f"manager_id={self.manager_id!r}, extra={self.extra!r})"
        )

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.id,
            "accountEnabled": self.account_enabled,
            "businessPhones": list(self.business_phones),
            "managerId": self.manager_id,
            **self.properties,
        }
        if self._extra:
            data["extra"] = self.extra
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DirectoryUser:
        """Inverse of to_json (the snapshot's stored form, already validated)."""
        manager = data.get("managerId")
        return cls(
            id=sys.intern(data["id"]),
            properties={k: data[k] for k in USER_STRING_PROPERTIES if data.get(k)},
            account_enabled=bool(data.get("accountEnabled", True)),
            business_phones=tuple(data.get("businessPhones") or ()),
            manager_id=sys.intern(manager) if manager else None,
            extra=data.get("extra"),
        )


def _pack_extra(extra: Mapping[str, Any]) -> str:
    kept = {k: v for k, v in sorted(extra.items()) if v is not None}
    # ASCII escapes: Graph's values here are not cleaned, and may hold lone surrogates.
    return json.dumps(kept, separators=(",", ":")) if kept else ""


@dataclass(frozen=True, slots=True)
class DirectoryGroup:
    """One Entra group: its name and its direct members by kind."""

    id: str
    display_name: str
    user_members: frozenset[str] = frozenset()
    group_members: frozenset[str] = frozenset()

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "displayName": self.display_name,
            "userMembers": sorted(self.user_members),
            "groupMembers": sorted(self.group_members),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DirectoryGroup:
        return cls(
            id=data["id"],
            display_name=data.get("displayName") or "",
            user_members=frozenset(map(sys.intern, data.get("userMembers") or ())),
            group_members=frozenset(map(sys.intern, data.get("groupMembers") or ())),
        )


_GUEST_MARK = re.compile("#EXT#", re.IGNORECASE)


def learnster_user_name(user_principal_name: str) -> str:
    """The userName Learnster gets for a UPN: a B2B guest's ``#EXT#`` removed, as Entra does.

    ``anna_fabrikam.com#EXT#@contoso.onmicrosoft.com`` becomes
    ``anna_fabrikam.com@contoso.onmicrosoft.com``; any other UPN is sent as it is.
    """
    return _GUEST_MARK.sub("", user_principal_name)


def user_name_key(user_name: str) -> str:
    """The form in which two userNames (or UPNs) are the same: Learnster compares them ignoring
    case, and a guest's UPN names the userName without ``#EXT#``.

    The one definition, in Python and (through the snapshot's stored ``upn_key`` column) in SQL:
    full Unicode case folding, so "STRAßE@x" and "strasse@x" clash in both places alike.
    """
    return learnster_user_name(user_name).casefold()


class Presence(Enum):
    """Whether a directory object is there, in the recycle bin, or permanently deleted.

    The values are Graph's delta ``@removed`` reasons, as the snapshot stores them.
    """

    PRESENT = None
    RECYCLED = "changed"  # soft-deleted (restorable), or gone from a full read
    DELETED = "deleted"  # permanently deleted

    @classmethod
    def of_removed_reason(cls, reason: Any) -> Presence:
        """The presence a delta ``@removed`` reason stands for (anything but "deleted": recycled)."""
        return cls.DELETED if reason == "deleted" else cls.RECYCLED


R = TypeVar("R")


class Entry(NamedTuple, Generic[R]):
    """One object of the snapshot: its last known record, and whether it is still there."""

    record: R
    presence: Presence

    @property
    def present(self) -> bool:
        return self.presence is Presence.PRESENT


UserSnapshot = dict[str, Entry[DirectoryUser]]
GroupSnapshot = dict[str, Entry[DirectoryGroup]]

# Presence by stored value, without Enum's slower lookup (a full snapshot has 100,000 rows).
PRESENCE_OF_STORED: Mapping[str | None, Presence] = {p.value: p for p in Presence}


@dataclass(frozen=True)
class Assignments:
    """Who is assigned to the Learnster enterprise application (its appRoleAssignedTo)."""

    service_principal: str  # the application's service principal (object id)
    users: frozenset[str] = frozenset()
    groups: frozenset[str] = frozenset()

    def to_json(self) -> dict[str, Any]:
        return {
            "servicePrincipal": self.service_principal,
            "users": sorted(self.users),
            "groups": sorted(self.groups),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Assignments:
        return cls(
            str(data["servicePrincipal"]),
            frozenset(data.get("users") or ()),
            frozenset(data.get("groups") or ()),
        )


@dataclass
class DeltaRound:
    """One delta round of users or groups: merged objects by id, removals, and the next link.

    ``error`` set: the round stopped part-way; the objects are those of the pages read whole,
    and the round must not count anyone as removed nor advance its link.
    """

    objects: dict[str, dict[str, Any]] = field(default_factory=dict)
    removed: dict[str, Presence] = field(default_factory=dict)  # RECYCLED or DELETED
    delta_link: str = ""
    pages: int = 0
    error: GraphReadError | None = None

    @property
    def complete(self) -> bool:
        return self.error is None
