"""Frozen records for the directory as read from Graph, decoded from raw JSON without the SDK models."""

from __future__ import annotations

import json
import re
import sys
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


# The string properties other than the UPN, in the order a DirectoryUser packs them.
_PACKED_PROPERTIES: tuple[str, ...] = tuple(
    name for name in USER_STRING_PROPERTIES if name != "userPrincipalName"
)


class DirectoryUser:
    """One Entra user as syncd needs it; keyed by the immutable object id, never by UPN.

    Immutable. The string properties other than the UPN are packed into one JSON array: a
    100,000-user snapshot then takes ~45 MB instead of ~190 MB as one dict per user (measured
    with ``make bench``). ``properties`` unpacks them; read it once per user, not per field.
    """

    __slots__ = (
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

    def __init__(
        self,
        id: str,
        properties: Mapping[str, str],
        account_enabled: bool = True,
        business_phones: tuple[str, ...] = (),
        manager_id: str | None = None,
    ) -> None:
        setter = object.__setattr__
        setter(self, "id", id)
        setter(self, "user_principal_name", properties.get("userPrincipalName", ""))
        setter(self, "account_enabled", account_enabled)
        setter(self, "business_phones", tuple(business_phones))
        setter(self, "manager_id", manager_id)
        values = [properties.get(name) or "" for name in _PACKED_PROPERTIES]
        setter(self, "_packed", json.dumps(values, ensure_ascii=False, separators=(",", ":")))

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

    def _key(self) -> tuple[Any, ...]:
        return (
            self.id,
            self.user_principal_name,
            self._packed,
            self.account_enabled,
            self.business_phones,
            self.manager_id,
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DirectoryUser) and other._key() == self._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return (
            f"DirectoryUser(id={self.id!r}, properties={self.properties!r}, "
            f"account_enabled={self.account_enabled!r}, business_phones={self.business_phones!r}, "
            f"manager_id={self.manager_id!r})"
        )

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
        manager = data.get("managerId")
        return cls(
            id=sys.intern(data["id"]),
            properties={k: data[k] for k in USER_STRING_PROPERTIES if data.get(k)},
            account_enabled=bool(data.get("accountEnabled", True)),
            business_phones=tuple(data.get("businessPhones") or ()),
            manager_id=sys.intern(manager) if manager else None,
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
            user_members=frozenset(map(sys.intern, data.get("userMembers") or ())),
            group_members=frozenset(map(sys.intern, data.get("groupMembers") or ())),
        )


@dataclass
class Decoded:
    """Result of decoding one Graph object: the record (None if skipped) and what was wrong."""

    user: DirectoryUser | None = None
    problems: list[Problem] = field(default_factory=list)


MAX_VALUE_LENGTH = 256  # longer values are dropped, never truncated into something else
_ADDRESS = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_WHITESPACE_CONTROLS = re.compile("[\t\n\r\v\f\x85\u2028\u2029]+")
_OTHER_CONTROLS = re.compile("[\x00-\x08\x0e-\x1f\x7f-\x84\x86-\x9f]")


def clean_text(value: str) -> tuple[str, list[str]]:
    """``value`` made safe to send, and what was changed (for a warning).

    Line breaks and tabs become spaces, other control characters and invalid UTF-16 halves
    (which cannot be encoded as UTF-8 at all) are removed; non-BMP characters are kept.
    """
    notes = []
    if _LONE_SURROGATE.search(value):
        value = _LONE_SURROGATE.sub("\ufffd", value)
        notes.append("invalid UTF-16 replaced")
    if _WHITESPACE_CONTROLS.search(value):
        value = _WHITESPACE_CONTROLS.sub(" ", value)
        notes.append("line breaks or tabs replaced by spaces")
    if _OTHER_CONTROLS.search(value):
        value = _OTHER_CONTROLS.sub("", value)
        notes.append("control characters removed")
    return value.strip(), notes


def _decode_property(object_id: str, name: str, value: Any, problems: list[Problem]) -> str:
    """One string property, cleaned; "" (with a Problem) when it cannot be used."""
    if value is None:
        return ""
    if not isinstance(value, str):
        problems.append(Problem(object_id, name, f"expected a string, got {type(value).__name__}"))
        return ""
    cleaned, notes = clean_text(value)
    if notes:
        outcome = "sent cleaned" if cleaned else "nothing left after cleaning: dropped"
        problems.append(Problem(object_id, name, f"{outcome} ({', '.join(notes)})"))
    if len(cleaned) > MAX_VALUE_LENGTH:
        problems.append(
            Problem(
                object_id, name, f"{len(cleaned)} characters (over {MAX_VALUE_LENGTH}): dropped"
            )
        )
        return ""
    if name == "mail" and cleaned and not _ADDRESS.match(cleaned):
        problems.append(Problem(object_id, name, f"{cleaned!r} is not an e-mail address: dropped"))
        return ""
    return cleaned


def decode_user(obj: Mapping[str, Any]) -> Decoded:
    """Turn one Graph user JSON object into a DirectoryUser, dropping bad fields with a Problem.

    A user without a usable id or userPrincipalName cannot be keyed or matched: it is skipped.
    """
    result = Decoded()
    object_id = obj.get("id")
    if not isinstance(object_id, str) or not object_id.strip():
        result.problems.append(Problem("<unknown>", "id", "object without an id: skipped", "error"))
        return result
    properties: dict[str, str] = {}
    for name in USER_STRING_PROPERTIES:
        value = _decode_property(object_id, name, obj.get(name), result.problems)
        if value:
            properties[name] = value
    upn = properties.get("userPrincipalName", "")
    if not upn:
        result.problems.append(
            Problem(object_id, "userPrincipalName", "missing or unusable: user skipped", "error")
        )
        return result
    if not _ADDRESS.match(upn):
        result.problems.append(
            Problem(
                object_id,
                "userPrincipalName",
                f"{upn!r} is not an address Learnster can use as userName: user skipped",
                "error",
            )
        )
        return result
    enabled = obj.get("accountEnabled", True)
    if isinstance(enabled, str) and enabled.strip().lower() in ("true", "false"):
        result.problems.append(
            Problem(object_id, "accountEnabled", f"string {enabled!r} read as a boolean")
        )
        enabled = enabled.strip().lower() == "true"
    elif not isinstance(enabled, bool):
        result.problems.append(
            Problem(
                object_id, "accountEnabled", f"expected a boolean, got {enabled!r}: taken as true"
            )
        )
        enabled = True
    phones_raw = obj.get("businessPhones") or []
    phones: list[str] = []
    if isinstance(phones_raw, list):
        phones = [
            p
            for p in (
                _decode_property(object_id, "businessPhones", x, result.problems)
                for x in phones_raw
            )
            if p
        ]
    else:
        result.problems.append(Problem(object_id, "businessPhones", "expected a list: dropped"))
    manager_id = _manager_id(obj)
    if manager_id == object_id:
        result.problems.append(Problem(object_id, "manager", "user is their own manager: ignored"))
        manager_id = None
    result.user = DirectoryUser(
        id=sys.intern(object_id),  # group memberships and manager links then share it
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
        return sys.intern(value) if isinstance(value, str) and value else None
    return None
