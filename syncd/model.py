"""Frozen records for the directory as read from Graph, decoded from raw JSON without the SDK models."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# Graph user properties syncd selects; the mapping table (DESIGN §4) reads these.
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
)
USER_SELECT: tuple[str, ...] = ("id", "accountEnabled", "businessPhones", *USER_STRING_PROPERTIES)
GROUP_SELECT: tuple[str, ...] = ("id", "displayName")

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


@dataclass(frozen=True, slots=True)
class DirectoryUser:
    """One Entra user as syncd needs it; keyed by the immutable object id, never by UPN."""

    id: str
    properties: Mapping[str, str]  # the selected string properties that have a value
    account_enabled: bool = True
    business_phones: tuple[str, ...] = ()
    manager_id: str | None = None

    @property
    def user_principal_name(self) -> str:
        return self.properties.get("userPrincipalName", "")

    def get(self, name: str) -> str:
        """A Graph property by its Graph name, "" when absent."""
        if name == "businessPhones":
            return self.business_phones[0] if self.business_phones else ""
        return self.properties.get(name, "")

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "accountEnabled": self.account_enabled,
            "businessPhones": list(self.business_phones),
            "managerId": self.manager_id,
            **self.properties,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DirectoryUser:
        """Inverse of to_json (the snapshot's stored form, already validated)."""
        return cls(
            id=data["id"],
            properties={k: data[k] for k in USER_STRING_PROPERTIES if data.get(k)},
            account_enabled=bool(data.get("accountEnabled", True)),
            business_phones=tuple(data.get("businessPhones") or ()),
            manager_id=data.get("managerId"),
        )


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
            user_members=frozenset(data.get("userMembers") or ()),
            group_members=frozenset(data.get("groupMembers") or ()),
        )


@dataclass
class Decoded:
    """Result of decoding one Graph object: the record (None if skipped) and what was wrong."""

    user: DirectoryUser | None = None
    problems: list[Problem] = field(default_factory=list)


def decode_user(obj: Mapping[str, Any]) -> Decoded:
    """Turn one Graph user JSON object into a DirectoryUser, dropping bad fields with a Problem.

    A user without an id or userPrincipalName cannot be keyed or matched: it is skipped.
    """
    result = Decoded()
    object_id = obj.get("id")
    if not isinstance(object_id, str) or not object_id:
        result.problems.append(Problem("<unknown>", "id", "object without an id", "error"))
        return result
    properties: dict[str, str] = {}
    for name in USER_STRING_PROPERTIES:
        value = obj.get(name)
        if value is None:
            continue
        if not isinstance(value, str):
            result.problems.append(
                Problem(object_id, name, f"expected a string, got {type(value).__name__}")
            )
            continue
        value = value.strip()
        if value:
            properties[name] = value
    if not properties.get("userPrincipalName"):
        result.problems.append(
            Problem(object_id, "userPrincipalName", "missing: user skipped", "error")
        )
        return result
    enabled = obj.get("accountEnabled", True)
    if not isinstance(enabled, bool):
        result.problems.append(
            Problem(object_id, "accountEnabled", f"expected a boolean, got {enabled!r}")
        )
        enabled = True
    phones_raw = obj.get("businessPhones") or []
    phones: list[str] = []
    if isinstance(phones_raw, list):
        phones = [p.strip() for p in phones_raw if isinstance(p, str) and p.strip()]
    else:
        result.problems.append(Problem(object_id, "businessPhones", "expected a list"))
    manager_id = _manager_id(obj)
    if manager_id == object_id:
        result.problems.append(Problem(object_id, "manager", "user is their own manager: ignored"))
        manager_id = None
    result.user = DirectoryUser(
        id=object_id,
        properties=properties,
        account_enabled=enabled,
        business_phones=tuple(phones),
        manager_id=manager_id,
    )
    return result


def _manager_id(obj: Mapping[str, Any]) -> str | None:
    manager = obj.get("manager")
    if isinstance(manager, Mapping):
        value = manager.get("id")
        return value if isinstance(value, str) and value else None
    return None
